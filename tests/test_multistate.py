"""Tests for nirbench.models.multistate: the determinant wave function of K stacked networks."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nirbench.models import MLP, MultiStateNQS, batched_log_prob, batched_log_psi

N_SITES, WIDTH, DEPTH = 6, 8, 2


class Shifted(eqx.Module):
    """A network whose log amplitude is shifted by a constant (to test overflow)."""

    net: eqx.Module
    shift: float = eqx.field(static=True)

    def __call__(self, s):
        return self.net(s) + self.shift


def _nqs(n_states, seed=0, shift=0.0):
    def make(key):
        net = MLP(N_SITES, width=WIDTH, depth=DEPTH, final_scale=1.0, key=key)
        return Shifted(net, shift) if shift else net

    return MultiStateNQS(make, n_states, key=jax.random.key(seed))


def _tuples(n_tuples, n_states, seed=1):
    """Random K-tuples of distinct configurations, shape (B, K, N) int8."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n_tuples:
        t = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n_states, N_SITES))
        if len({row.tobytes() for row in t}) == n_states:
            out.append(t)
    return np.stack(out)


@eqx.filter_jit
def _amps(nqs, configs):
    return jax.vmap(nqs.log_amplitudes)(configs)


@eqx.filter_jit
def _log_psi(nqs, configs):
    return batched_log_psi(nqs, configs)


def _same_complex_log(a, b, atol=1e-10):
    """Equal real parts, imaginary parts equal modulo 2 pi."""
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a.real, b.real, rtol=1e-10, atol=atol)
    phase = np.angle(np.exp(1j * (a.imag - b.imag)))
    np.testing.assert_allclose(phase, 0.0, atol=atol)


def test_log_amplitudes_match_each_network():
    nqs = _nqs(3)
    assert nqs.n_states == 3
    s = _tuples(4, 3)
    amps = np.asarray(_amps(nqs, jnp.asarray(s)))  # (B, K', K)
    assert amps.shape == (4, 3, 3) and np.iscomplexobj(amps)
    for j in range(3):
        single = np.asarray(jax.jit(jax.vmap(jax.vmap(nqs.network(j))))(jnp.asarray(s)))
        np.testing.assert_allclose(amps[:, :, j], single, rtol=1e-12)
    # the stacked networks are genuinely different
    assert not np.allclose(amps[:, :, 0], amps[:, :, 1])
    with pytest.raises(IndexError):
        nqs.network(3)


@pytest.mark.parametrize("n_states", [2, 3])
def test_log_psi_is_log_det(n_states):
    nqs = _nqs(n_states, seed=n_states)
    s = _tuples(6, n_states, seed=n_states)
    amps = np.exp(np.asarray(_amps(nqs, jnp.asarray(s))))
    expected = np.log(np.linalg.det(amps).astype(complex))
    log_psi = np.asarray(_log_psi(nqs, jnp.asarray(s)))
    _same_complex_log(log_psi, expected)
    # the batched form (all rows' amplitudes in one call) is the per-tuple log_psi
    _same_complex_log(log_psi, np.asarray(jax.jit(jax.vmap(nqs.log_psi))(jnp.asarray(s))))
    log_prob = np.asarray(jax.jit(lambda c: batched_log_prob(nqs, c))(jnp.asarray(s)))
    np.testing.assert_allclose(log_prob, 2 * np.log(np.abs(np.linalg.det(amps))), rtol=1e-10)
    # antisymmetry: swapping two rows flips the sign (log Psi changes by i pi)
    swapped = s.copy()
    swapped[:, [0, 1]] = s[:, [1, 0]]
    _same_complex_log(np.asarray(_log_psi(nqs, jnp.asarray(swapped))), log_psi + 1j * np.pi)


def test_single_state_log_psi_is_the_network():
    nqs = _nqs(1, seed=5)
    s = _tuples(5, 1, seed=6)
    expected = np.asarray(jax.jit(jax.vmap(nqs.network(0)))(jnp.asarray(s[:, 0])))
    np.testing.assert_allclose(np.asarray(_log_psi(nqs, jnp.asarray(s))), expected, rtol=0, atol=1e-15)
    log_prob = np.asarray(jax.jit(lambda c: batched_log_prob(nqs, c))(jnp.asarray(s)))
    np.testing.assert_allclose(log_prob, 2 * expected.real, rtol=1e-14)


def test_large_amplitudes_do_not_overflow():
    shift = 900.0  # exp(900) overflows float64; row rescaling must handle it
    big, small = _nqs(3, seed=7, shift=shift), _nqs(3, seed=7)
    s = jnp.asarray(_tuples(4, 3, seed=8))
    with np.errstate(over="ignore"):  # a naive determinant would overflow
        assert not np.all(np.isfinite(np.exp(np.asarray(_amps(big, s)).real)))
    log_big = np.asarray(_log_psi(big, s))
    assert np.all(np.isfinite(log_big))
    _same_complex_log(log_big, np.asarray(_log_psi(small, s)) + 3 * shift, atol=1e-9)


def test_repeated_configuration_has_zero_probability():
    nqs = _nqs(2, seed=9)
    s = _tuples(1, 2, seed=10)
    s[0, 1] = s[0, 0]
    assert np.asarray(jax.jit(lambda c: batched_log_prob(nqs, c))(jnp.asarray(s)))[0] == -np.inf


def test_gradient_of_log_psi():
    nqs = _nqs(2, seed=11)
    s = jnp.asarray(_tuples(1, 2, seed=12)[0])

    @eqx.filter_jit
    @eqx.filter_grad
    def grad(model):
        return model.log_prob(s)

    grads = grad(nqs)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(np.all(np.isfinite(g)) for g in leaves)
    # check one direction against a central finite difference
    params, static = eqx.partition(nqs, eqx.is_inexact_array)
    direction = jax.tree_util.tree_map(
        lambda p: jnp.asarray(np.random.default_rng(0).normal(size=p.shape)), params
    )
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(leaves, jax.tree_util.tree_leaves(direction)))

    @jax.jit
    def along(t):
        moved = jax.tree_util.tree_map(lambda p, d: p + t * d, params, direction)
        return eqx.combine(moved, static).log_prob(s)

    eps = 1e-5
    numeric = float((along(eps) - along(-eps)) / (2 * eps))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_bad_inputs():
    nqs = _nqs(2)
    with pytest.raises(ValueError, match="K-tuple"):
        nqs.log_psi(jnp.ones((3, N_SITES)))
    with pytest.raises(ValueError, match=r"expected configs \(B, 2, N\)"):
        batched_log_psi(nqs, jnp.ones((4, 3, N_SITES)))
    with pytest.raises(ValueError, match="n_states"):
        _nqs(0)
