from functools import reduce

import jax
import numpy as np
import pytest

from nirbench.exact import all_configurations
from nirbench.hamiltonians import (
    J1J2Heisenberg,
    TransverseFieldIsing,
    make_hamiltonian,
    states_of,
)
from nirbench.lattice import SquareLattice

PAULI_X = np.array([[0.0, 1.0], [1.0, 0.0]])
PAULI_Y = np.array([[0.0, -1j], [1j, 0.0]])
PAULI_Z = np.diag([1.0, -1.0])  # basis order: bit 0 = spin up = +1


def _site_operator(op, site, n):
    return reduce(np.kron, [op if k == site else np.eye(2) for k in range(n)])


def _kron_tfi(lattice, g):
    n = lattice.n_sites
    h = np.zeros((2**n, 2**n))
    for i, j in lattice.nearest_neighbours:
        h -= _site_operator(PAULI_Z, i, n) @ _site_operator(PAULI_Z, j, n)
    for i in range(n):
        h -= g * _site_operator(PAULI_X, i, n)
    return h


def _kron_j1j2(lattice, j2):
    n = lattice.n_sites
    h = np.zeros((2**n, 2**n), dtype=complex)
    for coupling, bonds in ((1.0, lattice.nearest_neighbours), (j2, lattice.next_nearest_neighbours)):
        for i, j in bonds:
            for op in (PAULI_X, PAULI_Y, PAULI_Z):
                h += coupling / 4 * _site_operator(op, i, n) @ _site_operator(op, j, n)
    assert np.allclose(h.imag, 0)
    return h.real


def _dense_from_connected(hamiltonian):
    """<s|H|s'> assembled from hamiltonian.connected, row s, column s'."""
    configs = all_configurations(hamiltonian.n_sites)
    s_conn, mels = jax.vmap(hamiltonian.connected)(configs)
    s_conn, mels = np.asarray(s_conn), np.asarray(mels)
    dim = len(configs)
    dense = np.zeros((dim, dim))
    rows = np.repeat(np.arange(dim), hamiltonian.max_conn)
    cols = states_of(s_conn.reshape(-1, hamiltonian.n_sites))
    np.add.at(dense, (rows, cols), mels.reshape(-1))
    return dense


@pytest.mark.parametrize(
    "hamiltonian, exact_at_bound",
    [
        (TransverseFieldIsing(SquareLattice(3, 2, "open"), 0.0), True),  # ||H|| = n_bonds: the ferromagnet
        (TransverseFieldIsing(SquareLattice(3, 2, "open"), 2.0), False),
        (TransverseFieldIsing(SquareLattice(2, 2, "periodic"), 0.5), False),
        (J1J2Heisenberg(SquareLattice(3, 2, "open"), j2=0.5), False),
        (J1J2Heisenberg(SquareLattice(2, 2, "periodic"), j2=0.0), False),
    ],
)
def test_energy_scale_bounds_the_spectrum(hamiltonian, exact_at_bound):
    """``||H|| <= N energy_scale`` against the dense spectrum, with equality where every term is
    minimised at once (the classical Ising ferromagnet), and the formula's values."""
    spectrum = np.linalg.eigvalsh(hamiltonian.to_sparse().toarray())
    norm = np.abs(spectrum).max()
    bound = hamiltonian.n_sites * hamiltonian.energy_scale
    assert norm <= bound * (1 + 1e-12)
    assert (norm == pytest.approx(bound)) == exact_at_bound
    if isinstance(hamiltonian, TransverseFieldIsing):
        expected = (len(hamiltonian.lattice.nearest_neighbours) + hamiltonian.g * hamiltonian.n_sites)
    else:
        expected = 0.75 * np.abs(hamiltonian.couplings).sum()
    assert bound == pytest.approx(expected)


@pytest.mark.parametrize("bc", ["open", "periodic"])
def test_sparse_matches_kronecker_products(bc):
    tfi = TransverseFieldIsing(SquareLattice(2, 3, bc), g=0.7)
    np.testing.assert_allclose(tfi.to_sparse().toarray(), _kron_tfi(tfi.lattice, 0.7), atol=1e-12)
    heis = J1J2Heisenberg(SquareLattice(2, 3, bc), j2=0.3)
    np.testing.assert_allclose(heis.to_sparse().toarray(), _kron_j1j2(heis.lattice, 0.3), atol=1e-12)


@pytest.mark.parametrize(
    "hamiltonian",
    [
        TransverseFieldIsing(SquareLattice(2, 3, "open"), g=1.3),
        TransverseFieldIsing(SquareLattice(3, 3, "periodic"), g=3.0),
        J1J2Heisenberg(SquareLattice(2, 3, "periodic"), j2=0.5),
        J1J2Heisenberg(SquareLattice(4, 2, "open"), j2=0.5),
    ],
    ids=["tfi-2x3-open", "tfi-3x3-periodic", "j1j2-2x3-periodic", "j1j2-4x2-open"],
)
def test_connected_elements_match_sparse_matrix(hamiltonian):
    dense = _dense_from_connected(hamiltonian)
    np.testing.assert_allclose(dense, hamiltonian.to_sparse().toarray(), atol=1e-12)


def test_connected_is_jittable_and_fixed_width():
    hamiltonian = make_hamiltonian("j1j2", 4, 4, "periodic", j2=0.5)
    s = np.array([1, -1] * 8, dtype=np.int8)
    s_conn, mels = jax.jit(hamiltonian.connected)(s)
    assert s_conn.shape == (hamiltonian.max_conn, 16) == (65, 16)
    assert mels.shape == (65,)


def test_j1j2_conserves_magnetisation():
    hamiltonian = J1J2Heisenberg(SquareLattice(2, 3, "periodic"))
    configs = all_configurations(6)
    s_conn, mels = jax.vmap(hamiltonian.connected)(configs)
    nonzero = np.asarray(mels) != 0
    magnetisation = np.asarray(s_conn).sum(-1)
    assert np.all((magnetisation == configs.sum(-1)[:, None]) | ~nonzero)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "heisenberg", "lx": 4, "ly": 4}, "unknown model"),
        ({"model": "tfi", "lx": 1, "ly": 4, "g": 1.0}, "at least 2x2"),
        ({"model": "tfi", "lx": 4, "ly": 4, "g": -0.5}, "g must be >= 0"),
        ({"model": "tfi", "lx": 4, "ly": 4}, "needs the transverse field"),
        ({"model": "j1j2", "lx": 3, "ly": 3}, "even number of sites"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_hamiltonian(**kwargs)
