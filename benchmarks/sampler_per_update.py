"""NIR against Metropolis per NQS update on 4x4 open TFI, K = 3 (figure 4's system).

The default scale's figure 4 left every level 2e-4 to 2.4e-2 above ED after 120 updates, worst at
g = 2 (level 2). This benchmark trains the same NQS with the default scale's ``tfi`` preset as it
stood before this benchmark (batch 256, proposal 16/2/2, ESS >= 2 B), but for 400 updates, with
each sampler, and with NIR proposing until ESS >= 8 B (g = 2 also with seed 1); every run follows the same SGD-minSR
schedule, so the per-update curves compare the samplers' batches, not their speed.

The run configurations are the YAML files beside the output (``nirbench vmc --config`` files,
flat keys); a run whose CSV exists is not rerun. Writes ``summary.csv`` (one row per run: the
final evaluation's levels and trace against ED, the median seconds per iteration, the median
efficiency and NIR proposals per iteration) and a figure of the trace error against the update.

    python benchmarks/sampler_per_update.py --dir results/benchmarks/sampler_per_update \\
        --figure figures/benchmarks/sampler_per_update.png

Each run takes 4-14 minutes on one core; run at most two at once on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from nirbench.io import write_csv_atomically
from nirbench.options import VMCConfig
from nirbench.threads import thread_limits

SMOOTH = 20  # updates in the rolling mean of the plotted energy


def run_missing(directory: Path) -> None:
    """``nirbench vmc`` for every ``*.yaml`` in ``directory`` whose steps CSV is missing."""
    env = {**os.environ, **thread_limits(1)}
    for config in sorted(directory.glob("*.yaml")):
        steps, summary = config.with_suffix(".csv"), config.with_name(f"{config.stem}_summary.csv")
        if not steps.exists():
            command = ["nirbench", "vmc", "--config", str(config), "--out", str(steps), "--summary", str(summary)]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True, env=env)


def summarise(directory: Path) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """One row per run (its resolved options, the final levels and trace against the reference),
    and per run the trace error against the update (rolling mean of ``SMOOTH`` updates)."""
    rows, curves = [], {}
    for config in sorted(directory.glob("*.yaml")):
        options = VMCConfig.from_yaml(config)  # nirbench's defaults fill what the file leaves out
        steps = pd.read_csv(config.with_suffix(".csv"))
        summary = pd.read_csv(config.with_name(f"{config.stem}_summary.csv")).iloc[0]
        nir = options.sampler == "nir"
        row = {"run": config.stem, "g": options.g, "sampler": options.sampler, "seed": options.seed,
               "alpha_ess": options.alpha_ess if nir else None,
               "updates": int(steps["nqs_updated"].astype(bool).sum()), "iterations": len(steps),
               "status": summary["status"], "seconds": float(steps["seconds"].sum()),
               "seconds_per_iteration": float(steps["seconds"].median()),
               "efficiency": float(steps["efficiency"].median()),
               "proposals": float(steps["n_proposed"].median()) if nir else None,
               "trace_error": float(summary["relative_error"]),
               "trace_sigma": float(summary["energy_sigma"] / abs(summary["reference_energy"]))}  # fmt: skip
        for k in range(options.states):
            reference = summary[f"reference_e_{k}"]
            row[f"e_{k}_error"] = float((summary[f"e_{k}"] - reference) / abs(reference))
            row[f"e_{k}_sigma"] = float(summary[f"e_{k}_sigma"] / abs(reference))
        rows.append(row)
        updated = steps[steps["nqs_updated"].astype(bool)].reset_index(drop=True)
        reference = summary["reference_energy"]
        curves[config.stem] = (updated["energy"].rolling(SMOOTH).mean() - reference) / abs(reference)
    return pd.DataFrame(rows), curves


def plot(table: pd.DataFrame, curves: dict[str, pd.Series], figure: Path) -> None:
    fields = sorted(table["g"].unique())
    fig, axes = plt.subplots(1, len(fields), figsize=(5.2 * len(fields), 4), sharey=True, squeeze=False)
    for ax, g in zip(axes[0], fields):
        for _, row in table[table["g"] == g].iterrows():
            label = "Metropolis" if row["sampler"] == "mcmc" else f"NIR, ESS >= {row['alpha_ess']:g} B"
            label += f", seed {row['seed']}" if row["seed"] else ""
            error = curves[row["run"]]
            ax.plot(error.index, error, label=f"{label}: {row['trace_error']:.1e}")
        ax.set(yscale="log", xlabel="NQS update", title=f"4x4 open, K = 3, g = {g:g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(title="final trace error", fontsize=8)
    axes[0][0].set_ylabel(f"trace energy above ED (relative, mean of {SMOOTH} updates)")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=130)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("results/benchmarks/sampler_per_update"))
    parser.add_argument("--figure", type=Path, default=Path("figures/benchmarks/sampler_per_update.png"))
    args = parser.parse_args()
    run_missing(args.dir)
    table, curves = summarise(args.dir)
    write_csv_atomically(table, args.dir / "summary.csv")
    plot(table, curves, args.figure)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
