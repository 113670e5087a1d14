"""Collect the accuracy benchmark runs into one table: ``results/benchmarks/accuracy.csv``.

Each case is a ``nirbench vmc --config benchmarks/accuracy/<case>.yaml`` run (the commands are in
the README and in ``run.sh``); this script reads the summaries ``results/benchmarks/accuracy/<case>_summary.csv``
and the issue's targets, and writes one row per case:
``case,model,lattice,bc,g,j2,states,net,sampler,steps,iterations,energy,energy_sigma,
reference_energy,relative_error,target,met,mean_efficiency,wall_minutes,status``.
``relative_error = |E - E_ref| / |E_ref|`` of the trace energy (the sum of the K levels; for K = 1
the energy); for J1-J2 the same ratio is that of E/N. ``met`` is empty when there is no target
(the 6x6 NIR-vs-MCMC comparison) or no reference.

It also writes the per-step rows of every case, with the case's system, sampler, seed and reference
energy on each row, to ``--training`` (default ``results/benchmarks/accuracy_training.csv``), the
input of ``benchmarks/accuracy/plot.py``.

    python benchmarks/accuracy/collect.py [--runs results/benchmarks/accuracy] [--out results/benchmarks/accuracy.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

#: the issue's accuracy targets (relative error of the trace energy); None: compare only
TARGETS = {
    "tfi4x4_g3_k3_nir": 1e-4,
    "tfi4x4_g1_k3_nir": 1e-4,
    "j1j2_4x4_k1_rescnn_nir": 1e-3,
    "tfi6x6open_g1_k3_nir": None,
    "tfi6x6open_g1_k3_mcmc": None,
}

COLUMNS = [
    "case", "model", "lattice", "bc", "g", "j2", "states", "net", "sampler", "steps", "iterations", "energy",
    "energy_sigma", "reference_energy", "relative_error", "target", "met", "mean_efficiency", "wall_minutes", "status",
]  # fmt: skip


def collect(runs: Path) -> pd.DataFrame:
    """One row per case whose summary exists under ``runs`` (missing cases are skipped)."""
    rows = []
    for case, target in TARGETS.items():
        path = runs / f"{case}_summary.csv"
        if not path.exists():
            continue
        summary = pd.read_csv(path).iloc[0]
        error = summary["relative_error"]
        met = "" if target is None or pd.isna(error) else bool(error <= target)
        rows.append({
            **summary.to_dict(), "case": case, "lattice": f"{summary['lx']}x{summary['ly']}", "target": target,
            "met": met, "wall_minutes": summary["wall_seconds"] / 60,
        })  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


#: the summary columns copied onto every per-step row of a case
RUN_COLUMNS = ["model", "lx", "ly", "bc", "g", "j2", "states", "net", "sampler", "seed", "reference_energy"]


def collect_training(runs: Path) -> pd.DataFrame:
    """The per-step rows ``<case>.csv`` of every case with a summary, labelled with its run columns."""
    frames = []
    for case in TARGETS:
        summary_path, steps_path = runs / f"{case}_summary.csv", runs / f"{case}.csv"
        if not (summary_path.exists() and steps_path.exists()):
            continue
        summary = pd.read_csv(summary_path).iloc[0]
        steps = pd.read_csv(steps_path)
        frames.append(steps.assign(case=case, **{name: summary[name] for name in RUN_COLUMNS}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("results/benchmarks/accuracy"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/accuracy.csv"))
    parser.add_argument("--training", type=Path, default=Path("results/benchmarks/accuracy_training.csv"))
    args = parser.parse_args()
    table = collect(args.runs)
    if table.empty:
        raise SystemExit(f"no accuracy runs found under {args.runs}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    collect_training(args.runs).to_csv(args.training, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
