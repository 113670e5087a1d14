"""How well can a product proposal q(s_1..s_K) = prod_k rho(s_k) serve a determinant target? Exact numbers.

The multi-state NQS samples K-tuples from ``p(s_1..s_K) = |det psi_k(s_l)|^2 / Z``. Its one-configuration
marginal is ``rho(s) = (1/K) sum_k |phi_k(s)|^2`` for the orthonormalised states ``phi_k`` (the
determinant only depends on their span). A product proposal (``proposal_factorization: product``,
:class:`nirbench.proposal.ProductProposal`) can at best learn ``rho``; the determinant's correlations
between the K configurations are then left to the importance weights. This script computes, by
enumeration of all ``D^K`` tuples (``D = 2^N``), the infinite-sample efficiency
``ESS / n -> 1 / E_p[p / q] = 1 / sum p^2 / q`` of that best product, for K = 3 on small open TFI
lattices:

* the exact three lowest levels at each field;
* states along imaginary time, ``exp(-tau H)`` applied to three random near-uniform vectors (what a
  VMC run passes through from a nearly uniform start), orthonormalised.

    python benchmarks/product_efficiency_exact.py --lattices 3x2 3x3 \\
        --out results/benchmarks/product_efficiency_exact.csv

(3x3: 512 configurations, 1.3e8 tuples, about a minute per field on one core.)
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from nirbench.exact import basis_states
from nirbench.hamiltonians import make_hamiltonian
from nirbench.io import write_csv_atomically

TAUS = (0.05, 0.1, 0.2, 0.5, 1.0)


def product_efficiency(psi: np.ndarray) -> float:
    """``1 / sum_t p(t)^2 / q(t)`` for K = 3 orthonormal columns ``psi`` ``(D, 3)``: ``p = det^2 / 3!``,
    ``q = rho(s_1) rho(s_2) rho(s_3)`` with ``rho = mean_k psi_k^2`` (summed over ``s_1`` in a loop)."""
    if psi.shape[1] != 3:
        raise ValueError(f"psi must have 3 columns, got shape {psi.shape}")
    a, b, c = psi.T
    rho = np.mean(psi**2, axis=1)
    # the 2x2 minors of rows (b, c), (a, c), (a, b) over the configuration pairs (s_2, s_3)
    minors = (np.outer(b, c) - np.outer(c, b), np.outer(a, c) - np.outer(c, a), np.outer(a, b) - np.outer(b, a))
    pair_rho = np.outer(rho, rho)
    total = 0.0
    for i in range(psi.shape[0]):
        det = psi[i, 0] * minors[0] - psi[i, 1] * minors[1] + psi[i, 2] * minors[2]
        p = det**2 / 6.0
        q = rho[i] * pair_rho
        total += np.sum(np.divide(p**2, q, out=np.zeros_like(p), where=p > 0))
    return float(1.0 / total)


def rows_for(lx: int, ly: int, fields: list[float]) -> list[dict]:
    rows = []
    for g in fields:
        hamiltonian = make_hamiltonian("tfi", lx, ly, "open", g)
        dense = hamiltonian.to_sparse(basis_states(hamiltonian.n_sites)).toarray()
        energies, vectors = np.linalg.eigh(dense)
        rows.append({"lattice": f"{lx}x{ly}", "g": g, "state": "lowest levels", "tau": np.inf,
                     "efficiency": product_efficiency(vectors[:, :3])})  # fmt: skip
        rng = np.random.default_rng(0)
        start = np.ones((len(dense), 3)) + 0.3 * rng.standard_normal((len(dense), 3))
        coefficients = vectors.T @ start
        for tau in TAUS:
            evolved = vectors @ (np.exp(-tau * (energies - energies[0]))[:, None] * coefficients)
            rows.append({"lattice": f"{lx}x{ly}", "g": g, "state": "imaginary time", "tau": tau,
                         "efficiency": product_efficiency(np.linalg.qr(evolved)[0])})  # fmt: skip
        print(f"{lx}x{ly} g = {g}: " + ", ".join(f"{r['tau']}: {r['efficiency']:.3f}" for r in rows[-6:]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lattices", nargs="+", default=["3x2", "3x3"], help="open lattices LXxLY (N <= 9)")
    parser.add_argument("--fields", nargs="+", type=float, default=[0.1, 0.5, 1.0, 2.0, 3.0])
    parser.add_argument("--out", default="results/benchmarks/product_efficiency_exact.csv")
    args = parser.parse_args()
    rows = []
    for lattice in args.lattices:
        lx, ly = (int(x) for x in lattice.split("x"))
        if lx * ly > 9:
            parser.error(f"lattice {lattice}: at most 9 sites ({2 ** (3 * lx * ly):.1e} tuples otherwise)")
        rows += rows_for(lx, ly, args.fields)
    write_csv_atomically(pd.DataFrame(rows), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
