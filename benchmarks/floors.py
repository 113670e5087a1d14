"""How far two loop-bound phases are from their floors, in one process (issue 16).

* **Metropolis** (the plain-Adam step of ``benchmarks/compare_netket.py``: 4x4 periodic TFI, MLP
  4 x 128 in float64, 16 chains, 640 warm-up steps and 32 records 16 steps apart, i.e. 1152 steps
  of 16 chains a call): a whole :class:`~nirbench.samplers.mcmc.MetropolisSampler` call against
  the same number of steps that only evaluate the NQS on 16 configurations (``batched_log_prob``
  in a ``lax.scan``, each step flipping one spin; no moves drawn, no acceptance), the floor any
  Metropolis code pays for this network; and the same floor with the network cast to float32.
* **Proposal draws** (the reference case's proposal: 48 binary tokens, float32, embed 32, 4 heads,
  2 layers): ``TransformerProposal.sample`` of ``n`` strings for several ``n``, in milliseconds per
  512 strings. Flat in ``n`` means the draws are bound by arithmetic, not by a fixed cost per
  operation that larger calls would spread.

One CSV row per measurement (fastest of ``--repeats`` calls after one compiling call), with the
machine in the ``cpu`` column::

    XLA_FLAGS='--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1' \\
        python benchmarks/floors.py --repeats 5 --out results/benchmarks/floors.csv
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import pandas as pd

import nirbench  # noqa: F401  (x64)
from nirbench.bench import vmc_bench_config
from nirbench.models.multistate import batched_log_prob
from nirbench.profiling import cpu_description
from nirbench.proposal import TransformerProposal
from nirbench.vmc import VMCRun


def fastest(fn, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn()`` after one untimed (compiling) call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


@eqx.filter_jit
def network_steps(nqs, chains, n_steps: int):
    """``n_steps`` evaluations of ``log |Psi|^2`` on ``chains`` ``(C, K, N)``, spin ``t mod N`` of
    the first state flipped before step ``t``: the network's part of a Metropolis call."""
    n_sites = chains.shape[-1]

    def step(current, t):
        current = current.at[:, 0, t % n_sites].multiply(-1)
        return current, batched_log_prob(nqs, current)

    _, log_probs = jax.lax.scan(step, chains, jnp.arange(n_steps))
    return log_probs


def metropolis_rows(repeats: int) -> list[dict]:
    run = VMCRun(vmc_bench_config("adam"))
    sampler, state = run.sampler, run.sampler_state
    n_steps = sampler.n_warmup + sampler.samples_per_chain * sampler.thinning
    key = jax.random.PRNGKey(1)
    whole = fastest(lambda: sampler.sample(run.log_prob_fn, run.nqs, state, key)[0].configs, repeats)
    float32_nqs = jax.tree_util.tree_map(
        lambda leaf: leaf.astype(jnp.float32) if eqx.is_inexact_array(leaf) else leaf, run.nqs
    )
    rows = [("Metropolis call", whole)]
    for name, nqs in (("network only, float64", run.nqs), ("network only, float32", float32_nqs)):
        rows.append((name, fastest(lambda nqs=nqs: network_steps(nqs, state.chains, n_steps), repeats)))
    return [
        {"phase": "metropolis", "measurement": name, "n": n_steps, "seconds": seconds,
         "per_unit": seconds / n_steps * 1e6, "unit": "microseconds per step of 16 chains"}
        for name, seconds in rows
    ]  # fmt: skip


def draw_rows(repeats: int, sizes) -> list[dict]:
    proposal = TransformerProposal(48, embed_dim=32, n_heads=4, n_layers=2, key=jax.random.PRNGKey(0),
                                   dtype=jnp.float32)  # fmt: skip
    key = jax.random.PRNGKey(1)
    rows = []
    for n in sizes:
        seconds = fastest(lambda n=n: proposal.sample(key, n), repeats)
        rows.append({"phase": "proposal draws", "measurement": "TransformerProposal.sample, 48 tokens", "n": n,
                     "seconds": seconds, "per_unit": seconds * 1e3 * 512 / n, "unit": "milliseconds per 512 strings"})  # fmt: skip
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 2048], help="draws per call")
    parser.add_argument("--out", default="results/benchmarks/floors.csv")
    args = parser.parse_args(argv)
    table = pd.DataFrame(metropolis_rows(args.repeats) + draw_rows(args.repeats, args.sizes))
    table["cpu"] = cpu_description()
    table.to_csv(args.out, index=False)
    print(table.drop(columns="cpu").to_string(index=False))
    print(f"({table['cpu'].iloc[0]}) -> {args.out}")


if __name__ == "__main__":
    main()
