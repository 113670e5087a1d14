"""nirbench.linalg (batched small-matrix slogdet and solve without LAPACK kernels) against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nirbench.linalg import slogdet, solve


def _matrices(n, dtype, batch=(5, 3), seed=0):
    rng = np.random.default_rng(seed + n)
    a = rng.normal(size=(*batch, n, n))
    if np.issubdtype(dtype, np.complexfloating):
        a = a + 1j * rng.normal(size=a.shape)
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_slogdet_and_solve_match_numpy(n, dtype):
    a = _matrices(n, dtype)
    a[0, 0] = a[0, 0][::-1]  # rows reversed: pivoting is exercised
    sign, log_abs = slogdet(jnp.asarray(a))
    expected_sign, expected_log = np.linalg.slogdet(a)
    np.testing.assert_allclose(np.asarray(log_abs), expected_log, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(sign), expected_sign, rtol=1e-12, atol=1e-12)
    b = _matrices(n, dtype, seed=7)
    np.testing.assert_allclose(np.asarray(solve(jnp.asarray(a), jnp.asarray(b))), np.linalg.solve(a, b), rtol=1e-10, atol=1e-10)


def test_singular_matrix_has_zero_sign_and_minus_inf_log():
    a = _matrices(3, np.complex128, batch=(2,))
    a[1, 2] = a[1, 0]  # repeated row, as a K-tuple with a repeated configuration
    sign, log_abs = map(np.asarray, slogdet(jnp.asarray(a)))
    assert sign[1] == 0 and log_abs[1] == -np.inf
    assert np.isfinite(log_abs[0]) and abs(abs(sign[0]) - 1) < 1e-12


def test_gradient_of_log_abs_det_is_inverse_transpose():
    a = _matrices(3, np.float64, batch=())
    gradient = jax.grad(lambda m: slogdet(m)[1])(jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(gradient), np.linalg.inv(a).T, rtol=1e-10)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="square"):
        slogdet(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="solve expects"):
        solve(jnp.eye(3), jnp.ones(3))
