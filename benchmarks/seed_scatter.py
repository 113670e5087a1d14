"""Two settings compared over seeds: the final error of every run, and each setting's mean and scatter.

    python benchmarks/seed_scatter.py --runs SETTING=SUMMARY.csv [SETTING=SUMMARY.csv ...] \
        [--target 1e-4] [--out TABLE.csv] [--plot FIGURE.png] [--title TEXT]

Each ``SUMMARY.csv`` is the one-row ``--summary`` CSV of ``nirbench vmc`` run with a reference; runs
sharing a ``SETTING`` label are seeds of one setting. A run's error is the relative error of its
trace energy against the reference's, taken from the **exact energy of the trained state** where
the run enumerated its Hilbert space (``exact_energy``; 4x4 and smaller), else from the sampled
final evaluation (column ``measure`` says which), with the levels' absolute errors beside it. The
table has one row per run, then one per setting (``seed`` = ``all``): the mean of its runs' errors,
their sample standard deviation (``scatter``) and the number of runs. One seed is one trajectory:
a difference between two settings means something only where it exceeds the runs' scatter.
The figure: every run's error per setting (log scale), the settings' means as bars, the target
dashed.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nirbench.io import write_csv_atomically

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
from claims import with_exact_energies  # the pipeline's one rule for "exact where enumerated"


def runs_table(runs: list[tuple[str, str]]) -> pd.DataFrame:
    """One row per ``(setting, summary path)``: its trace error, exact where the run enumerated its
    states (``claims.with_exact_energies``, the pipeline's one rule for it), and level errors."""
    sampled = pd.concat(
        [pd.read_csv(path).iloc[:1].assign(setting=setting, summary=path) for setting, path in runs],
        ignore_index=True,
    )
    exact, _ = with_exact_energies(sampled)
    enumerated = (
        sampled["exact_energy"].notna() if "exact_energy" in sampled else pd.Series(False, sampled.index)
    )
    reference = exact["reference_energy"]
    table = pd.DataFrame({
        "setting": exact["setting"], "seed": exact["seed"].astype(int).astype(str),
        "iterations": exact["iterations"].astype(int), "wall_minutes": exact["wall_seconds"] / 60,
        "measure": np.where(enumerated, "exact", "sampled"),
        "relative_error": (exact["energy"] - reference).abs() / reference.abs(),
        "sampled_relative_error": sampled["relative_error"], "summary": exact["summary"],
    })  # fmt: skip
    for k in range(int(exact["states"].max())):
        if f"e_{k}" in exact and f"reference_e_{k}" in exact:
            table[f"level_{k}_error"] = exact[f"e_{k}"] - exact[f"reference_e_{k}"]
    return table


def scatter_table(runs: list[tuple[str, str]]) -> pd.DataFrame:
    """One row per run, then one per setting (``seed == "all"``: mean, ``scatter`` = sample standard
    deviation of the runs' errors, ``runs``)."""
    rows = runs_table(runs)
    means = []
    for setting, group in rows.groupby("setting", sort=False):
        means.append({"setting": setting, "seed": "all", "runs": len(group),
                      "relative_error": group["relative_error"].mean(),
                      "scatter": group["relative_error"].std(ddof=1) if len(group) > 1 else np.nan,
                      "measure": "/".join(sorted(set(group["measure"]))),
                      "iterations": group["iterations"].mean(), "wall_minutes": group["wall_minutes"].mean()})  # fmt: skip
    return pd.concat([rows, pd.DataFrame(means)], ignore_index=True)


def plot(table: pd.DataFrame, target: float | None, path: str, title: str = "") -> None:
    """Every run's error per setting (points, labelled by seed), each setting's mean (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, means = table[table["seed"] != "all"], table[table["seed"] == "all"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(means), 3.6))
    for x, mean in enumerate(means.itertuples()):
        group = runs[runs["setting"] == mean.setting]
        ax.bar(x, mean.relative_error, width=0.6, color="C0", alpha=0.25)
        ax.scatter(np.full(len(group), x), group["relative_error"], color="C0", zorder=3)
        order = group["relative_error"].rank(method="first").to_numpy() - 1  # labels of close points apart
        for seed, error, rank in zip(group["seed"], group["relative_error"], order):
            shift = 0 if len(group) == 1 else 5 * (2 * rank / (len(group) - 1) - 1)
            ax.annotate(
                f"seed {seed}",
                (x, error),
                xytext=(6, shift),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    if target:
        ax.axhline(target, color="k", ls="--", lw=1)
        ax.text(
            0.01, target, f" target {target:g}", transform=ax.get_yaxis_transform(), va="bottom", fontsize=8
        )
    ax.set_xticks(range(len(means)), means["setting"])
    ax.set_yscale("log")
    low, high = runs["relative_error"].min(), runs["relative_error"].max()
    ax.set_ylim(min(low, target or low) / 3, max(high, target or high) * 3)
    ax.set_ylabel("relative error of the trace energy\n(exact energy of the trained state)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, metavar="SETTING=SUMMARY.csv")
    parser.add_argument("--target", type=float, default=None, help="the error to reach (drawn dashed)")
    parser.add_argument("--out", default=None, help="table CSV")
    parser.add_argument("--plot", default=None, help="figure (png or pdf)")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    runs = []
    for item in args.runs:
        setting, sep, path = item.rpartition("=")  # the setting may contain "=", a path not
        if not sep or not setting or not path:
            parser.error(f"--runs takes SETTING=SUMMARY.csv, got {item!r}")
        runs.append((setting, path))
    table = scatter_table(runs)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns="summary").to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.out:
        write_csv_atomically(table, args.out)
    if args.plot:
        plot(table, args.target, args.plot, args.title)


if __name__ == "__main__":
    main()
