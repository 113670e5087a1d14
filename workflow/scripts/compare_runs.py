"""Compare the CSV outputs of two pipeline runs of the same config (e.g. local and SLURM).

    python workflow/scripts/compare_runs.py REF_RESULTS NEW_RESULTS [--ref-figures DIR --new-figures DIR]

Every CSV under REF_RESULTS (except logs/, benchmarks/, jax_cache/ and checkpoints/, whose
folder names hash the run configuration) must exist under NEW_RESULTS with the same columns, rows
and values, exactly (NaN equals NaN), after dropping timing columns (``seconds``, ``wall_seconds``,
``*_seconds``) and writing each run's results folder as ``<results>`` in text columns (paths such
as ``run_dir`` name it). CSVs only in NEW_RESULTS are differences too, and so is a figure (PNG) of
REF_FIGURES missing from NEW_FIGURES. Prints one line per difference; exit 1 if there is any.
"""

import argparse
import glob
import os
import sys

import numpy as np
import pandas as pd

TIMING = {"seconds", "wall_seconds"}
SKIP = {"logs", "benchmarks", "jax_cache", "checkpoints"}


def csv_files(root: str) -> list[str]:
    files = (os.path.relpath(path, root) for path in glob.glob(os.path.join(root, "**", "*.csv"), recursive=True))
    return sorted(f for f in files if not SKIP & set(f.split(os.sep)[:-1]))


def normalised(path: str, prefix: str) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame = frame.drop(columns=[c for c in frame.columns if c in TIMING or c.endswith("_seconds")])
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            text = frame[column].astype(object).where(frame[column].notna(), "")
            frame[column] = text.astype(str).str.replace(prefix, "<results>", regex=False)
    return frame


def compare(ref: str, new: str, ref_figures: str | None = None, new_figures: str | None = None) -> list[str]:
    ref_prefix, new_prefix = os.path.normpath(ref), os.path.normpath(new)
    # the runs write the results folder as the config spells it: relative or absolute
    ref_spelling = os.path.relpath(ref_prefix) if not os.path.relpath(ref_prefix).startswith("..") else ref_prefix
    new_spelling = os.path.relpath(new_prefix) if not os.path.relpath(new_prefix).startswith("..") else new_prefix
    problems = []
    files = csv_files(ref)
    for name in files:
        other = os.path.join(new, name)
        if not os.path.exists(other):
            problems.append(f"{name}: missing in {new}")
            continue
        a = normalised(os.path.join(ref, name), ref_spelling)
        b = normalised(other, new_spelling)
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            problems.append(f"{name}: columns or shape differ ({a.shape} vs {b.shape})")
            continue
        for column in a.columns:
            x, y = a[column], b[column]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                same = np.array_equal(x.to_numpy(float), y.to_numpy(float), equal_nan=True)
            else:
                same = x.astype(str).tolist() == y.astype(str).tolist()
            if not same:
                problems.append(f"{name}: column {column} differs")
    problems += [f"{name}: only in {new}" for name in sorted(set(csv_files(new)) - set(files))]
    if ref_figures and new_figures:
        for png in sorted(glob.glob(os.path.join(ref_figures, "*.png"))):
            if not os.path.exists(os.path.join(new_figures, os.path.basename(png))):
                problems.append(f"figure {os.path.basename(png)} missing in {new_figures}")
    print(f"compared {len(files)} CSV files (timing columns excepted): "
          f"{'all equal' if not problems else f'{len(problems)} differences'}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref")
    parser.add_argument("new")
    parser.add_argument("--ref-figures")
    parser.add_argument("--new-figures")
    args = parser.parse_args(argv)
    problems = compare(args.ref, args.new, args.ref_figures, args.new_figures)
    for problem in problems:
        print("  differs:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
