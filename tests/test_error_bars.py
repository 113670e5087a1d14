"""Honest error bars: the scatter of repeated estimates of a fixed NQS matches the reported sigma.

For each sampler, R independent estimates of the trace energy of one fixed two-state NQS on the
3x2 TFI (4096 tuples, exact energy by enumeration) are drawn, each from one sampler call, with
the sigma :func:`nirbench.estimators.standard_error` reports. The scatter of the estimates divided
by the mean reported sigma must lie in [0.7, 1.4]. The Metropolis case has few chains with
strongly correlated samples (thinning 1), where the naive ``sqrt(var / B)`` is about 2.5x too
small; the NIR cases use an untrained proposal (efficiency about 0.5); resampling 64 rows from about 64
weighted proposals, treating the duplicates as independent gives a sigma 1.6-2x too small.
"""

import equinox as eqx
import jax
import numpy as np
import pytest

from nirbench.estimators import local_energy_matrices, standard_error
from nirbench.exact import nqs_exact_energies
from nirbench.hamiltonians import make_hamiltonian
from nirbench.models import batched_log_prob, build_nqs
from nirbench.samplers import SampleBatch, make_sampler

N_ESTIMATES = 60
PROPOSAL = {"n_states": 2, "embed_dim": 4, "n_heads": 1, "n_layers": 1, "train_steps": 0}
SAMPLERS = {
    "exact": ("exact", {"batch_size": 64}),
    "mcmc_few_chains": ("mcmc", {"batch_size": 128, "n_chains": 4, "n_warmup": 50, "thinning": 1}),
    # alpha_ess 0.5: about 64 proposals for 64 resampled rows, so duplicates are frequent
    "nir_resample": ("nir", {"batch_size": 64, "alpha_ess": 0.5, **PROPOSAL}),
    "nir_importance": ("nir", {"batch_size": 64, "mode": "importance", **PROPOSAL}),
}

_local_energy_matrices = eqx.filter_jit(local_energy_matrices)


@pytest.fixture(scope="module")
def system():
    hamiltonian = make_hamiltonian("tfi", 3, 2, bc="open", g=1.0)
    nqs = build_nqs(hamiltonian, "mlp", n_states=2, width=8, depth=1, key=jax.random.key(0))
    return hamiltonian, nqs, nqs_exact_energies(nqs, hamiltonian)["trace"]


def _estimate(hamiltonian, nqs, batch):
    traces = np.real(np.trace(np.asarray(_local_energy_matrices(nqs, hamiltonian, batch.configs)), axis1=1, axis2=2))
    weights = np.asarray(batch.weights)
    return float(np.sum(weights * traces)), *standard_error(traces, batch)


@pytest.mark.parametrize("case", list(SAMPLERS))
def test_scatter_of_repeated_estimates_matches_the_reported_sigma(system, case):
    hamiltonian, nqs, exact = system
    name, options = SAMPLERS[case]
    sampler = make_sampler(name, hamiltonian, **options)
    state = sampler.init(jax.random.key(1), 2, hamiltonian.n_sites)
    estimates, sigmas = [], []
    for key in jax.random.split(jax.random.key(2), N_ESTIMATES):
        batch, state, _ = sampler.sample(batched_log_prob, nqs, state, key)
        energy, sigma, n_effective = _estimate(hamiltonian, nqs, batch)
        assert 0 < n_effective <= 1.01 * len(batch.weights)
        estimates.append(energy)
        sigmas.append(sigma)
    scatter = np.std(estimates, ddof=1)
    ratio = scatter / np.mean(sigmas)
    assert 0.7 <= ratio <= 1.4, f"{case}: scatter / reported sigma = {ratio:.2f}"
    if name != "nir":  # NIR's self-normalised estimate has an O(1/M) bias at these tiny batches
        assert abs(np.mean(estimates) - exact) < 4 * scatter / np.sqrt(N_ESTIMATES)


def test_standard_error_formulas_on_known_batches():
    x = np.array([1.0, 2.0, 3.0, 6.0])
    uniform = np.full(4, 0.25)
    variance = np.mean((x - x.mean()) ** 2)
    # independent rows: sqrt(var / B)
    sigma, n_effective = standard_error(x, SampleBatch(None, uniform))
    assert sigma == pytest.approx(np.sqrt(variance / 4)) and n_effective == pytest.approx(4)
    # weighted rows: the delta method sum v^2 (x - mu)^2
    v = np.array([0.1, 0.2, 0.3, 0.4])
    mu = np.sum(v * x)
    sigma, _ = standard_error(x, SampleBatch(None, v))
    assert sigma == pytest.approx(np.sqrt(np.sum(v**2 * (x - mu) ** 2)))
    # resampled duplicates of one proposal that held all the weight: the proposal set's term is
    # (x - mu)^2 = 0, and the resampling term vanishes too
    sigma, _ = standard_error(np.full(4, 5.0), SampleBatch(None, uniform, source=np.zeros(4, int),
                                                           source_weights=np.ones(4)))
    assert sigma == 0
    # resampling from two proposals of weight 1/2 each, both drawn: sigma^2 = var / B + sum_i
    # wbar_i^2 (x_i - mu)^2 / (1 - (1 - wbar_i)^B)
    x2 = np.array([0.0, 0.0, 2.0, 2.0])
    batch = SampleBatch(None, uniform, source=np.array([0, 0, 1, 1]), source_weights=np.full(4, 0.5))
    expected = 1.0 / 4 + 2 * 0.25 * 1.0 / (1 - 0.5**4)
    assert standard_error(x2, batch)[0] == pytest.approx(np.sqrt(expected))
    # Metropolis: a series that repeats each value 8 times has tau ~ 8 x that of white noise
    rng = np.random.default_rng(0)
    white = rng.normal(size=(512, 4))
    sticky = np.repeat(white[:64], 8, axis=0)
    chains = SampleBatch(None, np.full(2048, 1 / 2048), n_chains=4)
    sigma_white, n_white = standard_error(white.ravel(), chains)
    sigma_sticky, n_sticky = standard_error(sticky.ravel(), chains)
    assert n_white == pytest.approx(2048, rel=0.2)
    assert n_sticky < 2048 / 5 and sigma_sticky > 2 * sigma_white


def test_frozen_chains_give_no_error_bar():
    """Chains that never moved repeat one tuple each: their batch cannot measure its own scatter,
    so the standard error is nan, not the 0 (identical chains) or between-chain value it would
    otherwise read; one chain that moves once restores a finite estimate."""
    rng = np.random.default_rng(1)
    n_chains, n_recordings = 4, 8
    start = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_chains, 2, 6))
    frozen = np.broadcast_to(start, (n_recordings, n_chains, 2, 6)).reshape(-1, 2, 6)
    weights = np.full(len(frozen), 1 / len(frozen))
    values = np.tile(rng.normal(size=n_chains), n_recordings)  # one value per chain, repeated
    batch = SampleBatch(frozen, weights, n_chains=n_chains)
    sigma, n_effective = standard_error(values, batch)
    assert np.isnan(sigma) and np.isnan(n_effective)
    moved = frozen.copy()
    moved[-n_chains, 0, 0] *= -1  # chain 0 flips one spin at its last recording
    moved_values = values.copy()
    moved_values[-n_chains] += 1.0
    sigma, _ = standard_error(moved_values, SampleBatch(moved, weights, n_chains=n_chains))
    assert np.isfinite(sigma) and sigma > 0
    # independent rows that happen to be identical are an exact estimate, not frozen chains
    assert standard_error(np.full(8, 2.0), SampleBatch(frozen[:8], np.full(8, 1 / 8)))[0] == 0
