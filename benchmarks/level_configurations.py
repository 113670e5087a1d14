"""Which states does a trained multi-state TFI NQS hold? The broken bonds of its sampled K-tuples.

In the ordered phase (g << 1) of the open-boundary TFI model the low levels are, to zeroth
order in g, classical: the two ferromagnets (0 broken bonds, the cat doublet), one flipped corner
spin (2 broken bonds, +4), an edge spin (3, +6), a bulk spin (4, +8), ..., a straight domain wall
across an L x L lattice (L broken bonds, +2L). A K-tuple drawn from ``|det[psi_k(s_j)]|^2`` holds
one configuration from each of the K states the NQS spans, so the broken-bond counts of its
configurations, sorted, say which levels those are: ``(0, 0, 2)`` for the lowest three levels of
an open lattice, ``(0, 0, 6)`` on 6x6 when the third state is a straight wall.

From a checkpoint of a run (``nirbench vmc --checkpoint-dir``) it draws ``--calls`` batches with
the run's sampler frozen (NIR: no proposal training; Metropolis: its chains from the checkpoint)
and writes one row per sorted broken-bond tuple: how often it occurred, and the fraction of its
tuples whose most-broken configuration is a straight wall (every row, or every column, constant
and the configuration not uniform).

    python benchmarks/level_configurations.py --checkpoint DIR --out results/benchmarks/NAME.csv
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import pandas as pd

from nirbench.io import write_csv_atomically
from nirbench.vmc import VMCRun


def broken_bonds(configs: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """Number of antiparallel bonds of each configuration: ``configs (..., N)`` of +-1 -> ``(...)``."""
    return np.sum(configs[..., bonds[:, 0]] != configs[..., bonds[:, 1]], axis=-1)


def is_straight_wall(configs: np.ndarray, lx: int, ly: int) -> np.ndarray:
    """Whether each configuration ``(..., N)`` (site ``x * ly + y``) is constant along every row or
    along every column, and not uniform: two domains with straight walls between them."""
    grid = configs.reshape(*configs.shape[:-1], lx, ly)
    rows = np.all(grid == grid[..., :, :1], axis=(-2, -1))  # each x-row constant in y
    columns = np.all(grid == grid[..., :1, :], axis=(-2, -1))
    uniform = np.all(configs == configs[..., :1], axis=-1)
    return (rows | columns) & ~uniform


def level_table(configs: np.ndarray, weights: np.ndarray, bonds: np.ndarray, lx: int, ly: int) -> pd.DataFrame:
    """``configs (B, K, N)`` with ``weights (B,)`` (a sampler batch's) -> one row per sorted
    broken-bond tuple: ``tuple``, ``count`` (draws), ``fraction`` (of the total weight),
    ``wall_fraction`` (of its weight, that of tuples whose most-broken configuration is a straight
    wall)."""
    counts = broken_bonds(configs, bonds)  # (B, K)
    order = np.argsort(counts, axis=1, kind="stable")
    most = np.take_along_axis(configs, order[:, -1:, None], axis=1)[:, 0]
    walls = is_straight_wall(most, lx, ly)
    frame = pd.DataFrame({"tuple": [" ".join(map(str, row)) for row in np.sort(counts, axis=1)],
                          "weight": weights / weights.sum(), "wall": walls})  # fmt: skip
    frame["wall_weight"] = frame["weight"] * frame["wall"]
    table = frame.groupby("tuple").agg(count=("weight", "size"), fraction=("weight", "sum"), wall=("wall_weight", "sum"))
    table["wall_fraction"] = table.pop("wall") / table["fraction"]
    return table.sort_values("fraction", ascending=False).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory of a run (nirbench vmc --checkpoint-dir)")
    parser.add_argument("--calls", type=int, default=8, help="batches drawn (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="CSV: one row per sorted broken-bond tuple")
    args = parser.parse_args()
    run = VMCRun.from_checkpoint(args.checkpoint)
    c = run.config
    if c.model != "tfi":
        raise SystemExit(f"{args.checkpoint}: a {c.model} run; broken bonds are TFI's levels")
    sampler = run.sampler.frozen() if hasattr(run.sampler, "frozen") else run.sampler
    state, key, draws, weights = run.sampler_state, jax.random.key(args.seed), [], []
    for call in range(args.calls):
        batch, state, _ = sampler.sample(run.log_prob_fn, run.nqs, state, jax.random.fold_in(key, call))
        draws.append(np.asarray(batch.configs))
        weights.append(np.asarray(batch.weights, dtype=float) / float(np.sum(batch.weights)))  # each call weighs 1
    table = level_table(np.concatenate(draws), np.concatenate(weights), run.hamiltonian.bonds, c.lx, c.ly)
    table.insert(0, "checkpoint", str(args.checkpoint))
    table.insert(1, "nqs_step", run.nqs_step)
    write_csv_atomically(table, args.out)
    print(table.head(10).to_string(index=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
