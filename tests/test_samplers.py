"""Exact and Metropolis samplers: chi-square tests against exact |Psi|^2 of small multi-state NQS."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nirbench.hamiltonians import make_hamiltonian
from nirbench.models import batched_log_prob, build_nqs
from nirbench.samplers import (
    STATS_KEYS,
    ExactSampler,
    MetropolisSampler,
    NIRSampler,
    SampleBatch,
    exact_distribution,
    indices_from_spins,
    integrated_autocorrelation_time,
    make_sampler,
    spins_from_indices,
)
from nirbench.samplers.base import multinomial_indices
from nirbench.samplers.exact import (
    chi_square_pvalue,
    exact_log_probs,
    histogram,
    nqs_tuple_log_probs,
    tuple_log_probs,
)
from nirbench.updates import TemperedLogProb

P_MIN = 1e-3  # chi-square p-value threshold (fixed seeds: deterministic)


@pytest.fixture(scope="module")
def tfi():
    """TFI 3x2 (N=6), K=2 states: 2^12 = 4096 tuples, 64 of them with Psi ~ 0 (repeated rows)."""
    hamiltonian = make_hamiltonian("tfi", 3, 2, bc="periodic", g=1.0)
    nqs = build_nqs(hamiltonian, "mlp", n_states=2, width=8, depth=1, key=jax.random.key(0))
    _, probs = exact_distribution(batched_log_prob, nqs, 2, hamiltonian.n_sites)
    return hamiltonian, nqs, np.asarray(probs)


@pytest.fixture(scope="module")
def j1j2():
    """J1-J2 3x2 (N=6), K=2: 20 zero-magnetisation configurations per state (penalty 30 outside)."""
    hamiltonian = make_hamiltonian("j1j2", 3, 2)
    nqs = build_nqs(hamiltonian, "mlp", n_states=2, width=8, depth=1, symmetries=False, key=jax.random.key(1))
    _, probs = exact_distribution(batched_log_prob, nqs, 2, hamiltonian.n_sites)
    return hamiltonian, nqs, np.asarray(probs)


def test_index_round_trip():
    idx = jnp.arange(2**10)
    configs = spins_from_indices(idx, 2, 5)
    assert configs.shape == (1024, 2, 5) and configs.dtype == jnp.int8
    assert np.array_equal(np.asarray(indices_from_spins(configs)), np.arange(1024))
    assert np.all(np.asarray(configs[0]) == 1) and np.all(np.asarray(configs[-1]) == -1)
    # state-major flattening: index 1 flips the last site of the last state
    assert np.asarray(configs[1])[1, 4] == -1 and np.sum(np.asarray(configs[1]) == -1) == 1


def test_exact_distribution_properties(tfi):
    _, _, probs = tfi
    assert probs.shape == (4096,)
    assert np.isclose(probs.sum(), 1.0)
    configs = np.asarray(spins_from_indices(jnp.arange(4096), 2, 6))
    repeated = np.all(configs[:, 0] == configs[:, 1], axis=1)
    # Psi vanishes (up to round-off) on tuples with two equal rows
    assert repeated.sum() == 64 and np.all(probs[repeated] < 1e-20) and probs[~repeated].min() > 1e-12
    # |Psi|^2 of a determinant is symmetric under swapping the two rows
    swapped = np.asarray(indices_from_spins(configs[:, ::-1]))
    assert np.allclose(probs, probs[swapped], rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("n_states, power", [(1, 1.0), (2, 1.0), (3, 0.5)])
def test_tuple_log_probs_from_the_amplitude_table_equal_the_row_by_row_evaluation(n_states, power):
    """``nqs_tuple_log_probs`` (one network pass per configuration) against ``exact_log_probs``
    with the samplers' target (one pass per row of every tuple), tempered too."""
    hamiltonian = make_hamiltonian("tfi", 2, 2, bc="open", g=0.7)
    nqs = build_nqs(hamiltonian, "mlp", n_states=n_states, width=8, depth=2, key=jax.random.key(n_states))
    target = batched_log_prob if power == 1.0 else TemperedLogProb(power)
    direct = np.asarray(exact_log_probs(target, nqs, n_states, 4))
    table = np.asarray(nqs_tuple_log_probs(nqs, n_states, 4, power, chunk_size=64))
    assert table.shape == (2 ** (4 * n_states),)
    rows = np.asarray(spins_from_indices(jnp.arange(table.size), n_states, 4)).reshape(table.size, n_states, 4)
    repeated = np.array([len({r.tobytes() for r in tuple_rows}) < n_states for tuple_rows in rows])
    np.testing.assert_allclose(table[~repeated], direct[~repeated], rtol=1e-10, atol=1e-10)
    # a repeated row: Psi = 0, up to round-off in either evaluation
    assert np.all(table[repeated] < direct[~repeated].max() - 20)
    # the exact sampler takes the table for the NQS's own target, and any other function row by row
    np.testing.assert_array_equal(np.asarray(tuple_log_probs(target, nqs, n_states, 4, chunk_size=64)), table)
    wrapped = np.asarray(tuple_log_probs(lambda n, c: target(n, c), nqs, n_states, 4))
    np.testing.assert_array_equal(wrapped, direct)


