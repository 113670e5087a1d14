"""Table 1: J1-J2 energy per site and sampling efficiency for each proposal-network size.

Inputs: results/table1_runs.csv (one row per full VMC run: proposal_dim, proposal_layers, seed,
energy, energy_sigma, lx, ly, j2, mean_efficiency, mean_ess, reference_energy, steps, ... and, if
the VMC summary carries it, proposal_params) and the fixed-NQS ablation of ``nirbench ablate``
(results/table1_ablation.csv, one row per size; results/table1_ablation_calls.csv, one row per
size and training call). Outputs: results/table1.csv (one row per proposal size: the full runs'
means over seeds beside the ablation's ``fixed_nqs_*`` columns), results/table1.md (both as
Markdown tables, laid out like the paper's) and the ablation's figure (PNG and PDF).
"""

import argparse
import sys

import numpy as np
import pandas as pd
import style
from style import plt

from nirbench.io import write_csv_atomically, write_text_atomically

MODEL_NAMES = {"j1j2": "J1-J2", "tfi": "TFI"}
PARAM_COLUMNS = ("proposal_params", "n_proposal_params", "n_param")


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    runs = runs.copy()
    runs["n_sites"] = runs["lx"] * runs["ly"]
    runs["energy_per_site"] = runs["energy"] / runs["n_sites"]
    runs["sigma_per_site"] = runs.get("energy_sigma", np.nan) / runs["n_sites"]
    # V-score N Var(E) / E^2 (Wu et al. 2024, E_inf = 0): the summary's, or from its columns
    # (summaries written before nirbench recorded it)
    computed = runs["n_sites"] * runs.get("variance", np.nan) / runs["energy"] ** 2
    runs["v_score"] = runs["v_score"].fillna(computed) if "v_score" in runs else computed
    has_ref = "reference_energy" in runs and runs["reference_energy"].notna().any()
    if has_ref:
        runs["relative_error"] = (runs["energy"] - runs["reference_energy"]) / runs["reference_energy"].abs()
    # the exact energy of each trained state where the sector was enumerated (nan elsewhere)
    exact = runs.get("exact_energy", np.nan)
    runs["exact_energy_per_site"] = exact / runs["n_sites"]
    if has_ref:
        runs["exact_relative_error"] = (exact - runs["reference_energy"]) / runs["reference_energy"].abs()
    param_column = next((c for c in PARAM_COLUMNS if c in runs), None)
    rows = []
    if "status" not in runs:
        runs["status"] = "completed"
    for (dim, layers), all_runs in runs.groupby(["proposal_dim", "proposal_layers"], sort=True):
        # energies from every run that was not stalled (the paper leaves stalled rows empty; a run
        # stopped by its time limit has a final evaluation like a completed one); the sampling
        # efficiency from every run
        group = all_runs[all_runs["status"] != "stalled"]
        row = {
            "model": all_runs["model"].iloc[0],
            "lattice": f"{int(all_runs['lx'].iloc[0])}x{int(all_runs['ly'].iloc[0])}",
            "j2": all_runs["j2"].iloc[0] if "j2" in all_runs else np.nan,
            "d_embd": int(dim),
            "n_layer": int(layers),
            "n_param": int(all_runs[param_column].iloc[0]) if param_column else pd.NA,
            "energy_per_site": group["energy_per_site"].mean(),
            "energy_per_site_std": group["energy_per_site"].std(ddof=1) if len(group) > 1 else np.nan,
            "energy_per_site_sigma": group["sigma_per_site"].mean(),
            "v_score": group["v_score"].mean(),
            "efficiency": all_runs["mean_efficiency"].mean(),
            "efficiency_std": all_runs["mean_efficiency"].std(ddof=1) if len(all_runs) > 1 else np.nan,
            "mean_ess": all_runs["mean_ess"].mean() if "mean_ess" in all_runs else np.nan,
            "reference_energy_per_site": (
                all_runs["reference_energy"].iloc[0] / all_runs["n_sites"].iloc[0] if has_ref else np.nan
            ),
            "relative_error": group["relative_error"].mean() if has_ref and len(group) else np.nan,
            "exact_energy_per_site": group["exact_energy_per_site"].mean(),
            "exact_relative_error": group["exact_relative_error"].mean() if has_ref and len(group) else np.nan,
            "steps": int(all_runs["steps"].max()) if "steps" in all_runs else pd.NA,
            "wall_seconds": all_runs["wall_seconds"].mean() if "wall_seconds" in all_runs else np.nan,
            "n_seeds": int(all_runs["seed"].nunique()),
            "n_completed": len(group),
            # every run of this size converged (nirbench.estimators.final_drift)
            "converged": bool(all_runs["converged"].astype(bool).all()) if "converged" in all_runs else pd.NA,
        }
        rows.append(row)
    return pd.DataFrame(rows)


#: the ablation's columns in table1.csv, as ``fixed_nqs_<name>`` (nirbench.ablation)
ABLATION_COLUMNS = ("efficiency", "efficiency_sigma", "energy_per_site", "energy_per_site_sigma", "nqs_step",
                    "calls", "train_steps", "train_seconds")


