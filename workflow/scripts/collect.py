"""Gather per-run CSVs into one tidy CSV per experiment (pandas only: no physics, no plots).

Modes (``params.mode`` under Snakemake, ``--mode`` on the command line):

``summaries``  one row per run: the run's summary.csv row, the hyperparameters of its run.yaml
               that the summary does not carry (e.g. ``proposal_dim``), ``preset``, ``run_dir``.
``steps``      one row per run and step: steps.csv, labelled with the run's identity
               (model, lattice, coupling, K, sampler, seed, preset) and ``reference_energy``.
``levels``     one row per (method, g, state[, chi, seed]): the NQS levels e_k (from the
               summaries), the ED levels, every DMRG bond dimension and the DMRG extrapolation;
               each with ``reference_energy`` (ED where available, else DMRG extrapolated),
               ``reference_method`` and ``relative_error = (E - E_ref) / |E_ref|``. NQS rows
               also carry ``exact_energy``, the exact level of the trained state (the summary's
               ``exact_e_k``: by enumeration, no sampling error; nan where the Hilbert space is
               too large) and its ``exact_relative_error``.

Run standalone (for tests): ``python collect.py --mode summaries --summaries a.csv b.csv
--configs a.yaml b.yaml --out out.csv`` (``--steps``, ``--ed``, ``--dmrg``, ``--extrapolated``).
"""


import argparse
import math
import os
import re
import sys

import pandas as pd
import yaml

from nirbench.io import write_csv_atomically

IDENTITY = ["model", "lx", "ly", "bc", "g", "j2", "states", "net", "sampler", "seed"]


def preset_of(path: str) -> str | None:
    match = re.search(r"/preset~([^/]+)/", "/" + path.replace(os.sep, "/"))
    return match.group(1) if match else None


def read_run(summary_path: str, config_path: str | None) -> pd.DataFrame:
    """The one-row summary of a run, widened with its run.yaml keys and its identity."""
    row = pd.read_csv(summary_path)
    if len(row) != 1:
        raise ValueError(f"{summary_path}: expected one summary row, found {len(row)}")
    if config_path:
        with open(config_path) as handle:
            settings = yaml.safe_load(handle) or {}
        for key, value in settings.items():
            name = "reference_file" if key == "reference" else key
            if name not in row.columns:
                row[name] = value
    row["preset"] = preset_of(summary_path)
    row["run_dir"] = os.path.dirname(summary_path)
    return row


