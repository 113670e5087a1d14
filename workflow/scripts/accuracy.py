"""The accuracy benchmarks against their targets (config block `accuracy`, rule collect_accuracy).

Inputs: each case's summary.csv, run.yaml and steps.csv (in the order of params.cases), and its
target. Outputs: ``accuracy.csv``, one row per case: ``case, model, lattice, bc, g, j2, states,
net, sampler, steps, iterations, energy, energy_sigma, reference_energy, relative_error, target,
met, converged, mean_efficiency, wall_minutes, status`` (``relative_error = |E - E_ref| / |E_ref|``
of the trace energy, E/N alike for K = 1; ``met`` empty without a target or a reference); and
``accuracy_training.csv``, every step of every case labelled with its case and run columns.
"""

import sys

import pandas as pd
from collect import collect_steps, collect_summaries

from nirbench.io import write_csv_atomically

COLUMNS = [
    "case", "model", "lattice", "bc", "g", "j2", "states", "net", "sampler", "steps", "iterations", "energy",
    "energy_sigma", "reference_energy", "relative_error", "target", "met", "converged", "mean_efficiency",
    "wall_minutes", "status",
]  # fmt: skip


def table(summaries, configs, cases, targets) -> pd.DataFrame:
    runs = collect_summaries(summaries, configs)
    runs["case"], runs["target"] = list(cases), list(targets)
    runs["lattice"] = runs["lx"].astype(str) + "x" + runs["ly"].astype(str)
    runs["met"] = [
        "" if pd.isna(target) or pd.isna(error) else bool(error <= target)
        for target, error in zip(runs["target"], runs["relative_error"])
    ]
    runs["wall_minutes"] = runs["wall_seconds"] / 60
    return runs.reindex(columns=COLUMNS)


def training(steps, summaries, configs, cases, targets) -> pd.DataFrame:
    frame = collect_steps(steps, summaries, configs)
    lengths = [len(pd.read_csv(path)) for path in steps]
    frame["case"] = [case for case, n in zip(cases, lengths) for _ in range(n)]
    frame["target"] = [target for target, n in zip(targets, lengths) for _ in range(n)]
    return frame


if "snakemake" in globals():
    smk = snakemake  # noqa: F821
    with open(smk.log[0], "w") as log:
        sys.stdout = log
        inputs = smk.input
        result = table(inputs.summaries, inputs.configs, smk.params.cases, smk.params.targets)
        write_csv_atomically(result, smk.output.table)
        write_csv_atomically(
            training(inputs.steps, inputs.summaries, inputs.configs, smk.params.cases, smk.params.targets),
            smk.output.training,
        )
        print(result.to_string(index=False))
