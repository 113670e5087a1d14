"""The final evaluations of the pipeline's runs against the exact energies of the same states.

For every run summary under ``--results`` whose sector was enumerated (``exact_energy`` set),
prints ``z = (estimate - exact) / sigma`` for the trace and each level (``energy``, ``e_k`` and
their ``*_sigma`` against ``exact_energy``, ``exact_e_k``), then per column the count, mean, RMS
and how many ``|z| > 2``. Honest error bars give ``z`` of order 1:

    python benchmarks/exact_vs_sampled.py --results results
"""

import argparse
import pathlib

import numpy as np
import pandas as pd


def z_scores(results: str) -> pd.DataFrame:
    rows = []
    for path in sorted(pathlib.Path(results, "vmc").rglob("summary.csv")):
        run = pd.read_csv(path).iloc[0]
        if not np.isfinite(run.get("exact_energy", np.nan)):
            continue
        row = {"run": str(path.parent.relative_to(pathlib.Path(results, "vmc"))), "sampler": run["sampler"],
               "z_trace": (run["energy"] - run["exact_energy"]) / run["energy_sigma"]}  # fmt: skip
        for k in range(int(run["states"])):
            row[f"z_e{k}"] = (run[f"e_{k}"] - run[f"exact_e_{k}"]) / run[f"e_{k}_sigma"]
        rows.append(row)
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    table = z_scores(parser.parse_args().results)
    print(table.round(2).to_string(index=False))
    for column in [c for c in table if c.startswith("z_")]:
        z = table[column].dropna()
        print(f"{column}: n {len(z)}, mean {z.mean():.2f}, rms {np.sqrt((z**2).mean()):.2f}, |z| > 2: {(z.abs() > 2).sum()}")


if __name__ == "__main__":
    main()
