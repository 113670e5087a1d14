"""The exact levels of a training NQS against ED, every few updates, and of parameter averages.

Trains one run (a ``run.yaml`` of the pipeline or any ``nirbench vmc --config`` file, with
``--set`` overrides as JSON) iteration by iteration, and every ``--every`` NQS updates writes the
relative error against ED of each exact level of the current NQS (enumeration,
``nirbench.exact.nqs_exact_energies``; 4x4 at most) and of running means of its parameters taken
from the updates after each ``--average-from`` (Becca and Sorella's practice of averaging the
variational parameters over the last SR iterations). ``max_minutes`` is lifted, so the run makes
all its updates. ``--checkpoint DIR`` saves the final run (``benchmarks/level_overlaps.py`` reads it).

    python benchmarks/level_trajectory.py --run-config RUN.yaml --set '{"steps": 1200, "batch": 512}' \\
        --average-from 900 --out results/benchmarks/NAME.csv

One row per (NQS update, ``variant``: ``current`` or ``average_from_U``, level).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import equinox as eqx
import jax
import pandas as pd

from nirbench.exact import lowest_levels, nqs_exact_energies
from nirbench.io import write_csv_atomically
from nirbench.options import VMCConfig
from nirbench.vmc import VMCRun


def level_errors(nqs, hamiltonian, ed_levels) -> list[float]:
    """Relative errors ``(e_k - ed_k) / |ed_k|`` of the exact levels of ``nqs``."""
    levels = nqs_exact_energies(nqs, hamiltonian)["levels"]
    return [float((level - ed) / abs(ed)) for level, ed in zip(levels, ed_levels, strict=True)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-config", required=True, help="a run's options (YAML)")
    parser.add_argument("--set", default="{}", help='JSON object of options to change, e.g. \'{"steps": 1200}\'')
    parser.add_argument("--every", type=int, default=25, help="NQS updates between measurements")
    parser.add_argument("--average-from", type=int, nargs="*", default=[], help="updates after which to average")
    parser.add_argument("--checkpoint", help="directory to save the final run in")
    parser.add_argument("--out", required=True, help="CSV to write (rewritten after every measurement)")
    args = parser.parse_args(argv)
    config = VMCConfig.from_yaml(args.run_config)
    config = dataclasses.replace(config, max_minutes=None, **json.loads(args.set))
    run = VMCRun(config)  # validates the changed options
    ed_levels = lowest_levels(run.hamiltonian, config.states)
    _, static = eqx.partition(run.nqs, eqx.is_inexact_array)
    means = dict.fromkeys(args.average_from)  # running means of the parameters after update `start`
    rows, last = [], 0
    while run.nqs_step < config.steps:
        run.step()
        if run.nqs_step == last:  # an iteration that only retrained the proposal
            continue
        last = run.nqs_step
        params, _ = eqx.partition(run.nqs, eqx.is_inexact_array)
        for start in args.average_from:
            n = run.nqs_step - start  # updates averaged, this one included (one update per step here)
            if n == 1:
                means[start] = params
            elif n > 1:
                means[start] = jax.tree_util.tree_map(lambda mean, x, n=n: mean + (x - mean) / n, means[start], params)
        if run.nqs_step % args.every and run.nqs_step != config.steps:
            continue
        variants = {"current": run.nqs}
        variants.update({f"average_from_{s}": eqx.combine(m, static) for s, m in means.items() if m is not None})
        errors = {variant: level_errors(nqs, run.hamiltonian, ed_levels) for variant, nqs in variants.items()}
        rows += [{"nqs_step": run.nqs_step, "iteration": run.iteration, "variant": variant, "level": level,
                  "relative_error": error} for variant, levels in errors.items() for level, error in enumerate(levels)]  # fmt: skip
        print(run.nqs_step, {variant: [f"{e:.2e}" for e in levels] for variant, levels in errors.items()}, flush=True)
        write_csv_atomically(pd.DataFrame(rows), args.out)
    if args.checkpoint:
        run.save_checkpoint(args.checkpoint)


if __name__ == "__main__":
    main()
