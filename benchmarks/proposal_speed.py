"""The proposal's two speed-ups, each against the form it replaced, in one process.

* KV-cached sampling with the cache read in blocks (``TransformerProposal.sample`` with its default
  ``block_size``, :func:`nirbench.proposal.default_block_size`) against one block of ``T`` (what
  the sampler did before: every step read the whole preallocated cache).
* The forward-KL value and gradient accumulated over chunks of rows
  (:func:`nirbench.proposal.forward_kl_value_and_grad`, what ``train_step`` uses) against
  ``eqx.filter_value_and_grad(forward_kl_loss)`` over the whole batch at once (what ``train_step``
  did before), weighted rows; and ``log_prob_batch`` (chunked) against ``jax.vmap(log_prob)``.
* With ``--patches P ...``: tokens read in patches of ``p`` spins (:class:`nirbench.proposal.PatchedProposal`,
  ``T / p`` positions of ``2**p`` values) against one spin per token, the same embedding and
  depth: sampling ``batch`` strings and one forward-KL value and gradient, the ratio to ``p = 1``.

Model: the sampler's proposal (float32, embed 32, 4 heads, 4 layers), random parameters with the
raw Equinox head, random tokens. Prints one line per measurement (compile time, then the timed
calls) and the largest differences between old and new results::

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \\
        python benchmarks/proposal_speed.py --tokens 48 108 192 --batch 512 --repeats 3
        python benchmarks/proposal_speed.py --tokens 48 108 --patches 4 6 --repeats 5
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp

import nirbench  # noqa: F401  (x64)
from nirbench.proposal import (
    PatchedProposal,
    TransformerProposal,
    default_block_size,
    forward_kl_loss,
    forward_kl_value_and_grad,
)


def timed(name: str, fn, args, repeats: int):
    """Compile (first call), then ``repeats`` timed calls; prints them and returns ``(last result,
    fastest call in seconds)``."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    print(f"  {name:<42} first call {first:6.2f} s, then {' '.join(f'{t:.3f}' for t in times)} s", flush=True)
    return out, min(times)


def benchmark_inputs(n_tokens: int, batch: int):
    """The inputs every comparison uses for ``n_tokens``: ``(model key, draw key, tokens (batch,
    n_tokens) of 0/1, weights (batch,))``, the same keys for every comparison."""
    key_model, key_tokens, key_weights, key_draw = jax.random.split(jax.random.PRNGKey(n_tokens), 4)
    tokens = jax.random.bernoulli(key_tokens, 0.5, (batch, n_tokens)).astype(jnp.int32)
    weights = jax.random.uniform(key_weights, (batch,), jnp.float32)
    return key_model, key_draw, tokens, weights


def compare_patches(n_tokens: int, patches: list[int], batch: int, repeats: int) -> None:
    """Sampling and one forward-KL gradient of a patched proposal against binary tokens (minimum of
    ``repeats`` calls each, ratio to ``p = 1``)."""
    key_model, key_draw, tokens, weights = benchmark_inputs(n_tokens, batch)
    draw = eqx.filter_jit(lambda m, k: m.sample(k, batch))
    gradient = eqx.filter_jit(forward_kl_value_and_grad)
    base = {}
    for patch in [1, *patches]:
        if n_tokens % patch:
            continue
        inner = TransformerProposal(n_tokens // patch, 32, 4, 4, head_scale=1.0, vocab_size=2**patch,
                                    key=key_model, dtype=jnp.float32)  # fmt: skip
        model = inner if patch == 1 else PatchedProposal(inner, patch)
        print(f"T = {n_tokens}, patch {patch}: {n_tokens // patch} positions of {2**patch} values", flush=True)
        for phase, fn, args in (("sample", draw, (model, key_draw)), ("gradient", gradient, (model, tokens, weights))):
            _, seconds = timed(f"{phase}, batch {batch}", fn, args, repeats)
            base.setdefault(phase, seconds)
            print(f"  {phase}: {seconds / base[phase]:.3f} of one spin per token", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[48, 108, 192])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patches", type=int, nargs="*", default=[],
                        help="compare patched tokens of these sizes with binary ones instead")  # fmt: skip
    args = parser.parse_args(argv)
    if args.patches:
        for n_tokens in args.tokens:
            compare_patches(n_tokens, args.patches, args.batch, args.repeats)
        return
    for n_tokens in args.tokens:
        key_model, key_draw, tokens, weights = benchmark_inputs(n_tokens, args.batch)
        model = TransformerProposal(n_tokens, 32, 4, 4, head_scale=1.0, key=key_model, dtype=jnp.float32)
        block = default_block_size(n_tokens)
        print(f"T = {n_tokens}, batch {args.batch}, default cache block {block}", flush=True)

        def draw(model, key, block_size):
            return model.sample(key, args.batch, block_size=block_size)

        old = timed(f"sample, one block of {n_tokens}", draw, (model, key_draw, n_tokens), args.repeats)[0]
        new = timed(f"sample, blocks of {block}", draw, (model, key_draw, block), args.repeats)[0]
        same = bool(jnp.all(old[0] == new[0]))
        print(f"  same tokens: {same}; log q max difference {float(jnp.max(jnp.abs(old[1] - new[1]))):.2e}")

        whole = eqx.filter_jit(lambda m, t: jax.vmap(m.log_prob)(t))
        chunked = eqx.filter_jit(lambda m, t: m.log_prob_batch(t))
        old = timed("log q, whole batch", whole, (model, tokens), args.repeats)[0]
        new = timed("log q, in chunks (log_prob_batch)", chunked, (model, tokens), args.repeats)[0]
        print(f"  log q max difference {float(jnp.max(jnp.abs(old - new))):.2e}")

        grad_whole = eqx.filter_jit(eqx.filter_value_and_grad(forward_kl_loss))
        grad_chunked = eqx.filter_jit(forward_kl_value_and_grad)
        old = timed("forward-KL value and gradient, whole batch", grad_whole, (model, tokens, weights), args.repeats)[0]
        new = timed("forward-KL value and gradient, in chunks", grad_chunked, (model, tokens, weights), args.repeats)[0]
        scale = max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree_util.tree_leaves(old[1]))
        diff = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree_util.tree_leaves(old[1]), jax.tree_util.tree_leaves(new[1]))
        )
        print(f"  loss {float(old[0]):.6f} vs {float(new[0]):.6f}; gradient max difference {diff:.2e} "
              f"(largest gradient entry {scale:.2e})")


if __name__ == "__main__":
    main()
