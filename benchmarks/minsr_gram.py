"""The layer-wise minSR Gram matrix: upper tiles of samples against whole matrices per pair k <= l.

``nirbench.minsr._layerwise_gram`` forms ``G = J J^T`` from per-layer inputs and output
derivatives; :func:`nirbench.minsr._tiled_gram` sums their products over the tiles of
``tile x tile`` samples on and above the diagonal, one tile at a time. Before it, each pair
``(k, l)``, ``k <= l``, of configurations in a K-tuple was contracted over the whole batch at
once, through ``(j, 2 Ns, 2 Ns)`` intermediates (``pairs_gram`` below, the former code with the
same signature). This script times the Gram with the former form patched in and with tiles of
several sizes, in one process, on the recipe's 4x4 K = 3 MLP, batch 512, random tuples, and checks
that all agree to round-off:

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \\
        python benchmarks/minsr_gram.py --repeats 5 --tiles 16 32 64 128

With ``--reference-batch`` it times instead, on a batch that issue 16's reference run (the 4x4
K = 3 case of commit 248719e, ``nirbench.profile.TFI4X4_K3_248719E``) resampled after 8 iterations,
the Gram over every tuple of the batch against the Gram over its distinct tuples (what
``nirbench.minsr.layerwise_gram`` does), alternating the two:

    python benchmarks/minsr_gram.py --reference-batch --repeats 6
"""

import argparse
import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from nirbench import minsr
from nirbench.estimators import distinct_rows
from nirbench.options import VMCConfig, read_options_file
from nirbench.profile import TFI4X4_K3_248719E, case_options
from nirbench.vmc import VMCRun


def pairs_gram(inputs, deltas, has_bias, explicit_rows, tile, n_distinct):
    """The former linear-layer share of ``G`` (``tile``, ``n_distinct`` unused): per layer and pair ``k <= l`` the
    whole ``(j, 2, Ns, 2, Ns)`` products, the pair ``(l, k)`` as the transpose of ``(k, l)``."""
    gram = jnp.einsum("rbp,scp->rbsc", explicit_rows, explicit_rows)
    for a, d_rows, bias in zip(inputs, deltas, has_bias):
        n_inputs = a.shape[2]
        for k in range(n_inputs):
            for l in range(k, n_inputs):
                dd = jnp.einsum("jrbo,jsco->jrbsc", d_rows[:, :, :, k], d_rows[:, :, :, l])
                aa = jnp.einsum("jbi,jci->jbc", a[:, :, k], a[:, :, l]) + bias
                pair = jnp.einsum("jrbsc,jbc->rbsc", dd, aa)
                gram = gram + (pair if k == l else pair + jnp.transpose(pair, (2, 3, 0, 1)))
    return gram


def seconds(function, repeats):
    """Median seconds of ``repeats`` calls after one untimed call."""
    jax.block_until_ready(function())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def reference_batch(repeats: int) -> None:
    """The Gram of a resampled batch of the reference run: every tuple against the distinct ones."""
    run = VMCRun(VMCConfig.from_dict(case_options(None, TFI4X4_K3_248719E)))
    for _ in range(8):
        run.step()
    batch, _, _ = run.sampler.sample(run.log_prob_fn, run.nqs, run.sampler_state, jax.random.key(1))
    configs = batch.configs
    n_samples = configs.shape[0]
    n_distinct = len(distinct_rows(np.asarray(configs).reshape(n_samples, -1))[0])

    def every_tuple():
        return minsr._compiled_layerwise_gram(run.nqs, configs, minsr.GRAM_TILE, jnp.int32(n_samples))

    def distinct_tuples():
        return minsr.layerwise_gram(run.nqs, configs)

    whole, distinct = np.asarray(every_tuple()), np.asarray(distinct_tuples())
    times = {every_tuple: [], distinct_tuples: []}
    for _ in range(repeats):
        for function, spent in times.items():
            spent.append(seconds(function, 1))
    t_whole, t_distinct = (float(np.median(spent)) for spent in times.values())
    print(f"{n_distinct} distinct tuples of {n_samples}: every tuple {t_whole:.3f} s, distinct tuples "
          f"{t_distinct:.3f} s (ratio {t_distinct / t_whole:.2f}); max relative difference "
          f"{np.abs(whole - distinct).max() / np.abs(whole).max():.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiles", type=int, nargs="+", default=[minsr.GRAM_TILE])
    parser.add_argument("--reference-batch", action="store_true",
                        help="time every tuple against the distinct tuples of a reference-run batch")
    args = parser.parse_args()
    if args.reference_batch:
        reference_batch(args.repeats)
        return
    options = {**read_options_file("config/recipes/tfi_multistate_nir.yaml"), "model": "tfi", "lx": 4, "ly": 4,
               "bc": "open", "g": 2.0, "states": 3, "batch": args.batch, "max_minutes": None}  # fmt: skip
    nqs = VMCRun(VMCConfig.from_dict(options)).nqs
    configs = jax.random.choice(jax.random.key(0), jnp.array([-1, 1], dtype=jnp.int8), (args.batch, 3, 16))
    # a distinct tile size compiles a distinct program: the former form under its own "tile" 0
    with mock.patch.object(minsr, "_tiled_gram", pairs_gram):
        former = np.asarray(minsr._compiled_layerwise_gram(nqs, configs, 0, jnp.int32(args.batch)))
        t_former = seconds(lambda: minsr._compiled_layerwise_gram(nqs, configs, 0, jnp.int32(args.batch)), args.repeats)
    print(f"whole matrices per pair k <= l: {t_former:.3f} s")
    scale = np.abs(former).max()
    for tile in args.tiles:
        tiled = np.asarray(minsr.layerwise_gram(nqs, configs, tile=tile))
        t_tiled = seconds(lambda tile=tile: minsr.layerwise_gram(nqs, configs, tile=tile), args.repeats)
        print(f"tiles of {tile}: {t_tiled:.3f} s, ratio to the former {t_tiled / t_former:.2f}; "
              f"max relative difference {np.abs(tiled - former).max() / scale:.1e}")


if __name__ == "__main__":
    main()
