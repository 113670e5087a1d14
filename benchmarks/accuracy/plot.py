"""Figures of the accuracy benchmarks, from ``results/benchmarks/accuracy_training.csv`` (collect.py).

* ``figures/accuracy_tfi6x6open_g1_training.{png,pdf}``: the 6x6 open, g = 1, K = 3 pair, NIR
  against MCMC with otherwise identical settings (the paper's figure 2 comparison), drawn by the
  pipeline's own ``workflow/scripts/fig2_training.py``: relative error of the trace energy against
  the DMRG reference, and the samplers' efficiency / acceptance rate.
* ``figures/accuracy_training.{png,pdf}``: the same for the other cases, one panel each.

    python benchmarks/accuracy/plot.py [--training CSV] [--figures DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

# appended, not prepended: this directory's collect.py must win over workflow/scripts/collect.py
sys.path.append(str(Path(__file__).resolve().parents[2] / "workflow" / "scripts"))
import fig2_training
import style
from collect import TARGETS
from style import plt

PAIR = ("tfi6x6open_g1_k3_nir", "tfi6x6open_g1_k3_mcmc")


def plot_pair(training: pd.DataFrame, figures: Path) -> None:
    pair = training[training["case"].isin(PAIR)]
    if pair.empty:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".csv") as handle:
        pair.to_csv(handle.name, index=False)
        stem = figures / "accuracy_tfi6x6open_g1_training"
        fig2_training.plot(handle.name, f"{stem}.png", f"{stem}.pdf")


def plot_cases(training: pd.DataFrame, figures: Path) -> None:
    cases = [case for case in training["case"].unique() if case not in PAIR]
    if not cases:
        return
    fig, axes = plt.subplots(1, len(cases), figsize=(3.6 * len(cases), 3.2), squeeze=False)
    for ax, case in zip(axes[0], cases):
        run = training[training["case"] == case].sort_values("step")
        y = style.positive(run["energy_error"] / run["reference_energy"].abs())
        window = max(1, int(run["nqs_step"].max()) // 50)
        sampler = run["sampler"].iloc[0]
        color = style.sampler_color(sampler)
        ax.plot(run["nqs_step"], y, color=color, alpha=0.25, linewidth=0.5)
        ax.plot(run["nqs_step"], style.rolling(y, window), color=color, label=style.sampler_label(sampler))
        if TARGETS.get(case):
            ax.axhline(TARGETS[case], color="0.3", linestyle="--", linewidth=0.8, label="target")
        style.decade_log_axis(ax)
        ax.legend(loc="upper right")
        ax.set_xlabel("NQS update step")
        first = run.iloc[0]
        system = f"g = {first['g']:g}" if first["model"] == "tfi" else f"J2 = {first['j2']:g}"
        quantity = r"E_\mathrm{tr}" if first["states"] > 1 else "E"
        model = {"tfi": "TFI", "j1j2": "J1-J2"}[first["model"]]
        ax.set_title(f"{model} {style.lattice_label(first['lx'], first['ly'])}, {system}, "
                     f"K = {int(first['states'])}", fontsize="medium")
        ax.set_ylabel(rf"$|{quantity} - E_\mathrm{{exact}}| / |E_\mathrm{{exact}}|$")
    fig.tight_layout()
    style.save(fig, str(figures / "accuracy_training.png"), str(figures / "accuracy_training.pdf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training", type=Path, default=Path("results/benchmarks/accuracy_training.csv"))
    parser.add_argument("--figures", type=Path, default=Path("figures"))
    args = parser.parse_args()
    training = pd.read_csv(args.training)
    plot_pair(training, args.figures)
    plot_cases(training, args.figures)


if __name__ == "__main__":
    main()
