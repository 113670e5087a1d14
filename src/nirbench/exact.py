"""Exact references: enumeration of configurations and sparse exact diagonalisation."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import scipy.sparse.linalg as spla

from nirbench.hamiltonians import Hamiltonian, spins_of

#: largest lattice exact diagonalisation accepts (in sites)
MAX_ED_SITES = 24


def basis_states(n_sites: int, magnetisation: int | None = None) -> np.ndarray:
    """Sorted integer basis states, optionally only those with ``sum(s) == magnetisation``."""
    if magnetisation is None:
        return np.arange(2**n_sites, dtype=np.int64)
    if (n_sites - magnetisation) % 2 or abs(magnetisation) > n_sites:
        raise ValueError(f"no configuration of {n_sites} sites has magnetisation {magnetisation}")
    n_down = (n_sites - magnetisation) // 2
    states = [sum(1 << (n_sites - 1 - i) for i in down) for down in combinations(range(n_sites), n_down)]
    return np.sort(np.array(states, dtype=np.int64))


def all_configurations(n_sites: int, magnetisation: int | None = None) -> np.ndarray:
    """Every +-1 configuration, shape ``(D, N)`` int8, in integer-basis order."""
    return spins_of(basis_states(n_sites, magnetisation), n_sites)


def check_ed_size(hamiltonian: Hamiltonian, n_states: int) -> None:
    """Raise a clear error if ED of this Hamiltonian for ``n_states`` levels is out of reach."""
    if n_states < 1:
        raise ValueError(f"the number of states K must be >= 1, got {n_states}")
    if hamiltonian.n_sites > MAX_ED_SITES:
        raise ValueError(
            f"exact diagonalisation holds at most {MAX_ED_SITES} sites; "
            f"{hamiltonian.lattice.lx}x{hamiltonian.lattice.ly} has {hamiltonian.n_sites}"
        )


def lowest_levels(hamiltonian: Hamiltonian, n_states: int = 1, return_vectors: bool = False):
    """The ``n_states`` lowest eigenvalues (ascending) in the model's magnetisation sector.

    Uses scipy's Lanczos ``eigsh`` on the sparse matrix (dense ``eigvalsh`` when the space
    is tiny). With ``return_vectors`` also returns ``(basis, vectors)`` where ``vectors`` has
    shape ``(D, n_states)`` in the sorted integer ``basis``.
    """
    check_ed_size(hamiltonian, n_states)
    basis = basis_states(hamiltonian.n_sites, hamiltonian.magnetisation)
    if n_states > basis.size:
        raise ValueError(f"K = {n_states} exceeds the dimension {basis.size} of the Hilbert space")
    matrix = hamiltonian.to_sparse(basis)
    if basis.size <= 512:
        energies, vectors = np.linalg.eigh(matrix.toarray())
    else:
        v0 = np.random.default_rng(0).standard_normal(basis.size)
        energies, vectors = spla.eigsh(matrix, k=n_states, which="SA", v0=v0, tol=1e-12)
        order = np.argsort(energies)
        energies, vectors = energies[order], vectors[:, order]
    energies, vectors = energies[:n_states], vectors[:, :n_states]
    return (energies, basis, vectors) if return_vectors else energies
