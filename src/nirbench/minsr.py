"""minSR: the minimum-step stochastic-reconfiguration preconditioner (Chen & Heyl 2024).

The NQS is an Equinox module with **real** parameters ``theta`` (``P`` of them once the
inexact-array leaves are flattened with ``jax.flatten_util.ravel_pytree``) and a **complex**
``log psi``. For a batch of ``Ns`` samples the VMC loop supplies

* ``jacobian`` ``O``: shape ``(Ns, P)`` complex, ``O[i, k] = d log Psi(s_i) / d theta_k``
  (see :func:`jacobian_of_log_psi`);
* ``eps``: shape ``(Ns,)`` complex, the local energy of each sample (for the multi-state ansatz the
  trace of the local energy matrix, paper eq. 6 / DESIGN.md);
* optionally ``weights`` ``w``: shape ``(Ns,)``, non-negative self-normalised importance weights
  (NIR importance-sampling mode). They are renormalised to sum to 1 here; ``None`` means uniform
  ``1 / Ns`` (samples drawn from ``|Psi|^2``, e.g. MCMC or NIR after resampling).

Conventions (checked numerically in ``tests/test_minsr.py``):

* centring uses the weighted mean: ``O_c = O - sum_i w_i O_i``, ``eps_c = eps - sum_i w_i eps_i``;
* rows are scaled by ``sqrt(w_i)`` (``1 / sqrt(Ns)`` uniform);
* ``X = [Re O_c; Im O_c]`` (shape ``(2 Ns, P)``, real) and ``f = [Re eps_c; Im eps_c]``
  (shape ``(2 Ns,)``, real) -- **no** complex conjugation anywhere, because
  ``X^T f = sum_i w_i Re(conj(O_c,i) eps_c,i) = Re <conj(O_c) eps_c> = g / 2``,
  half the energy gradient ``g = dE/dtheta`` of paper eq. 6 (real parameters);
* ``X^T X = Re <O_c^H O_c> = S`` is the (real part of the) quantum geometric tensor.

The update direction is therefore ``delta = (S + lambda I)^-1 g / 2`` -- the SR natural gradient,
which points **uphill like a gradient**: the parameter step is ``theta <- theta - eta * delta``
(imaginary-time step ``eta``). This is exactly what ``optax.sgd`` / ``optax.adam`` do when
``delta`` is passed to them in place of the gradient (they return ``-lr * ...``; apply with
``eqx.apply_updates``). minSR computes the same ``delta`` as ``X^T (X X^T + lambda I)^-1 f``,
which only needs a ``(2 Ns, 2 Ns)`` solve and is the cheap form when ``2 Ns <= P``.

Typical use inside a VMC step::

    O = jacobian_of_log_psi(log_psi_fn, model, configs)             # (Ns, P) complex
    direction = natural_gradient_tree(model, O, eps, weights, 1e-4)  # pytree like the params
    updates, opt_state = optimizer.update(direction, opt_state, eqx.filter(model, eqx.is_inexact_array))
    model = eqx.apply_updates(model, updates)

with ``optimizer = make_optimizer("adam", 1e-3)`` and
``opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))``.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_factor, cho_solve

MODES = ("auto", "minsr", "sr")
OPTIMIZERS = ("adam", "sgd")


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------
def _check_diag_shift(diag_shift) -> None:
    """Raise ``ValueError`` unless ``diag_shift > 0``; traced values cannot be checked and pass."""
    try:
        value = float(diag_shift)
    except TypeError:  # a tracer under jit (ConcretizationTypeError subclasses TypeError)
        return
    if not value > 0.0:  # also catches NaN
        raise ValueError(f"diag_shift must be > 0, got {diag_shift!r}")


def _check_xf(X: jnp.ndarray, f: jnp.ndarray) -> None:
    if X.ndim != 2 or f.ndim != 1 or X.shape[0] != f.shape[0]:
        raise ValueError(f"expected X of shape (2Ns, P) and f of shape (2Ns,), got {X.shape} and {f.shape}")
    if jnp.iscomplexobj(X) or jnp.iscomplexobj(f):
        raise ValueError("X and f must be real; build them with sr_matrices")


# ----------------------------------------------------------------------------------------------
# linear algebra
# ----------------------------------------------------------------------------------------------
def psd_solve(A: jnp.ndarray, b: jnp.ndarray, rcond: float | None = None, return_info: bool = False):
    """Solve ``A x = b`` for a symmetric positive (semi-)definite ``A`` of shape ``(n, n)``.

    First a Cholesky factorisation (``cho_factor`` / ``cho_solve``). If that fails -- detected
    as a non-finite factor or solution (JAX's Cholesky returns NaN for a matrix that is not
    numerically positive definite; a zero pivot gives inf) -- the solve falls back, via
    ``lax.cond`` (no Python branching, so this is jittable), to an eigendecomposition
    pseudo-inverse: eigenvalues ``e <= rcond * max|e|`` (including negative ones produced by
    round-off) are dropped. ``rcond`` defaults to ``n * finfo(dtype).eps``.

    ``b`` has shape ``(n,)`` or ``(n, m)``. Returns ``x`` of the shape of ``b``, or
    ``(x, used_fallback)`` with a boolean scalar when ``return_info`` is true.
    """
    if rcond is None:
        rcond = A.shape[0] * float(jnp.finfo(A.dtype).eps)
    x, used_fallback = _psd_solve(A, b, rcond)
    if return_info:
        return x, used_fallback
    return x


@jax.jit
def _psd_solve(A: jnp.ndarray, b: jnp.ndarray, rcond) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Jitted kernel of :func:`psd_solve`: returns ``(x, used_fallback)``."""
    factor = cho_factor(A, lower=True)
    x_chol = cho_solve(factor, b)
    ok = jnp.all(jnp.isfinite(factor[0])) & jnp.all(jnp.isfinite(x_chol))

    def _cholesky(_):
        return x_chol

    def _pinv(_):
        evals, evecs = jnp.linalg.eigh(A)
        cutoff = rcond * jnp.max(jnp.abs(evals))
        keep = evals > cutoff
        inv = jnp.where(keep, 1.0 / jnp.where(keep, evals, 1.0), 0.0)
        coeff = evecs.T @ b
        coeff = coeff * (inv if b.ndim == 1 else inv[:, None])
        return evecs @ coeff

    return jax.lax.cond(ok, _cholesky, _pinv, None), ~ok