def test_chi_square_helper_detects_a_wrong_distribution(tfi):
    _, _, probs = tfi
    rng = np.random.default_rng(0)
    good = np.bincount(rng.choice(probs.size, 20000, p=probs), minlength=probs.size)
    assert chi_square_pvalue(good, probs) > P_MIN
    wrong = probs ** 1.3 / np.sum(probs ** 1.3)
    bad = np.bincount(rng.choice(probs.size, 20000, p=wrong), minlength=probs.size)
    assert chi_square_pvalue(bad, probs) < 1e-6
    impossible = good.copy()
    impossible[np.flatnonzero(probs < 1e-20)[0]] += 1
    assert chi_square_pvalue(impossible, probs) == 0.0


def test_multinomial_draws_follow_the_weights_and_never_pick_weight_zero():
    rng = np.random.default_rng(1)
    log_w = rng.normal(size=300) * 2.0
    log_w[::7] = -np.inf
    probs = np.exp(log_w - np.max(log_w))
    probs /= probs.sum()
    picked = np.asarray(multinomial_indices(jax.random.key(2), jnp.asarray(log_w), 60_000))
    counts = np.bincount(picked, minlength=300).astype(np.float64)
    assert counts[::7].sum() == 0
    assert chi_square_pvalue(counts, probs) > P_MIN
    assert chi_square_pvalue(counts, np.roll(probs, 1)) < 1e-6  # the test can tell a shifted table


def test_exact_sampler_chi_square(tfi):
    hamiltonian, nqs, probs = tfi
    sampler = make_sampler("exact", hamiltonian, 20000)
    state = sampler.init(jax.random.key(0), 2, 6)
    batch, state, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(0))
    assert isinstance(batch, SampleBatch)
    assert batch.configs.shape == (20000, 2, 6) and batch.configs.dtype == jnp.int8
    assert np.allclose(np.asarray(batch.weights), 1 / 20000)
    assert set(STATS_KEYS) <= set(stats) and stats["nqs_update"] is True and stats["ess"] == 20000
    counts = histogram(batch.configs)
    assert counts[probs < 1e-20].sum() == 0
    assert chi_square_pvalue(counts, probs) > P_MIN


def test_exact_sampler_refuses_large_systems():
    sampler = ExactSampler(16, max_configurations=2**10)
    sampler.init(jax.random.key(0), 2, 5)  # 2^10: fine
    with pytest.raises(ValueError, match="max_configurations"):
        sampler.init(jax.random.key(0), 2, 6)
    with pytest.raises(ValueError, match="2\\^192"):
        ExactSampler(512).init(jax.random.key(0), 3, 64)
    with pytest.raises(ValueError, match="max_configurations"):
        exact_distribution(batched_log_prob, None, 3, 8, max_configurations=2**20)


