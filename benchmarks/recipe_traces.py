"""Issue 15's numbers for VMC runs against one reference: time to the target, updating share, trace.

    python benchmarks/recipe_traces.py --reference REF.csv --runs LABEL=STEPS.csv [LABEL=STEPS.csv ...] \
        [--target 1e-3] [--passage 1e-2] [--window 10] [--out TABLE.csv] [--plot FIGURE.png]

Each ``STEPS.csv`` is the per-iteration CSV of ``nirbench vmc --out`` (columns ``energy``,
``seconds``, ``nqs_updated``); ``STEPS_summary.csv`` beside it, where present, gives the final
evaluation (``energy``, ``energy_sigma``, ``relative_error``, levels ``e_k``), and
``STEPS_eval_nir.csv``, where present, the same state measured again by NIR (``nirbench evaluate
--sampler nir``: a Metropolis run whose chains froze cannot measure its own state).
``REF.csv`` is an
``ed`` or ``extrapolate`` CSV of the same system (``nirbench.options.load_reference``); the trace of
its K lowest levels is the target. Per run, one row: minutes of iterations, iterations, share of
them that updated the NQS, the first minute at which the mean of ``--window`` consecutive
iterations' trace energies lies within ``--target`` (relative) of the reference ("within after"),
the passage through the ordering (the first minute within ``--passage``, and how many iterations
until then held the NQS), Metropolis's mean acceptance over the last 100 iterations, and the final
evaluation(s). The figure: the relative error of that rolling
mean against minutes, with a star at a run's last minute where its state was measured again by NIR.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from nirbench.hamiltonians import make_hamiltonian
from nirbench.io import write_csv_atomically
from nirbench.options import load_reference


def reference_trace(path: str, n_states: int) -> float:
    """The sum of the ``n_states`` lowest energies of the reference CSV (no system check: the CSV's own)."""
    frame = pd.read_csv(path)
    first = frame.iloc[0]
    hamiltonian = make_hamiltonian(first["model"], int(first["lx"]), int(first["ly"]), first["bc"], g=float(first["g"]))
    return float(np.sum(load_reference(path, hamiltonian, n_states)))


def run_row(
    label: str, steps_path: str, reference: float, target: float, window: int, passage: float = 1e-2
) -> tuple[dict, pd.DataFrame]:
    """The table row of one run and its trace ``(minutes, relative error of the rolling mean)``."""
    steps = pd.read_csv(steps_path)
    minutes = steps["seconds"].cumsum() / 60
    rolling = steps["energy"].rolling(window).mean()
    error = (rolling - reference) / abs(reference)
    within = minutes[error.abs() <= target]
    passed = np.flatnonzero((error.abs() <= passage).to_numpy())
    held = ~steps["nqs_updated"].astype(bool)
    row = {
        "run": label,
        "minutes": float(minutes.iloc[-1]),
        "iterations": len(steps),
        "updating": float(steps["nqs_updated"].mean()),
        "longest_hold": int(_longest_run(held.to_numpy())),
        "within_target_after_minutes": float(within.iloc[0]) if len(within) else np.nan,
        "within_passage_after_minutes": float(minutes.iloc[passed[0]]) if len(passed) else np.nan,
        "held_before_passage": int(held.iloc[: passed[0] + 1].sum()) if len(passed) else int(held.sum()),
        "reference_trace": reference,
    }
    if "acceptance" in steps and steps["acceptance"].notna().any():  # Metropolis: have the chains frozen?
        row["acceptance_last_100"] = float(steps["acceptance"].iloc[-100:].mean())
    def beside(suffix: str) -> Path:  # a file written next to the run's CSV: STEPS{suffix}
        return Path(steps_path).with_name(Path(steps_path).stem + suffix)

    summary_path = beside("_summary.csv")
    if summary_path.is_file():
        summary = pd.read_csv(summary_path).iloc[0]
        levels = sorted(c for c in summary.index if c.startswith("e_") and not c.endswith("sigma"))
        row.update({"final_energy": summary["energy"], "final_sigma": summary["energy_sigma"],
                    "final_relative_error": summary["relative_error"],
                    "final_levels": " ".join(f"{summary[c]:.3f}" for c in levels)})  # fmt: skip
    remeasured_path = beside("_eval_nir.csv")
    if remeasured_path.is_file():
        remeasured = pd.read_csv(remeasured_path).iloc[0]
        row.update({"nir_energy": remeasured["energy"], "nir_sigma": remeasured["energy_sigma"],
                    "nir_relative_error": abs(remeasured["energy"] - reference) / abs(reference)})  # fmt: skip
    return row, pd.DataFrame({"minutes": minutes, "error": error})


def _longest_run(flags: np.ndarray) -> int:
    """The longest stretch of consecutive ``True`` in ``flags``."""
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def plot(
    traces: dict[str, pd.DataFrame], target: float, window: int, path: str, title: str = "",
    remeasured: dict[str, tuple[float, float]] | None = None,
) -> None:
    """The relative error of each run's rolling-mean trace against minutes, log scale, the target dashed;
    ``remeasured[label] = (minutes, relative error)``: the run's final state measured again by NIR, a star
    at its last minute (the run's own trace may come from frozen chains)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.6, 4.2))
    colours = plt.get_cmap("tab20").colors if len(traces) > 10 else plt.get_cmap("tab10").colors
    for index, (label, trace) in enumerate(traces.items()):  # distinct colours for up to 20 runs
        colour = colours[index % len(colours)]
        ax.plot(trace["minutes"], trace["error"].abs(), label=label, linewidth=1.2, color=colour)
        if remeasured and label in remeasured:
            ax.plot(*remeasured[label], marker="*", markersize=11, color=colour, linestyle="none",
                    label=f"{label}: its state measured by NIR")  # fmt: skip
    ax.axhline(target, color="grey", linestyle="--", linewidth=0.8, label=f"target {target:g}")
    ax.set_yscale("log")
    ax.set_xlabel("minutes of iterations (one core)")
    ax.set_ylabel(f"relative error of the trace\n(mean of {window} iterations)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the traces
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--runs", nargs="+", required=True, help="LABEL=STEPS.csv")
    parser.add_argument("--states", type=int, default=3)
    parser.add_argument("--target", type=float, default=1e-3)
    parser.add_argument("--passage", type=float, default=1e-2, help="relative error that marks the ordering passed")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--out")
    parser.add_argument("--plot")
    parser.add_argument("--title", default="")
    args = parser.parse_args()
    reference = reference_trace(args.reference, args.states)
    rows, traces = [], {}
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"--runs takes LABEL=STEPS.csv, got {spec!r}")
        row, traces[label] = run_row(label, path, reference, args.target, args.window, args.passage)
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if args.out:
        write_csv_atomically(table, args.out)
    if args.plot:
        remeasured = {row["run"]: (row["minutes"], row["nir_relative_error"]) for row in rows if "nir_relative_error" in row}
        plot(traces, args.target, args.window, args.plot, args.title, remeasured)


if __name__ == "__main__":
    main()
