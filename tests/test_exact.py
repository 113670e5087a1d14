import numpy as np
import pytest

from nirbench.exact import all_configurations, basis_states, lowest_levels
from nirbench.hamiltonians import make_hamiltonian, states_of


def test_enumeration_order_and_sector():
    configs = all_configurations(4)
    assert configs.shape == (16, 4)
    np.testing.assert_array_equal(states_of(configs), np.arange(16))
    np.testing.assert_array_equal(configs[0], [1, 1, 1, 1])
    sector = all_configurations(6, magnetisation=0)
    assert len(sector) == 20 and np.all(sector.sum(1) == 0)
    assert np.all(np.diff(basis_states(6, 0)) > 0)


@pytest.mark.parametrize(
    "model, lx, ly, bc, g, k",
    [
        ("tfi", 3, 3, "open", 1.0, 3),
        ("tfi", 3, 3, "periodic", 3.0, 3),
        ("j1j2", 4, 3, "periodic", None, 2),  # 924-state sector
        ("j1j2", 2, 4, "open", None, 3),
    ],
)
def test_ed_matches_dense_eigvalsh(model, lx, ly, bc, g, k):
    hamiltonian = make_hamiltonian(model, lx, ly, bc, g=g, j2=0.5)
    energies = lowest_levels(hamiltonian, k)
    basis = basis_states(hamiltonian.n_sites, hamiltonian.magnetisation)
    dense = np.linalg.eigvalsh(hamiltonian.to_sparse(basis).toarray())
    np.testing.assert_allclose(energies, dense[:k], atol=1e-9)


def test_j1j2_sector_levels_are_in_the_full_spectrum():
    hamiltonian = make_hamiltonian("j1j2", 2, 4, "periodic", j2=0.5)
    full = np.linalg.eigvalsh(hamiltonian.to_sparse().toarray())
    for energy in lowest_levels(hamiltonian, 3):
        assert np.min(np.abs(full - energy)) < 1e-9


def test_eigenvectors_are_eigenvectors():
    hamiltonian = make_hamiltonian("tfi", 4, 4, "periodic", g=2.0)
    energies, basis, vectors = lowest_levels(hamiltonian, 2, return_vectors=True)
    matrix = hamiltonian.to_sparse(basis)
    for k in range(2):
        np.testing.assert_allclose(matrix @ vectors[:, k], energies[k] * vectors[:, k], atol=1e-8)


def test_ed_refuses_bad_sizes():
    with pytest.raises(ValueError, match="at most 24 sites"):
        lowest_levels(make_hamiltonian("tfi", 5, 5, "open", g=1.0), 1)
    with pytest.raises(ValueError, match="K must be >= 1"):
        lowest_levels(make_hamiltonian("tfi", 2, 2, "open", g=1.0), 0)
    with pytest.raises(ValueError, match="exceeds the dimension"):
        lowest_levels(make_hamiltonian("j1j2", 2, 2, "open"), 7)
