"""Exact references: enumeration of configurations and sparse exact diagonalisation."""

from __future__ import annotations

import math
from itertools import combinations

import equinox as eqx
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


def sector_dimension(hamiltonian: Hamiltonian) -> int:
    """The number of configurations in the model's magnetisation sector (``2^N`` without one)."""
    n, m = hamiltonian.n_sites, hamiltonian.magnetisation
    return 2**n if m is None else math.comb(n, (n - m) // 2)


#: largest Hilbert-space dimension (of the model's sector) :func:`nqs_exact_energies` enumerates
MAX_NQS_ENUMERATION = 2**20


def nqs_amplitudes(nqs, hamiltonian: Hamiltonian, max_dimension: int = MAX_NQS_ENUMERATION,
                   chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Every amplitude of a (multi-state) NQS on the model's sector: ``(basis (D,), A (D, K))``.

    ``A[s, j] = psi_j(s)`` over the sorted integer ``basis`` (:func:`basis_states`, the order of
    :func:`lowest_levels`' vectors), from ``nqs.log_amplitudes``; each column is rescaled by a
    constant (its largest ``|psi_j|`` is 1), which changes no energy. ``ValueError`` when the
    sector has more than ``max_dimension`` configurations.
    """
    if sector_dimension(hamiltonian) > max_dimension:
        raise ValueError(
            f"the exact NQS energy enumerates the Hilbert space; {hamiltonian.lattice.lx}x{hamiltonian.lattice.ly} "
            f"({hamiltonian.n_sites} sites) is above max_dimension = {max_dimension}"
        )
    basis = basis_states(hamiltonian.n_sites, hamiltonian.magnetisation)
    amplitudes = eqx.filter_jit(lambda model, s: model.log_amplitudes(s))
    configs = spins_of(basis, hamiltonian.n_sites)
    log_amps = np.concatenate([
        np.asarray(amplitudes(nqs, configs[start:start + chunk_size]))
        for start in range(0, basis.size, chunk_size)
    ])  # fmt: skip
    log_amps = log_amps - np.max(log_amps.real, axis=0)
    return basis, np.exp(log_amps.astype(np.complex128))


def nqs_exact_energies(nqs, hamiltonian: Hamiltonian, max_dimension: int = MAX_NQS_ENUMERATION,
                       chunk_size: int = 4096, return_vectors: bool = False) -> dict:
    """The exact energies of a (multi-state) NQS, by enumerating the model's sector.

    With ``A[s, j] = psi_j(s)`` over every configuration ``s`` of the sector (:func:`nqs_amplitudes`),
    ``S = A^H A`` and ``H_sub = A^H H A`` (the sparse Hamiltonian), the exact mean energy matrix is
    ``S^-1 H_sub`` (the quantity VMC estimates); its eigenvalues are the levels and its trace the
    VMC objective.

    Returns ``dict(trace, levels (K,), variance)``; ``variance`` is the exact energy variance
    ``<H^2> - <H>^2`` for ``K = 1`` and ``nan`` otherwise. With ``return_vectors`` also ``basis``
    ``(D,)`` and ``vectors`` ``(D, K)``: the normalised states of the NQS's span whose energies are
    the levels (the Ritz vectors ``A c`` of ``H_sub c = e S c``; column ``k`` belongs to
    ``levels[k]``), in :func:`lowest_levels`' basis order. ``ValueError`` when the sector has more
    than ``max_dimension`` configurations.
    """
    basis, a = nqs_amplitudes(nqs, hamiltonian, max_dimension, chunk_size)
    h_a = hamiltonian.to_sparse(basis) @ a
    overlap, h_sub = a.conj().T @ a, a.conj().T @ h_a
    mean_matrix = np.linalg.solve(overlap, h_sub)
    eigenvalues, coefficients = np.linalg.eig(mean_matrix)
    order = np.argsort(np.real(eigenvalues))
    levels = np.real(eigenvalues[order])
    trace = float(np.real(np.trace(mean_matrix)))
    variance = math.nan
    if a.shape[1] == 1:
        variance = float(np.real(np.vdot(h_a, h_a) / overlap[0, 0]) - trace**2)
    result = {"trace": trace, "levels": levels, "variance": variance}
    if return_vectors:
        vectors = a @ coefficients[:, order]
        result.update(basis=basis, vectors=vectors / np.linalg.norm(vectors, axis=0))
    return result


def nqs_exact_columns(nqs, hamiltonian: Hamiltonian, n_states: int,
                      max_dimension: int = MAX_NQS_ENUMERATION) -> dict:
    """The exact energies of an NQS as CSV columns, ``nan`` where the sector is too large.

    ``exact_energy`` (the trace), ``exact_e_k`` for ``k < n_states`` (the levels, ascending) and
    ``exact_variance`` (:func:`nqs_exact_energies`), computed when the model's sector has at
    most ``max_dimension`` configurations (4x4: 65 536; 6x6 is out of reach). These are the
    variational energies of the state itself, free of sampling error: the figures that compare
    levels with ED use them where they exist.
    """
    exact = None
    if sector_dimension(hamiltonian) <= max_dimension:
        exact = nqs_exact_energies(nqs, hamiltonian, max_dimension)
    return {
        "exact_energy": exact["trace"] if exact else math.nan,
        **{f"exact_e_{k}": (float(exact["levels"][k]) if exact else math.nan) for k in range(n_states)},
        "exact_variance": exact["variance"] if exact else math.nan,
    }