@pytest.mark.parametrize("kwargs", [
    {"batch_size": 0}, {"batch_size": 10, "n_chains": 3}, {"batch_size": 8, "thinning": 0},
    {"batch_size": 8, "n_warmup": -1}, {"batch_size": 8, "rule": "swap"}, {"batch_size": 8, "rule": "exchange"},
    {"batch_size": 8, "global_flip": 1.0}, {"batch_size": 8, "global_flip": -0.1},
])
def test_metropolis_bad_input(kwargs):
    with pytest.raises(ValueError):
        MetropolisSampler(**kwargs)


def test_exact_bad_input_and_factory(tfi):
    hamiltonian = tfi[0]
    with pytest.raises(ValueError, match="batch_size"):
        ExactSampler(0)
    with pytest.raises(ValueError, match="'exact', 'mcmc', 'nir'"):
        make_sampler("gibbs", hamiltonian, 16)
    assert make_sampler("mcmc", hamiltonian, 16).rule == "flip"
    j1j2 = make_hamiltonian("j1j2", 2, 2)
    sampler = make_sampler("mcmc", j1j2, 16)
    assert sampler.rule == "exchange" and sampler.bonds == tuple(map(tuple, j1j2.lattice.nearest_neighbours))
    nir = make_sampler("nir", hamiltonian, 16, n_states=2, symmetrize=True)
    assert isinstance(nir, NIRSampler) and nir.n_sites == 6 and len(nir.symmetry_perms) > 1


def test_metropolis_flip_chi_square(tfi):
    hamiltonian, nqs, probs = tfi
    sampler = make_sampler("mcmc", hamiltonian, 20000, n_chains=1000, n_warmup=100, thinning=24)
    assert sampler.rule == "flip"
    state = sampler.init(jax.random.key(0), 2, 6)
    batch, state, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(1))
    assert batch.configs.shape == (20000, 2, 6) and batch.configs.dtype == jnp.int8
    assert set(STATS_KEYS) <= set(stats) and 0.1 < stats["acceptance"] < 1.0
    assert stats["n_proposed"] == 1000 * (100 + 20 * 24) and stats["nqs_update"] is True
    assert state.chains.shape == (1000, 2, 6)
    assert np.allclose(np.asarray(state.log_probs), np.asarray(batched_log_prob(nqs, state.chains)))
    counts = histogram(batch.configs)
    assert counts[probs < 1e-20].sum() == 0
    assert chi_square_pvalue(counts, probs) > P_MIN
    # persistent chains: a second call continues from the stored chains
    batch2, _, _ = sampler.sample(batched_log_prob, nqs, state, jax.random.key(2))
    assert chi_square_pvalue(counts + histogram(batch2.configs), probs) > P_MIN


def test_metropolis_global_flip_crosses_between_ordered_sectors(tfi):
    """An ordered |Psi|^2 (each of the K = 2 rows ferromagnetic on the 3x2 lattice: log p =
    4 sum_bonds s_i s_j per row) from chains all started in the all-up tuple: local flips stay in
    the up/up sector (chi-square fails), with global flips the chains reach all four sectors in
    their exact proportions (chi-square passes). Move ``n_local + k`` flips state k, ``n_local + K``
    all of them."""
    bonds = jnp.asarray(tfi[0].bonds)

    def ordered(_, configs):
        return 4.0 * jnp.sum(configs[..., bonds[:, 0]] * configs[..., bonds[:, 1]], axis=(-2, -1)).astype(float)

    chains = jnp.asarray(np.random.default_rng(0).choice([-1, 1], (3, 2, 6)), jnp.int8)
    moves = MetropolisSampler(8, global_flip=0.5).apply_moves(jnp.array([12, 13, 14]), chains)  # n_local = 12
    assert np.array_equal(moves, chains * jnp.array([[-1, 1], [1, -1], [-1, -1]], jnp.int8)[:, :, None])
    _, probs = exact_distribution(ordered, None, 2, 6)
    up = lambda state: eqx.tree_at(lambda s: s.chains, state, jnp.ones_like(state.chains))
    for global_flip, passes in [(0.0, False), (0.2, True)]:
        sampler = MetropolisSampler(16000, n_chains=800, n_warmup=200, thinning=24, global_flip=global_flip)
        batch, _, _ = sampler.sample(ordered, None, up(sampler.init(jax.random.key(0), 2, 6)), jax.random.key(1))
        magnetisations = np.sign(np.asarray(batch.configs).sum(axis=-1))  # (B, K): the sector of each row
        assert (chi_square_pvalue(histogram(batch.configs), np.asarray(probs)) > P_MIN) == passes
        assert np.any(magnetisations < 0) == passes