def collect_summaries(summaries, configs) -> pd.DataFrame:
    configs = configs or [None] * len(summaries)
    if len(configs) != len(summaries):
        raise ValueError("need one run.yaml per summary.csv")
    frames = [read_run(s, c) for s, c in zip(summaries, configs)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def collect_steps(steps, summaries, configs) -> pd.DataFrame:
    runs = collect_summaries(summaries, configs)
    if len(steps) != len(runs):
        raise ValueError("need one summary.csv per steps.csv")
    label_columns = [c for c in IDENTITY + ["reference_energy", "exact_energy", "converged", "preset", "run_dir"] if c in runs.columns]
    frames = []
    for path, (_, run) in zip(steps, runs.iterrows()):
        frame = pd.read_csv(path)
        for column in label_columns:
            if column not in frame.columns:
                frame[column] = run[column]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _levels_of_runs(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, run in runs.iterrows():
        n_sites = int(run["lx"]) * int(run["ly"])
        levels = sorted(run[f"e_{k}"] for k in range(int(run["states"])))
        for state, energy in enumerate(levels):
            rows.append(
                {
                    "method": "nqs",
                    "model": run["model"],
                    "lx": run["lx"],
                    "ly": run["ly"],
                    "bc": run["bc"],
                    "g": run["g"],
                    "state": state,
                    "chi": pd.NA,
                    "seed": run["seed"],
                    "sampler": run["sampler"],
                    "energy": energy,
                    "exact_energy": run.get(f"exact_e_{state}", math.nan),
                    "energy_per_site": energy / n_sites,
                    "uncertainty": pd.NA,
                    "trace_energy": run["energy"],
                    "trace_sigma": run.get("energy_sigma", pd.NA),
                    "level_sigma": run.get(f"e_{state}_sigma", pd.NA),
                    "converged": run.get("converged", pd.NA),
                }
            )
    return pd.DataFrame(rows)


def _read_all(paths) -> pd.DataFrame:
    frames = [pd.read_csv(path) for path in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def collect_levels(summaries, configs, ed, dmrg, extrapolated) -> pd.DataFrame:
    runs = collect_summaries(summaries, configs)
    parts = [_levels_of_runs(runs)] if len(runs) else []

    ed_frame = _read_all(ed)
    if len(ed_frame):
        ed_frame = ed_frame.assign(method="ed", chi=pd.NA, uncertainty=0.0)
        parts.append(ed_frame)
    dmrg_frame = _read_all(dmrg)
    if len(dmrg_frame):
        parts.append(dmrg_frame.assign(method="dmrg"))
    if len(extrapolated) != len(dmrg):
        raise ValueError("need one DMRG scan per extrapolation (they label its system)")
    for scan_path, path in zip(dmrg, extrapolated):
        # the extrapolation CSV is one row per state; its system comes from the matching scan
        system = pd.read_csv(scan_path).iloc[0][["model", "lx", "ly", "bc", "g"]].to_dict()
        extrap = pd.read_csv(path).rename(columns={"energy_extrapolated": "energy", "method": "fit_method"})
        extrap = extrap.drop(columns=[c for c in system if c in extrap.columns])
        parts.append(extrap.assign(**system, method="dmrg_extrapolated", chi=pd.NA))
    if not parts:
        return pd.DataFrame()
    levels = pd.concat(parts, ignore_index=True)
    levels["energy_per_site"] = levels["energy"] / (levels["lx"] * levels["ly"])
    levels["g"] = levels["g"].astype(float)

    # the reference of each (g, state): ED where it exists, else the DMRG extrapolation
    references = []
    for method in ("dmrg_extrapolated", "ed"):  # later wins
        ref = levels.loc[levels["method"] == method, ["g", "state", "energy"]]
        references.append(ref.assign(reference_method=method).rename(columns={"energy": "reference_energy"}))
    reference = pd.concat(references).drop_duplicates(["g", "state"], keep="last")
    levels = levels.merge(reference, on=["g", "state"], how="left")
    levels["relative_error"] = (levels["energy"] - levels["reference_energy"]) / levels["reference_energy"].abs()
    if "exact_energy" in levels:
        levels["exact_relative_error"] = (
            (levels["exact_energy"] - levels["reference_energy"]) / levels["reference_energy"].abs()
        )

    keep = [
        "method", "model", "lx", "ly", "bc", "g", "state", "chi", "seed", "sampler", "energy",
        "energy_per_site", "uncertainty", "fit_method", "trace_energy", "trace_sigma", "level_sigma", "converged",
        "truncation_error",
        "reference_method", "reference_energy", "relative_error", "exact_energy", "exact_relative_error",
    ]
    levels = levels[[c for c in keep if c in levels.columns]]
    order = {"ed": 0, "dmrg_extrapolated": 1, "dmrg": 2, "nqs": 3}
    levels = levels.sort_values(
        ["g", "state", "method", "chi", "seed"], key=lambda s: s.map(order) if s.name == "method" else s
    )
    return levels.reset_index(drop=True)


def run(mode, out, summaries=(), configs=(), steps=(), ed=(), dmrg=(), extrapolated=(), experiment=None):
    summaries, configs, steps = list(summaries), list(configs), list(steps)
    if mode == "summaries":
        frame = collect_summaries(summaries, configs)
    elif mode == "steps":
        frame = collect_steps(steps, summaries, configs)
    elif mode == "levels":
        frame = collect_levels(summaries, configs, list(ed), list(dmrg), list(extrapolated))
    else:
        raise ValueError(f"unknown mode {mode!r}; the modes are summaries, steps, levels")
    if experiment is not None and len(frame):
        frame.insert(0, "experiment", experiment)
    write_csv_atomically(frame, out)
    print(f"collect {mode}: {len(frame)} rows -> {out}")


def _from_snakemake(smk):
    inputs = smk.input
    get = lambda name: list(getattr(inputs, name, []) or [])
    with open(smk.log[0], "w") as log:
        sys.stdout = log
        run(
            smk.params.mode,
            smk.output[0],
            summaries=get("summaries"),
            configs=get("configs"),
            steps=get("steps"),
            ed=get("ed"),
            dmrg=get("dmrg"),
            extrapolated=get("extrapolated"),
            experiment=getattr(smk.params, "experiment", None),
        )


def _main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", required=True, choices=["summaries", "steps", "levels"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--experiment")
    for name in ("summaries", "configs", "steps", "ed", "dmrg", "extrapolated"):
        parser.add_argument(f"--{name}", nargs="*", default=[])
    args = parser.parse_args(argv)
    run(args.mode, args.out, args.summaries, args.configs, args.steps, args.ed, args.dmrg, args.extrapolated,
        args.experiment)


if "snakemake" in globals():
    _from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    _main()
