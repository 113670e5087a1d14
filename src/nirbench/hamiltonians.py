"""Spin Hamiltonians on square lattices: TFI (paper eq. 13) and J1-J2 (paper eq. 14).

Conventions:

* A configuration ``s`` has shape ``(N,)`` with entries ``+1`` (spin up, sigma^z = +1) or ``-1``.
* ``connected(s)`` returns the configurations ``s'`` with ``<s|H|s'> != 0`` (diagonal first)
  and the matrix elements, in a fixed-width, jittable form: shapes ``(M, N)`` and ``(M,)``
  with ``M = max_conn``. Padding entries carry a zero matrix element.
* Basis states of the exact methods are integers: site ``i`` is bit ``N - 1 - i`` and a set
  bit means spin down, so ``s = 1 - 2 * bits`` and ``all_configurations`` is ordered by integer.

TFI:   ``H = -sum_<jk> Z_j Z_k - g sum_j X_j`` (Pauli matrices).
J1-J2: ``H = J1 sum_<ij> S_i.S_j + J2 sum_<<ij>> S_i.S_j`` with ``S = sigma / 2``, so
``S_i.S_j = Z_i Z_j / 4 + (sigma+_i sigma-_j + h.c.) / 2``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from nirbench.lattice import SquareLattice

MODELS = ("tfi", "j1j2")


def bits_of(states: np.ndarray, n_sites: int) -> np.ndarray:
    """Integer basis states ``(D,)`` -> bit array ``(D, N)`` (1 = spin down), site 0 first."""
    shifts = np.arange(n_sites - 1, -1, -1, dtype=np.int64)
    return ((np.asarray(states, dtype=np.int64)[:, None] >> shifts) & 1).astype(np.int8)


def spins_of(states: np.ndarray, n_sites: int) -> np.ndarray:
    """Integer basis states ``(D,)`` -> +-1 configurations ``(D, N)`` as int8."""
    return (1 - 2 * bits_of(states, n_sites)).astype(np.int8)


def states_of(spins: np.ndarray) -> np.ndarray:
    """+-1 configurations ``(D, N)`` -> integer basis states ``(D,)``."""
    spins = np.asarray(spins)
    n_sites = spins.shape[-1]
    bits = ((1 - spins) // 2).astype(np.int64)
    return bits @ (1 << np.arange(n_sites - 1, -1, -1, dtype=np.int64))


class Hamiltonian(ABC):
    """Base class: a spin-1/2 Hamiltonian on a square lattice.

    Subclasses define ``connected`` (JAX, for local energies) and, independently, the
    integer-basis terms ``_diagonal`` / ``_off_diagonal`` (NumPy, for exact matrices).
    """

    name: str
    #: magnetisation sector the model is studied in (``None``: no restriction)
    magnetisation: int | None = None
    #: the natural local Metropolis move: ``"flip"`` one spin or ``"exchange"`` two
    local_move: str = "flip"

    def __init__(self, lattice: SquareLattice):
        self.lattice = lattice

    @property
    def n_sites(self) -> int:
        return self.lattice.n_sites

    @property
    @abstractmethod
    def max_conn(self) -> int:
        """Number ``M`` of connected configurations returned per input (diagonal included)."""

    @abstractmethod
    def connected(self, s: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """``s`` of shape ``(N,)`` -> (``s_conn`` of shape ``(M, N)``, ``mels`` of shape ``(M,)``)."""

    @abstractmethod
    def _diagonal(self, states: np.ndarray) -> np.ndarray:
        """Diagonal matrix elements for integer basis states ``(D,)``."""

    @abstractmethod
    def _off_diagonal(self, states: np.ndarray):
        """Yield ``(flip_mask, coefficient)``: ``<states ^ flip_mask|H|states> = coefficient``."""

    @property
    @abstractmethod
    def energy_scale(self) -> float:
        """The energy scale per site: the sum of the operator norms of the Hamiltonian's terms,
        divided by ``N`` (so ``||H|| <= N * energy_scale``). It makes an imaginary-time step
        dimensionless (``VMCConfig.lr_units = "energy"``)."""

    def describe(self) -> dict:
        """Parameters that identify this Hamiltonian (used to label CSV rows)."""
        lat = self.lattice
        return {"model": self.name, "lx": lat.lx, "ly": lat.ly, "bc": lat.bc}

    def to_sparse(self, basis: np.ndarray | None = None) -> sp.csr_matrix:
        """The Hamiltonian as a sparse matrix in ``basis`` (sorted integer states; default all)."""
        if basis is None:
            basis = np.arange(2**self.n_sites, dtype=np.int64)
        basis = np.asarray(basis, dtype=np.int64)
        dim = basis.size
        rows, cols, vals = [np.arange(dim)], [np.arange(dim)], [self._diagonal(basis)]
        for mask, coefficient in self._off_diagonal(basis):
            targets = basis ^ mask
            pos = np.searchsorted(basis, targets).clip(max=dim - 1)
            keep = (basis[pos] == targets) & (np.broadcast_to(coefficient, (dim,)) != 0)
            rows.append(pos[keep])
            cols.append(np.arange(dim)[keep])
            vals.append(np.broadcast_to(coefficient, (dim,))[keep])
        matrix = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim)
        )
        return matrix.tocsr()


class TransverseFieldIsing(Hamiltonian):
    """``H = -sum_<jk> Z_j Z_k - g sum_j X_j`` on the nearest-neighbour bonds of ``lattice``."""

    name = "tfi"
    local_move = "flip"

    def __init__(self, lattice: SquareLattice, g: float):
        if not 0 <= g < math.inf:
            raise ValueError(f"the transverse field g must be >= 0 and finite, got {g}")
        super().__init__(lattice)
        self.g = float(g)
        self.bonds = lattice.nearest_neighbours

    def describe(self) -> dict:
        return {**super().describe(), "g": self.g, "j2": None}

    @property
    def energy_scale(self) -> float:
        """``(n_bonds + g N) / N``: ``||Z_j Z_k|| = ||X_j|| = 1``."""
        return (len(self.bonds) + self.g * self.n_sites) / self.n_sites

    @property
    def max_conn(self) -> int:
        return self.n_sites + 1

    def connected(self, s):
        n = self.n_sites
        i, j = self.bonds[:, 0], self.bonds[:, 1]
        diagonal = -jnp.sum(s[i] * s[j])
        flips = 1 - 2 * jnp.eye(n, dtype=s.dtype)
        s_conn = jnp.concatenate([s[None, :], s[None, :] * flips], axis=0)
        mels = jnp.concatenate([diagonal[None], jnp.full((n,), -self.g)]).astype(jnp.result_type(float))
        return s_conn, mels

    def _diagonal(self, states):
        z = 1.0 - 2.0 * bits_of(states, self.n_sites)
        return -np.sum(z[:, self.bonds[:, 0]] * z[:, self.bonds[:, 1]], axis=1)

    def _off_diagonal(self, states):
        for site in range(self.n_sites):
            yield 1 << (self.n_sites - 1 - site), -self.g


class J1J2Heisenberg(Hamiltonian):
    """``H = J1 sum_<ij> S_i.S_j + J2 sum_<<ij>> S_i.S_j`` with ``S = sigma/2``.

    Studied in the zero-magnetisation sector (``N`` must be even).
    """

    name = "j1j2"
    magnetisation = 0
    local_move = "exchange"

    def __init__(self, lattice: SquareLattice, j2: float = 0.5, j1: float = 1.0):
        if lattice.n_sites % 2:
            raise ValueError(
                f"J1-J2 needs an even number of sites for the zero-magnetisation sector, "
                f"got N = {lattice.n_sites} ({lattice.lx}x{lattice.ly})"
            )
        if not (math.isfinite(j1) and math.isfinite(j2)):
            raise ValueError(f"the couplings must be finite, got J1 = {j1}, J2 = {j2}")
        super().__init__(lattice)
        self.j1, self.j2 = float(j1), float(j2)
        nn, nnn = lattice.nearest_neighbours, lattice.next_nearest_neighbours
        self.bonds = np.concatenate([nn, nnn], axis=0)
        self.couplings = np.concatenate([np.full(len(nn), self.j1), np.full(len(nnn), self.j2)])

    def describe(self) -> dict:
        return {**super().describe(), "g": None, "j2": self.j2}

    @property
    def energy_scale(self) -> float:
        """``(3/4) sum_b |J_b| / N``: ``S_i.S_j`` has eigenvalues 1/4 (triplet) and -3/4 (singlet)."""
        return 0.75 * float(np.sum(np.abs(self.couplings))) / self.n_sites

    @property
    def max_conn(self) -> int:
        return 1 + len(self.bonds)

    def connected(self, s):
        i, j = self.bonds[:, 0], self.bonds[:, 1]
        couplings = jnp.asarray(self.couplings)
        diagonal = jnp.sum(couplings * s[i] * s[j]) / 4
        antiparallel = s[i] != s[j]
        exchange = jnp.ones((len(self.bonds), self.n_sites), dtype=s.dtype)
        exchange = exchange.at[jnp.arange(len(self.bonds)), i].set(-1)
        exchange = exchange.at[jnp.arange(len(self.bonds)), j].set(-1)
        s_conn = jnp.concatenate([s[None, :], s[None, :] * exchange], axis=0)
        mels = jnp.concatenate([diagonal[None], jnp.where(antiparallel, couplings / 2, 0.0)])
        return s_conn, mels

    def _diagonal(self, states):
        z = 1.0 - 2.0 * bits_of(states, self.n_sites)
        return np.sum(self.couplings * z[:, self.bonds[:, 0]] * z[:, self.bonds[:, 1]], axis=1) / 4

    def _off_diagonal(self, states):
        bits = bits_of(states, self.n_sites)
        for (i, j), coupling in zip(self.bonds, self.couplings):
            mask = (1 << (self.n_sites - 1 - int(i))) | (1 << (self.n_sites - 1 - int(j)))
            yield mask, np.where(bits[:, i] != bits[:, j], coupling / 2, 0.0)


def make_hamiltonian(
    model: str, lx: int, ly: int, bc: str = "periodic", g: float | None = None, j2: float | None = None
) -> Hamiltonian:
    """Build a Hamiltonian by name, with clear errors for unknown models or missing parameters."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {MODELS}")
    lattice = SquareLattice(lx, ly, bc)
    if model == "tfi":
        if g is None:
            raise ValueError("the TFI model needs the transverse field g (--g)")
        return TransverseFieldIsing(lattice, g)
    return J1J2Heisenberg(lattice, j2=0.5 if j2 is None else j2)
