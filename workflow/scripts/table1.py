"""Table 1: J1-J2 energy per site and sampling efficiency for each proposal-network size.

Input: results/table1_runs.csv (one row per run: proposal_dim, proposal_layers, seed, energy,
energy_sigma, lx, ly, j2, mean_efficiency, mean_ess, reference_energy, steps, ... and, if the VMC
summary carries it, proposal_params). Output: results/table1.csv (one row per proposal size,
mean over seeds) and results/table1.md (the same as a Markdown table, laid out like the paper's).
"""


import argparse
import sys

import numpy as np
import pandas as pd

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
            "steps": int(all_runs["steps"].max()) if "steps" in all_runs else pd.NA,
            "wall_seconds": all_runs["wall_seconds"].mean() if "wall_seconds" in all_runs else np.nan,
            "n_seeds": int(all_runs["seed"].nunique()),
            "n_completed": len(group),
            # every run of this size converged (nirbench.estimators.final_drift)
            "converged": bool(all_runs["converged"].astype(bool).all()) if "converged" in all_runs else pd.NA,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value, spec: str, missing: str = "—") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return missing
    return format(value, spec)


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
        (
            "Final variational energy per site E/N (units of J1; mean over the runs that did not stall ± seed "
            "std, or ± statistical error for one run; — where every run stalled below alpha_eff) and the "
            "sampling efficiency ESS/n_proposed averaged over the run (and over all seeds). V-score = N Var(E) / E^2 "
            "(Wu et al., Science 386, 296 (2024); E_inf = 0), mean over the same runs. A run stopped by its time "
            "limit counts, with its final evaluation; NQS updates: the most any run of that size made; the last "
            "column says whether every run converged."
        ),
        "",
    ]
    header = ["d_embd", "n_layer", "n_param", "E/N", "V-score", "ESS/n_proposed"]
    if has_ref:
        header.append(r"(E - E_ref) / \|E_ref\|")
    header.append("runs with an energy")
    header.append("NQS updates")
    header.append("converged")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---:"] * len(header)) + "|")
    for _, row in table.iterrows():
        spread = row["energy_per_site_std"] if row["n_completed"] > 1 else row["energy_per_site_sigma"]
        energy = _fmt(row["energy_per_site"], ".5f")
        if energy != "—" and not pd.isna(spread):
            energy += f" ± {spread:.5f}"
        cells = [
            str(row["d_embd"]),
            str(row["n_layer"]),
            _fmt(row["n_param"], ",d") if not pd.isna(row["n_param"]) else "—",
            energy,
            _fmt(row["v_score"], ".3g"),
            _fmt(row["efficiency"], ".3g"),
        ]
        if has_ref:
            cells.append(_fmt(row["relative_error"], ".2e"))
        cells.append(f"{row['n_completed']}/{row['n_seeds']}")
        cells.append(_fmt(row["steps"], "d"))
        cells.append({True: "yes", False: "no"}.get(row.get("converged"), "—"))
        lines.append("| " + " | ".join(cells) + " |")
    if has_ref:
        lines += ["", f"Reference E/N = {first['reference_energy_per_site']:.6f} (exact diagonalisation)."]
    return "\n".join(lines) + "\n"


def make_table(csv: str, out_csv: str, out_md: str) -> None:
    runs = pd.read_csv(csv)
    table = aggregate(runs) if len(runs) else pd.DataFrame()
    write_csv_atomically(table, out_csv)
    text = markdown(table)
    write_text_atomically(text, out_md)
    print(text)


if "snakemake" in globals():
    with open(snakemake.log[0], "w") as log:  # noqa: F821
        sys.stdout = log
        make_table(snakemake.input[0], snakemake.output.csv, snakemake.output.md)  # noqa: F821
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv")
    parser.add_argument("out_csv")
    parser.add_argument("out_md")
    args = parser.parse_args()
    make_table(args.csv, args.out_csv, args.out_md)