def with_ablation(table: pd.DataFrame, ablation: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per size, from the full runs; returned as it is when empty) joined with the fixed-NQS
    ablation (one row per size) on ``(d_embd, n_layer)``; the ablation's columns get the prefix
    ``fixed_nqs_``. Sizes in only one of them keep NaN in the other's columns."""
    if table.empty:
        return table
    if ablation.empty:
        return table.assign(**{f"fixed_nqs_{name}": np.nan for name in ABLATION_COLUMNS})
    fixed = ablation[["d_embd", "n_layer", "n_param", *ABLATION_COLUMNS]].rename(
        columns={name: f"fixed_nqs_{name}" for name in ABLATION_COLUMNS}
    )
    merged = table.drop(columns="n_param").merge(fixed, on=["d_embd", "n_layer"], how="outer")
    return merged.sort_values(["d_embd", "n_layer"]).reset_index(drop=True)


def _fmt(value, spec: str, missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return missing
    return format(int(value) if spec.endswith("d") else value, spec)  # an outer join makes counts floats


def ablation_markdown(table: pd.DataFrame) -> list[str]:
    """The fixed-NQS ablation as Markdown lines (none when the table has no ablation rows)."""
    rows = table[table["fixed_nqs_efficiency"].notna()] if "fixed_nqs_efficiency" in table else table.iloc[:0]
    if rows.empty:
        return []
    first = rows.iloc[0]
    lines = [
        "## Every size against one fixed NQS",
        "",
        (
            f"The NQS is the final state of the largest proposal's run (after {int(first['fixed_nqs_nqs_step'])} "
            f"NQS updates) and stays fixed; every size starts from a fresh proposal and gets the same training: "
            f"{int(first['fixed_nqs_calls'])} NIR calls with {int(first['fixed_nqs_train_steps'])} Adam "
            f"step{'' if first['fixed_nqs_train_steps'] == 1 else 's'} each "
            "(`nirbench ablate`). Efficiency ESS/n_proposed of the trained, frozen proposal: mean ± standard error "
            "over the frozen calls. E/N: the fixed NQS's energy estimated with that proposal (the same quantity "
            "for every size)."
        ),
        "",
        "| d_embd | n_layer | n_param | ESS/n_proposed | E/N of the fixed NQS | training seconds |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for _, row in rows.iterrows():
        efficiency = _fmt(row["fixed_nqs_efficiency"], ".3f") + " ± " + _fmt(row["fixed_nqs_efficiency_sigma"], ".3f")
        energy = _fmt(row["fixed_nqs_energy_per_site"], ".5f") + " ± " + _fmt(row["fixed_nqs_energy_per_site_sigma"], ".5f")
        cells = [_fmt(row["d_embd"], "d"), _fmt(row["n_layer"], "d"), _fmt(row["n_param"], ",d"), efficiency, energy,
                 _fmt(row["fixed_nqs_train_seconds"], ".0f")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "# Table 1\n\nNo runs.\n"
    first = table.iloc[0]
    has_ref = table["reference_energy_per_site"].notna().any()
    lines = [
        (
            f"# Table 1: proposal-network size, {MODEL_NAMES.get(first['model'], first['model'])} "
            f"{first['lattice']} (J2/J1 = {first['j2']:g})"
        ),
        "",
        *ablation_markdown(table),
        "## One VMC run per size",
        "",
        (
            "Final variational energy per site E/N (units of J1; mean over the runs that did not stall ± seed "
            "std, or ± statistical error for one run; — where every run stalled below alpha_eff) and the "
            "sampling efficiency ESS/n_proposed averaged over the run (and over all seeds). V-score = N Var(E) / E^2 "
            "(Wu et al., Science 386, 296 (2024); E_inf = 0), mean over the same runs. A run stopped by its time "
            "limit counts, with its final evaluation; NQS updates: the most any run of that size made; the last "
            "column says whether every run converged. Where the Hilbert space can be enumerated, the exact energy "
            "of each trained state (no sampling error) stands beside the estimate; the claims judge it."
        ),
        "",
    ]
    has_exact = table["exact_energy_per_site"].notna().any() if "exact_energy_per_site" in table else False
    header = ["d_embd", "n_layer", "n_param", "E/N", "V-score", "ESS/n_proposed"]
    if has_ref:
        header.append(r"(E - E_ref) / \|E_ref\|")
    if has_exact:
        header.append("exact E/N of the state")
        if has_ref:
            header.append("its error")
    header.append("runs with an energy")
    header.append("NQS updates")
    header.append("converged")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---:"] * len(header)) + "|")
    for _, row in table[table["n_seeds"].notna()].iterrows():  # the sizes with full runs
        spread = row["energy_per_site_std"] if row["n_completed"] > 1 else row["energy_per_site_sigma"]
        energy = _fmt(row["energy_per_site"], ".5f")
        if energy != "—" and not pd.isna(spread):
            energy += f" ± {spread:.5f}"
        cells = [
            _fmt(row["d_embd"], "d"),
            _fmt(row["n_layer"], "d"),
            _fmt(row["n_param"], ",d"),
            energy,
            _fmt(row["v_score"], ".3g"),
            _fmt(row["efficiency"], ".3g"),
        ]
        if has_ref:
            cells.append(_fmt(row["relative_error"], ".2e"))
        if has_exact:
            cells.append(_fmt(row["exact_energy_per_site"], ".5f"))
            if has_ref:
                cells.append(_fmt(row["exact_relative_error"], ".2e"))
        cells.append(f"{int(row['n_completed'])}/{int(row['n_seeds'])}")
        cells.append(_fmt(row["steps"], "d"))
        cells.append({True: "yes", False: "no"}.get(row.get("converged"), "—"))
        lines.append("| " + " | ".join(cells) + " |")
    if has_ref:
        lines += ["", f"Reference E/N = {first['reference_energy_per_site']:.6f} (exact diagonalisation)."]
    return "\n".join(lines) + "\n"


def plot_ablation(table: pd.DataFrame, calls: pd.DataFrame, png: str, pdf: str) -> None:
    """Left: the efficiency of every training call per size (thin) and its running mean over a
    tenth of the calls (thick). Right: the frozen proposal's efficiency (± standard error) against its
    parameter count, beside the full runs' mean efficiency."""
    if calls.empty or "fixed_nqs_efficiency" not in table or table["fixed_nqs_efficiency"].isna().all():
        style.empty_figure(png, pdf, "no proposal-size ablation")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 2.9))
    window = max(1, int(calls["call"].max()) // 10)
    sizes = table.sort_values("n_param")
    for i, (_, row) in enumerate(sizes.iterrows()):
        color = style.LEVEL_COLORS[i % len(style.LEVEL_COLORS)]
        size = calls[(calls["d_embd"] == row["d_embd"]) & (calls["n_layer"] == row["n_layer"])].sort_values("call")
        left.plot(size["call"], size["efficiency"], color=color, alpha=0.3, linewidth=0.7)
        mean = size["efficiency"].rolling(window, min_periods=1).mean()
        left.plot(size["call"], mean, color=color, label=f"{int(row['d_embd'])}/{int(row['n_layer'])} ({int(row['n_param']):,} parameters)")
    left.set_xlabel("training call (fixed NQS)")
    left.set_ylabel("ESS / n_proposed")
    left.legend(title="d_embd / n_layer", loc="upper left")
    right.errorbar(sizes["n_param"], sizes["fixed_nqs_efficiency"], yerr=sizes["fixed_nqs_efficiency_sigma"],
                   marker="o", color=style.sampler_color("nir"), capsize=2, label="fixed NQS, frozen proposal")  # fmt: skip
    if "efficiency" in sizes and sizes["efficiency"].notna().any():
        right.plot(sizes["n_param"], sizes["efficiency"], marker="s", linestyle="--", color="0.45",
                   label="full VMC run, mean over the run")  # fmt: skip
    right.set_xscale("log")
    right.set_xlabel("proposal parameters")
    right.set_ylabel("ESS / n_proposed")
    right.set_ylim(bottom=0)
    right.legend(loc="lower right")
    fig.tight_layout()
    style.save(fig, png, pdf)


def make_table(csv: str, out_csv: str, out_md: str, ablation_csv: str | None = None, calls_csv: str | None = None,
               png: str | None = None, pdf: str | None = None) -> None:  # fmt: skip
    """Write table1.csv and table1.md from the runs (and the ablation, when given), and the
    ablation's figure when ``png`` and ``pdf`` are given."""
    runs = pd.read_csv(csv)
    table = aggregate(runs) if len(runs) else pd.DataFrame()
    ablation = pd.read_csv(ablation_csv) if ablation_csv else pd.DataFrame()
    table = with_ablation(table, ablation)
    write_csv_atomically(table, out_csv)
    text = markdown(table)
    write_text_atomically(text, out_md)
    print(text)
    if png and pdf:
        plot_ablation(table, pd.read_csv(calls_csv) if calls_csv else pd.DataFrame(), png, pdf)


if "snakemake" in globals():
    with open(snakemake.log[0], "w") as log:  # noqa: F821
        sys.stdout = log
        make_table(
            snakemake.input.runs, snakemake.output.csv, snakemake.output.md, snakemake.input.ablation,  # noqa: F821
            snakemake.input.ablation_calls, snakemake.output.png, snakemake.output.pdf,  # noqa: F821
        )  # fmt: skip
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("out_csv")
    parser.add_argument("out_md")
    parser.add_argument("--ablation", help="results/table1_ablation.csv")
    parser.add_argument("--ablation-calls", help="results/table1_ablation_calls.csv")
    parser.add_argument("--png")
    parser.add_argument("--pdf")
    args = parser.parse_args()
    make_table(args.csv, args.out_csv, args.out_md, args.ablation, args.ablation_calls, args.png, args.pdf)
