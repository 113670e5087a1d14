"""The convergence rule of a run (nirbench.estimators.final_drift / is_converged)."""

import math

import numpy as np
import pytest

from nirbench.estimators import FINAL_WINDOW_MIN, final_drift, is_converged


def _run(slope, noise, n=200, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    return steps, -10.0 + slope * steps + noise * rng.standard_normal(n)


def test_a_flat_noisy_energy_is_converged_in_most_seeds():
    verdicts = [is_converged(*final_drift(*_run(0.0, 0.1, seed=seed))) for seed in range(200)]
    # |drift| <= 2 sigma of a Gaussian slope estimate: about 95 % (t-distribution, 40 points)
    assert 0.9 <= np.mean(verdicts) <= 0.99


def test_a_drift_beyond_the_noise_is_not_converged():
    steps, energies = _run(-0.01, 0.1)
    drift, sigma = final_drift(steps, energies)
    window = 0.2 * 200  # the last 20 % of the updates
    assert drift == pytest.approx(-0.01 * (window - 1), rel=0.3)
    assert not is_converged(drift, sigma)


def test_the_error_bar_matches_the_scatter_of_the_drift():
    drifts, sigmas = zip(*(final_drift(*_run(0.0, 0.1, seed=seed)) for seed in range(300)))
    assert np.std(drifts) == pytest.approx(np.mean(sigmas), rel=0.15)


def test_only_the_final_window_counts():
    steps, energies = _run(0.0, 0.01)
    energies[:100] += np.linspace(5.0, 0.0, 100)  # a fast early descent that has ended
    assert is_converged(*final_drift(steps, energies))


def test_retraining_iterations_share_their_update_count():
    steps = np.repeat(np.arange(1, 101), 2)  # two iterations per update (NIR retraining)
    energies = -1.0 + 1e-3 * np.random.default_rng(1).standard_normal(len(steps))
    drift, sigma = final_drift(steps, energies)
    assert math.isfinite(drift) and sigma > 0


def test_too_short_a_run_has_no_verdict():
    drift, sigma = final_drift([0, 1, 2], [1.0, 0.5, 0.2])
    assert math.isnan(drift) and math.isnan(sigma)
    assert not is_converged(drift, sigma)
    assert FINAL_WINDOW_MIN >= 4