# ----------------------------------------------------------------------------------------------
# SR / minSR
# ----------------------------------------------------------------------------------------------
def sr_matrices(
    jacobian: jnp.ndarray, eps: jnp.ndarray, weights: jnp.ndarray | None = None
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Build the real SR matrices from per-sample quantities.

    Args:
        jacobian: ``(Ns, P)`` complex, ``O[i, k] = d log Psi(s_i) / d theta_k`` (real ``theta``).
        eps: ``(Ns,)`` complex local energies (trace of the local energy matrix for K states).
        weights: ``(Ns,)`` non-negative importance weights, or ``None`` for uniform ``1 / Ns``.
            Renormalised to sum to 1.

    Returns:
        ``X``: ``(2 Ns, P)`` real, ``[Re O_c; Im O_c]`` with rows scaled by ``sqrt(w_i)``;
        ``f``: ``(2 Ns,)`` real, ``[Re eps_c; Im eps_c]`` scaled the same way.
        ``O_c``, ``eps_c`` are centred with the weighted mean, so ``X^T f = g / 2`` with ``g`` the
        energy gradient (paper eq. 6) and ``X^T X`` the real part of the quantum geometric tensor.
    """
    jacobian = jnp.asarray(jacobian)
    eps = jnp.asarray(eps)
    if jacobian.ndim != 2 or eps.shape != (jacobian.shape[0],):
        raise ValueError(f"expected jacobian (Ns, P) and eps (Ns,), got {jacobian.shape} and {eps.shape}")
    n_samples = jacobian.shape[0]
    real_dtype = jnp.finfo(jnp.result_type(jacobian.dtype, eps.dtype)).dtype
    if weights is None:
        w = jnp.full((n_samples,), 1.0 / n_samples, dtype=real_dtype)
    else:
        w = jnp.asarray(weights, dtype=real_dtype)
        if w.shape != (n_samples,):
            raise ValueError(f"weights must have shape ({n_samples},), got {w.shape}")
    return _sr_matrices(jacobian, eps, w)


@jax.jit
def _sr_matrices(jacobian: jnp.ndarray, eps: jnp.ndarray, w: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Jitted kernel of :func:`sr_matrices` (``w`` always given, renormalised here)."""
    real_dtype = w.dtype
    w = w / jnp.sum(w)
    o_c = jacobian - w @ jacobian
    e_c = eps - jnp.sum(w * eps)
    sw = jnp.sqrt(w)
    o_c = o_c * sw[:, None]
    e_c = e_c * sw
    X = jnp.concatenate([jnp.real(o_c), jnp.imag(o_c)], axis=0).astype(real_dtype)
    f = jnp.concatenate([jnp.real(e_c), jnp.imag(e_c)], axis=0).astype(real_dtype)
    return X, f


def minsr_update(X: jnp.ndarray, f: jnp.ndarray, diag_shift: float) -> jnp.ndarray:
    """minSR direction ``delta = X^T (X X^T + lambda I)^-1 f``, shape ``(P,)``.

    ``X``: ``(2 Ns, P)`` real, ``f``: ``(2 Ns,)`` real (from :func:`sr_matrices`),
    ``diag_shift`` = ``lambda > 0`` (absolute, added to the ``(2 Ns, 2 Ns)`` matrix ``X X^T``;
    ``ValueError`` otherwise). Solved by Cholesky with an eigh pseudo-inverse fallback
    (:func:`psd_solve`). Mathematically identical to :func:`sr_update`.
    """
    _check_diag_shift(diag_shift)
    _check_xf(X, f)
    return _minsr_update(X, f, diag_shift)


@jax.jit
def _minsr_update(X: jnp.ndarray, f: jnp.ndarray, diag_shift) -> jnp.ndarray:
    T = X @ X.T + diag_shift * jnp.eye(X.shape[0], dtype=X.dtype)
    x, _ = _psd_solve(T, f, X.shape[0] * jnp.finfo(X.dtype).eps)
    return X.T @ x


def sr_update(X: jnp.ndarray, f: jnp.ndarray, diag_shift: float) -> jnp.ndarray:
    """Plain SR direction ``delta = (X^T X + lambda I)^-1 X^T f``, shape ``(P,)``.

    Same inputs and result as :func:`minsr_update`, but solves a ``(P, P)`` system: the cheap
    form when ``2 Ns > P``; also the reference in the tests.
    """
    _check_diag_shift(diag_shift)
    _check_xf(X, f)
    return _sr_update(X, f, diag_shift)


@jax.jit
def _sr_update(X: jnp.ndarray, f: jnp.ndarray, diag_shift) -> jnp.ndarray:
    S = X.T @ X + diag_shift * jnp.eye(X.shape[1], dtype=X.dtype)
    x, _ = _psd_solve(S, X.T @ f, X.shape[1] * jnp.finfo(X.dtype).eps)
    return x


def solve_natural_gradient(
    jacobian: jnp.ndarray,
    eps: jnp.ndarray,
    weights: jnp.ndarray | None = None,
    diag_shift: float = 1e-4,
    mode: str = "auto",
) -> jnp.ndarray:
    """SR natural-gradient direction ``(S + lambda I)^-1 g / 2``, shape ``(P,)``.

    ``jacobian`` ``(Ns, P)`` complex, ``eps`` ``(Ns,)`` complex, ``weights`` ``(Ns,)`` or ``None``
    (see :func:`sr_matrices`). ``mode``: ``"minsr"``, ``"sr"`` or ``"auto"`` (minSR when
    ``2 Ns <= P``, SR otherwise; decided from static shapes, so jittable with ``mode`` static).
    The direction points uphill; an optimiser subtracts it.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _check_diag_shift(diag_shift)
    X, f = sr_matrices(jacobian, eps, weights)
    if mode == "auto":
        mode = "minsr" if X.shape[0] <= X.shape[1] else "sr"
    if mode == "minsr":
        return minsr_update(X, f, diag_shift)
    return sr_update(X, f, diag_shift)


# ----------------------------------------------------------------------------------------------
# Equinox / optax glue
# ----------------------------------------------------------------------------------------------
def _real_params(params):
    """``eqx.filter(params, eqx.is_inexact_array)`` after checking that the leaves are real."""
    filtered = eqx.filter(params, eqx.is_inexact_array)
    for leaf in jax.tree_util.tree_leaves(filtered):
        if jnp.iscomplexobj(leaf):
            raise ValueError("minSR assumes real parameters; found a complex inexact-array leaf")
    return filtered


def natural_gradient_tree(
    params,
    jacobian: jnp.ndarray,
    eps: jnp.ndarray,
    weights: jnp.ndarray | None = None,
    diag_shift: float = 1e-4,
    mode: str = "auto",
):
    """The SR / minSR direction as a pytree shaped like ``eqx.filter(params, eqx.is_inexact_array)``.

    ``params`` is the Equinox module (or any pytree) whose inexact-array leaves are the real
    parameters; the columns of ``jacobian`` ``(Ns, P)`` must follow ``ravel_pytree`` of that
    filtered tree (as :func:`jacobian_of_log_psi` produces). Non-array leaves are ``None``.
    The direction replaces the gradient in an optax optimiser (see :func:`make_optimizer`).
    """
    filtered = _real_params(params)
    flat, unravel = ravel_pytree(filtered)
    if jacobian.ndim != 2 or jacobian.shape[1] != flat.shape[0]:
        raise ValueError(f"jacobian must have shape (Ns, {flat.shape[0]}), got {jacobian.shape}")
    delta = solve_natural_gradient(jacobian, eps, weights, diag_shift, mode)
    return unravel(delta.astype(flat.dtype))


def make_optimizer(name: str = "adam", learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """The optax transformation applied to the preconditioned direction (which replaces the gradient).

    ``name``: ``"adam"`` (the paper's choice) or ``"sgd"``. With ``"sgd"`` the update is
    ``-learning_rate * delta``, i.e. a plain imaginary-time / SR step.
    """
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "sgd":
        return optax.sgd(learning_rate)
    raise ValueError(f"optimizer name must be one of {OPTIMIZERS}, got {name!r}")


def jacobian_of_log_psi(
    log_psi_fn: Callable[[object, jnp.ndarray], jnp.ndarray], params, configs: jnp.ndarray
) -> jnp.ndarray:
    """Per-sample Jacobian of a complex ``log Psi`` w.r.t. the real parameters.

    Args:
        log_psi_fn: ``log_psi_fn(params, config) -> complex scalar`` for ONE configuration
            ``config = configs[i]`` (e.g. shape ``(N,)`` or ``(K, N)``); vmapped here.
        params: Equinox module / pytree; its inexact-array leaves (which must be real) are the
            parameters, the rest is held static (``eqx.partition``).
        configs: ``(Ns, ...)`` batch of configurations.

    Returns:
        ``(Ns, P)`` complex, ``O[i, k] = d Re log Psi(s_i)/d theta_k + 1j d Im log Psi(s_i)/d theta_k``,
        columns ordered as ``ravel_pytree(eqx.filter(params, eqx.is_inexact_array))``.
    """
    _real_params(params)
    return _jacobian_of_log_psi(log_psi_fn, params, configs)


@eqx.filter_jit
def _jacobian_of_log_psi(log_psi_fn, params, configs: jnp.ndarray) -> jnp.ndarray:
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(dynamic)

    def re_im(theta, config):
        value = log_psi_fn(eqx.combine(unravel(theta), static), config)
        return jnp.stack([jnp.real(value), jnp.imag(value)])

    jac = jax.vmap(jax.jacrev(re_im), in_axes=(None, 0))(flat, configs)  # (Ns, 2, P)
    return jac[:, 0, :] + 1j * jac[:, 1, :]
