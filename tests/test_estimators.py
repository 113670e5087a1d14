"""Tests for nirbench.estimators against exact enumeration (dense vectors, all K-tuples)."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import jensenshannon

from nirbench.estimators import (
    distinct_rows,
    effective_sample_size,
    energy_levels,
    jensen_shannon_divergence,
    local_energies,
    local_energy,
    local_energy_matrices,
    local_energy_matrices_distinct,
    local_energy_matrix,
    log_ess_from_sums,
    mean_energy_matrix,
)
from nirbench.exact import all_configurations
from nirbench.hamiltonians import make_hamiltonian
from nirbench.models import MLP, MultiStateNQS, batched_log_prob

WIDTH, DEPTH = 8, 2  # one network shape for the whole file: initialisers compile once per shape


def _make_mlp(n_sites):
    """A random complex MLP with O(1) log-amplitude and phase variations."""
    return lambda key: MLP(n_sites, width=WIDTH, depth=DEPTH, final_scale=1.0, key=key)


def _mlp(n_sites, seed):
    return _make_mlp(n_sites)(jax.random.key(seed))


def _nqs(n_sites, n_states, seed):
    return MultiStateNQS(_make_mlp(n_sites), n_states, key=jax.random.key(seed))


@eqx.filter_jit
def _amplitude_table(nqs, configs):
    """``configs`` (D, N) -> (D, K) amplitudes ``psi_j(s)``."""
    return jnp.exp(nqs.log_amplitudes(configs))


SYSTEMS = [
    ("tfi", 2, 2, "open", 0.7),
    ("tfi", 2, 3, "open", 1.5),
    ("tfi", 2, 3, "periodic", 3.0),
    ("j1j2", 2, 2, "periodic", None),
    ("j1j2", 2, 3, "periodic", None),
]


@eqx.filter_jit
def _psi_and_local_energies(net, hamiltonian, configs):
    """(psi (D,), E_loc (D,), E_loc of configs[3] alone) for a single-state network."""
    single = local_energy(net, hamiltonian, configs[3])
    return jnp.exp(jax.vmap(net)(configs)), local_energies(net, hamiltonian, configs), single


@pytest.mark.parametrize("model, lx, ly, bc, g", SYSTEMS)
def test_local_energy_is_h_psi_over_psi(model, lx, ly, bc, g):
    hamiltonian = make_hamiltonian(model, lx, ly, bc, g=g)
    configs = all_configurations(hamiltonian.n_sites)  # the full 2^N basis, no sector restriction
    net = _mlp(hamiltonian.n_sites, seed=lx * 10 + ly)
    psi, e_loc, single = map(np.asarray, _psi_and_local_energies(net, hamiltonian, jnp.asarray(configs)))
    expected = (hamiltonian.to_sparse() @ psi) / psi
    np.testing.assert_allclose(e_loc, expected, rtol=1e-10, atol=1e-10)
    assert np.abs(expected.imag).max() > 1e-3  # a genuinely complex test
    np.testing.assert_allclose(single, e_loc[3], rtol=1e-12)  # single and batched agree


@pytest.mark.parametrize("model, g", [("tfi", 1.3), ("j1j2", None)])
def test_single_state_energy_matrix_is_local_energy(model, g):
    hamiltonian = make_hamiltonian(model, 2, 3, "periodic", g=g)
    configs = jnp.asarray(all_configurations(6))
    nqs = _nqs(6, 1, seed=5)

    @jax.jit
    def both(c):
        return local_energy_matrices(nqs, hamiltonian, c[:, None]), local_energies(
            nqs.network(0), hamiltonian, c
        )

    matrices, single = map(np.asarray, both(configs))
    assert matrices.shape == (64, 1, 1)
    np.testing.assert_allclose(matrices[:, 0, 0], single, rtol=1e-10, atol=1e-12)


def test_distinct_rows_maps_back_to_every_row():
    rows = np.array([[1, -1, 1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, -1, 1]], dtype=np.int8)
    index, inverse = distinct_rows(rows)
    assert len(index) == 3
    np.testing.assert_array_equal(rows[index][inverse], rows)


@pytest.mark.parametrize("model, g, n_states", [("tfi", 1.3, 2), ("j1j2", None, 1), ("j1j2", None, 2)])
def test_distinct_local_energies_equal_the_direct_ones(model, g, n_states):
    """Same matrices as the direct evaluation on a batch with repeated tuples, zero matrix
    elements (J1-J2 exchange of parallel spins) and a chunk smaller than the distinct set."""
    hamiltonian = make_hamiltonian(model, 2, 3, "periodic", g=g)
    nqs = _nqs(6, n_states, seed=11)
    configs = all_configurations(6)
    if model == "j1j2":
        configs = configs[configs.sum(axis=1) == 0]
    rng = np.random.default_rng(0)
    picks = np.array([rng.choice(len(configs), n_states, replace=False) for _ in range(7)])
    batch = jnp.asarray(configs[np.concatenate([picks, picks[:3]])])  # (10, K, N), three repeats
    direct = np.asarray(eqx.filter_jit(local_energy_matrices)(nqs, hamiltonian, batch))
    distinct = np.asarray(local_energy_matrices_distinct(nqs, hamiltonian, batch, chunk=8))
    assert distinct.shape == direct.shape == (10, n_states, n_states)
    np.testing.assert_allclose(distinct, direct, rtol=1e-10, atol=1e-10)  # batching changes rounding only


def _exact_average(nqs, hamiltonian, n_states):
    """<E_loc> over |Psi|^2 by enumerating every K-tuple of distinct configurations."""
    configs = all_configurations(hamiltonian.n_sites)
    index = np.array(list(itertools.product(range(len(configs)), repeat=n_states)))
    distinct = np.array([len(set(row)) == n_states for row in index])
    tuples = jnp.asarray(configs[index[distinct]])  # (T, K, N); repeated rows have Psi = 0

    @jax.jit
    def enumerate_(t):
        return local_energy_matrices(nqs, hamiltonian, t), batched_log_prob(nqs, t)

    e_loc, log_prob = enumerate_(tuples)
    weights = jnp.exp(log_prob - jnp.max(log_prob))
    assert np.all(np.isfinite(np.asarray(e_loc)))
    return np.asarray(mean_energy_matrix(e_loc, weights)), np.asarray(e_loc), np.asarray(weights)


def _projected(nqs, hamiltonian):
    """S_ij = <psi_i|psi_j>, H_ij = <psi_i|H|psi_j> from the full vectors."""
    configs = all_configurations(hamiltonian.n_sites)
    phi = np.asarray(_amplitude_table(nqs, jnp.asarray(configs)))  # (D, K), phi[s, j] = psi_j(s)
    overlap = phi.conj().T @ phi
    projected = phi.conj().T @ (hamiltonian.to_sparse() @ phi)
    return overlap, projected


@pytest.mark.parametrize(
    "model, lx, ly, bc, g, n_states",
    [
        ("tfi", 2, 3, "periodic", 1.0, 2),
        ("j1j2", 2, 3, "periodic", None, 2),
        ("tfi", 2, 2, "open", 0.5, 3),
        ("j1j2", 2, 2, "periodic", None, 3),
    ],
)
def test_exact_average_of_local_energy_matrix_is_s_inverse_h(model, lx, ly, bc, g, n_states):
    hamiltonian = make_hamiltonian(model, lx, ly, bc, g=g)
    nqs = _nqs(hamiltonian.n_sites, n_states, seed=n_states + lx * ly)
    mean, _, _ = _exact_average(nqs, hamiltonian, n_states)
    overlap, projected = _projected(nqs, hamiltonian)
    expected = np.linalg.solve(overlap, projected)
    # the index convention is really tested: the expected matrix is far from its transpose
    assert not np.allclose(expected, expected.T, atol=1e-3)
    np.testing.assert_allclose(mean, expected, rtol=1e-9, atol=1e-9)
    # eigenvalues of <E_loc> = generalised eigenvalues of (H_sub, S): real, Rayleigh-Ritz values
    ritz = scipy.linalg.eigh(projected, overlap, eigvals_only=True)
    np.testing.assert_allclose(np.asarray(energy_levels(mean)), ritz, rtol=1e-9, atol=1e-9)
    # ... which bound the exact lowest levels from above (Cauchy interlacing)
    exact = np.linalg.eigvalsh(hamiltonian.to_sparse().toarray())[:n_states]
    assert np.all(ritz >= exact - 1e-9)


def test_local_energy_matrix_row_rescaling_and_shapes():
    hamiltonian = make_hamiltonian("tfi", 2, 2, "open", g=0.8)
    nqs = _nqs(4, 2, seed=21)
    s = all_configurations(4)[[1, 6]]
    e = np.asarray(jax.jit(lambda c: local_energy_matrix(nqs, hamiltonian, c))(jnp.asarray(s)))
    # direct (unscaled) A^-1 B from the definition, with the connected elements from the dense H
    h = hamiltonian.to_sparse().toarray()
    table = np.asarray(_amplitude_table(nqs, jnp.asarray(all_configurations(4))))  # (D, K)
    a, b = table[[1, 6]], (h @ table)[[1, 6]]
    np.testing.assert_allclose(e, np.linalg.solve(a, b), rtol=1e-10)
    with pytest.raises(ValueError, match="K-tuple"):
        local_energy_matrix(nqs, hamiltonian, jnp.asarray(s[:1]))


def test_mean_energy_matrix_and_levels():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 3, 3)) + 1j * rng.normal(size=(5, 3, 3))
    np.testing.assert_allclose(np.asarray(mean_energy_matrix(e)), e.mean(axis=0), rtol=1e-14)
    w = rng.uniform(size=5)
    expected = np.einsum("b,bij->ij", w / w.sum(), e)
    np.testing.assert_allclose(np.asarray(mean_energy_matrix(e, w)), expected, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(mean_energy_matrix(e, w / w.sum())), expected, rtol=1e-12)
    # a non-symmetric matrix with known real eigenvalues
    p = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
    matrix = p @ np.diag([2.5, -1.0, 0.3]) @ np.linalg.inv(p)
    np.testing.assert_allclose(np.asarray(energy_levels(matrix)), [-1.0, 0.3, 2.5], atol=1e-10)
    # the host (NumPy callback) path used on accelerators, under jit and vmap
    for host in (False, True):
        levels = jax.jit(jax.vmap(lambda m, h=host: energy_levels(m, host=h)))(jnp.stack([matrix, matrix.T]))
        np.testing.assert_allclose(np.asarray(levels), [[-1.0, 0.3, 2.5]] * 2, atol=1e-10)


def test_effective_sample_size():
    np.testing.assert_allclose(float(effective_sample_size(np.zeros(50))), 50.0, rtol=1e-12)
    np.testing.assert_allclose(float(effective_sample_size(np.full(50, 1234.5))), 50.0, rtol=1e-12)
    dominant = np.zeros(100)
    dominant[7] = 50.0
    np.testing.assert_allclose(float(effective_sample_size(dominant)), 1.0, rtol=1e-15, atol=1e-12)
    rng = np.random.default_rng(1)
    w = rng.exponential(size=200)
    np.testing.assert_allclose(
        float(effective_sample_size(np.log(w))), w.sum() ** 2 / (w**2).sum(), rtol=1e-12
    )
    # large log weights do not overflow
    assert np.isfinite(float(effective_sample_size(np.log(w) + 2000.0)))


def test_log_ess_from_sums_on_host_floats_and_jax_arrays():
    """NIR's round loop passes host floats (a Python float back, no device call); traced JAX
    arrays give the same number; every weight zero gives -inf either way."""
    w = np.random.default_rng(2).exponential(size=64)
    log_sum, log_sum_sq = np.log(w.sum()), np.log((w**2).sum())
    host = log_ess_from_sums(log_sum, log_sum_sq)
    assert type(host) is float
    np.testing.assert_allclose(np.exp(host), w.sum() ** 2 / (w**2).sum(), rtol=1e-12)
    traced = jax.jit(log_ess_from_sums)(jnp.asarray(log_sum), jnp.asarray(log_sum_sq))
    np.testing.assert_allclose(float(traced), host, rtol=1e-12)
    assert log_ess_from_sums(-np.inf, -np.inf) == -np.inf
    assert float(jax.jit(log_ess_from_sums)(jnp.asarray(-np.inf), jnp.asarray(-np.inf))) == -np.inf


def test_jensen_shannon_divergence():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=10)
    p /= p.sum()
    assert abs(float(jensen_shannon_divergence(p, p))) < 1e-15
    disjoint_p = np.array([0.5, 0.5, 0.0, 0.0])
    disjoint_q = np.array([0.0, 0.0, 0.3, 0.7])
    np.testing.assert_allclose(
        float(jensen_shannon_divergence(disjoint_p, disjoint_q)), np.log(2), rtol=1e-14
    )
    q = rng.uniform(size=10)
    q[3] = 0.0
    q /= q.sum()
    np.testing.assert_allclose(float(jensen_shannon_divergence(p, q)), jensenshannon(p, q) ** 2, rtol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        jensen_shannon_divergence(p, q[:5])