def test_metropolis_exchange_conserves_magnetisation_and_matches(j1j2):
    hamiltonian, nqs, probs = j1j2
    sampler = make_sampler("mcmc", hamiltonian, 8000, n_chains=400, n_warmup=100, thinning=16)
    assert sampler.rule == "exchange"
    state = sampler.init(jax.random.key(3), 2, 6)
    assert np.all(np.asarray(state.chains).sum(axis=-1) == 0)  # zero magnetisation per state
    batch, state, _ = sampler.sample(batched_log_prob, nqs, state, jax.random.key(4))
    assert np.all(np.asarray(batch.configs).sum(axis=-1) == 0)
    assert np.all(np.asarray(state.chains).sum(axis=-1) == 0)
    assert chi_square_pvalue(histogram(batch.configs), probs) > P_MIN

    # from a magnetised start the exchange rule keeps each state's magnetisation exactly
    start = sampler.init(jax.random.key(5), 2, 6)
    start = eqx.tree_at(lambda s: s.chains, start, start.chains.at[:, 0, :2].set(1).at[:, 0, 2:].set(-1))
    before = np.asarray(start.chains).sum(axis=-1)
    assert np.all(before[:, 0] == -2)
    batch, after, _ = sampler.sample(batched_log_prob, nqs, start, jax.random.key(6))
    assert np.array_equal(np.asarray(after.chains).sum(axis=-1), before)
    per_sample = np.asarray(batch.configs).reshape(20, 400, 2, 6).sum(axis=-1)  # (S, chains, K)
    assert np.array_equal(per_sample, np.broadcast_to(before, per_sample.shape))

    # global flips keep a zero magnetisation and the distribution
    flipping = make_sampler("mcmc", hamiltonian, 8000, n_chains=400, n_warmup=100, thinning=16, global_flip=0.2)
    batch, state, _ = flipping.sample(batched_log_prob, nqs, flipping.init(jax.random.key(7), 2, 6), jax.random.key(8))
    assert np.all(np.asarray(batch.configs).sum(axis=-1) == 0) and np.all(np.asarray(state.chains).sum(axis=-1) == 0)
    assert chi_square_pvalue(histogram(batch.configs), probs) > P_MIN


def test_netket_equivalent_settings():
    """NetKet MetropolisLocal(n_chains=16, sweep_size=16), n_discard_per_chain=40, 128 samples."""
    sampler = MetropolisSampler(128, n_chains=16, thinning=16, n_warmup=40 * 16)
    assert sampler.samples_per_chain == 8 and sampler.chain_count == 16


def test_integrated_autocorrelation_time():
    rng = np.random.default_rng(0)
    white = rng.standard_normal((2000, 16))
    assert integrated_autocorrelation_time(white) == pytest.approx(1.0, abs=0.15)
    # AR(1) with coefficient a: tau = (1 + a) / (1 - a) = 9 for a = 0.8
    a, x = 0.8, np.zeros((4000, 16))
    for t in range(1, 4000):
        x[t] = a * x[t - 1] + rng.standard_normal(16)
    assert integrated_autocorrelation_time(x) == pytest.approx(9.0, rel=0.2)
