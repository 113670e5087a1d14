"""Which exact eigenstates does a trained multi-state NQS hold? Its levels' weights on the ED spectrum.

For a run small enough to enumerate (4x4: 65 536 configurations), the K states of the NQS's span
that diagonalise H in it (the Ritz vectors, whose energies are the exact levels of the trained
state: ``nirbench.exact.nqs_exact_energies``) are expanded in the ``--levels`` lowest eigenstates
of H (exact diagonalisation, Lanczos). Eigenstates within ``--tolerance`` of each other are
grouped into one degenerate level. One row per NQS level and ED group: the group's energy range,
the weight ``sum |<ed_m|v_k>|^2`` over the group, and, on the row ``ed_group = rest``, the weight
left outside the ``--levels`` lowest eigenstates. This says whether a level that misses ED sits
in the right band but unresolved (weights spread over near-degenerate eigenstates) or carries
weight far above it.

    python benchmarks/level_overlaps.py --checkpoint DIR --out results/benchmarks/NAME.csv

``DIR`` is a run's checkpoint directory (``nirbench vmc --checkpoint-dir``; the pipeline's are
``results/vmc/.../seed~S/checkpoints/<hash>``).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from nirbench.exact import lowest_levels, nqs_exact_energies
from nirbench.io import write_csv_atomically
from nirbench.vmc import VMCRun


def degenerate_groups(energies: np.ndarray, tolerance: float) -> list[np.ndarray]:
    """Indices of ascending ``energies`` grouped where consecutive ones differ by at most ``tolerance``."""
    breaks = np.flatnonzero(np.diff(energies) > tolerance) + 1
    return np.split(np.arange(len(energies)), breaks)


def level_overlaps(vectors: np.ndarray, levels: np.ndarray, ed_vectors: np.ndarray, ed_energies: np.ndarray,
                   tolerance: float) -> pd.DataFrame:
    """NQS states ``vectors (D, K)`` with energies ``levels (K,)`` against ED eigenstates
    ``ed_vectors (D, M)``, ``ed_energies (M,)`` ascending, same basis: one row per (NQS level,
    degenerate ED group) and one ``rest`` row per level."""
    weights = np.abs(ed_vectors.conj().T @ vectors) ** 2  # (M, K)
    rows = []
    for k, level in enumerate(levels):
        reference = ed_energies[k]
        for group in degenerate_groups(ed_energies, tolerance):
            rows.append({"nqs_level": k, "nqs_energy": level, "ed_reference": reference,
                         "relative_error": (level - reference) / abs(reference),
                         "ed_group": f"{group[0]}-{group[-1]}" if len(group) > 1 else str(group[0]),
                         "ed_low": ed_energies[group[0]], "ed_high": ed_energies[group[-1]],
                         "weight": float(weights[group, k].sum())})  # fmt: skip
        rows.append({"nqs_level": k, "nqs_energy": level, "ed_reference": reference,
                     "relative_error": (level - reference) / abs(reference), "ed_group": "rest",
                     "ed_low": ed_energies[-1], "ed_high": np.nan,
                     "weight": float(max(0.0, 1.0 - weights[:, k].sum()))})  # fmt: skip
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a run's checkpoint directory")
    parser.add_argument("--levels", type=int, default=16, help="ED eigenstates to expand in (default 16)")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="energy spread of a degenerate group")
    parser.add_argument("--out", help="CSV to write (default: print only)")
    args = parser.parse_args(argv)
    run = VMCRun.from_checkpoint(args.checkpoint)
    exact = nqs_exact_energies(run.nqs, run.hamiltonian, return_vectors=True)
    ed_energies, _, ed_vectors = lowest_levels(run.hamiltonian, max(args.levels, run.config.states), return_vectors=True)
    table = level_overlaps(exact["vectors"], exact["levels"], ed_vectors, ed_energies, args.tolerance)
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(table[table["weight"] > 1e-4].to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    if args.out:
        write_csv_atomically(table, args.out)


if __name__ == "__main__":
    main()
