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

For a ``MultiStateNQS`` of plain MLPs (:func:`supports_layerwise_minsr`),
:func:`layerwise_natural_gradient_tree` ``(nqs, configs, eps, weights, diag_shift)`` gives the same
direction without materialising ``O``: it builds ``X X^T`` layer by layer from per-sample layer
inputs and output gradients ("NTK by layers") and gets ``X^T y`` from one VJP.
``nirbench.updates.nqs_updates`` uses it automatically where it applies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_factor, cho_solve

from nirbench.estimators import distinct_rows
from nirbench.models.multistate import MultiStateNQS, batched_log_psi, evaluation_chunk

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
    real_dtype = jnp.finfo(jnp.result_type(jacobian.dtype, eps.dtype)).dtype
    return _sr_matrices(jacobian, eps, _weights_or_uniform(weights, jacobian.shape[0], real_dtype))


def _weights_or_uniform(weights, n_samples: int, dtype) -> jnp.ndarray:
    """``weights`` as a ``(n_samples,)`` array of ``dtype`` (shape checked), or uniform ``1 / n_samples``.

    Not renormalised here: the jitted kernels divide by the sum.
    """
    if weights is None:
        return jnp.full((n_samples,), 1.0 / n_samples, dtype=dtype)
    w = jnp.asarray(weights, dtype=dtype)
    if w.shape != (n_samples,):
        raise ValueError(f"weights must have shape ({n_samples},), got {w.shape}")
    return w


def _centre_and_scale(values: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """``sqrt(w_i) * (values_i - sum_j w_j values_j)`` along axis 0 (``w`` normalised, shape ``(Ns,)``)."""
    centred = values - jnp.tensordot(w, values, axes=1)
    return centred * jnp.sqrt(w).reshape((-1,) + (1,) * (values.ndim - 1))


def _stack_re_im(values: jnp.ndarray, real_dtype) -> jnp.ndarray:
    """``[Re values; Im values]`` along axis 0 (``(Ns, ...)`` -> ``(2 Ns, ...)``), as ``real_dtype``."""
    return jnp.concatenate([jnp.real(values), jnp.imag(values)], axis=0).astype(real_dtype)


@jax.jit
def _sr_matrices(jacobian: jnp.ndarray, eps: jnp.ndarray, w: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Jitted kernel of :func:`sr_matrices` (``w`` always given, renormalised here)."""
    w = w / jnp.sum(w)
    X = _stack_re_im(_centre_and_scale(jacobian, w), w.dtype)
    f = _stack_re_im(_centre_and_scale(eps, w), w.dtype)
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


def make_optimizer(name: str = "adam", learning_rate: float | optax.Schedule = 1e-3) -> optax.GradientTransformation:
    """The optax transformation applied to the preconditioned direction (which replaces the gradient).

    ``learning_rate``: a number or an optax schedule of the update count (e.g. a cosine decay).

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

    # vectorised over a chunk of configurations at a time, so that its activations stay in cache
    # (evaluation_chunk: 128 for the J1-J2 recipe's symmetric ResCNN, docs/benchmarks.md)
    chunk = evaluation_chunk(params)
    jac = jax.lax.map(functools.partial(jax.jacrev(re_im), flat), configs, batch_size=chunk)  # (Ns, 2, P)
    return jac[:, 0, :] + 1j * jac[:, 1, :]


# ----------------------------------------------------------------------------------------------
# Jacobian-free minSR for networks made of linear layers ("NTK by layers")
# ----------------------------------------------------------------------------------------------
def supports_layerwise_minsr(nqs) -> bool:
    """Whether :func:`layerwise_natural_gradient_tree` applies to ``nqs``.

    It needs a :class:`~nirbench.models.multistate.MultiStateNQS` whose (stacked) single-state
    network exposes ``linear_layers()`` and ``probed_call(s, probes)`` as
    :class:`~nirbench.models.mlp.MLP` does (see there), or an MLP in
    :class:`~nirbench.models.symmetry.SpinFlipParity` (its two images count as two inputs). Other
    wrapped networks (symmetry averages, sector penalties) and the ResCNN do not, and keep the
    Jacobian path.
    """
    network = getattr(nqs, "networks", None)
    return isinstance(nqs, MultiStateNQS) and all(
        callable(getattr(network, name, None)) for name in ("linear_layers", "probed_call")
    )


def layerwise_natural_gradient_tree(
    nqs,
    configs: jnp.ndarray,
    eps: jnp.ndarray,
    weights: jnp.ndarray | None = None,
    diag_shift: float = 1e-4,
    gram: jnp.ndarray | None = None,
):
    """The minSR direction of :func:`natural_gradient_tree` without materialising the Jacobian ``O``.

    Same result (up to round-off) as
    ``natural_gradient_tree(nqs, jacobian_of_log_psi(lambda m, s: m.log_psi(s), nqs, configs), eps,
    weights, diag_shift)``, i.e. ``delta = X^T (X X^T + lambda I)^-1 f`` with ``X``, ``f`` as in
    :func:`sr_matrices`, for an NQS accepted by :func:`supports_layerwise_minsr`.

    Args:
        nqs: ``MultiStateNQS`` with K stacked single-state networks (real parameters).
        configs: ``(Ns, K, N)`` K-tuples of configurations.
        eps: ``(Ns,)`` complex local energies (trace of the local energy matrix).
        weights: ``(Ns,)`` importance weights or ``None`` (uniform); renormalised to sum to 1.
        diag_shift: ``lambda > 0``.
        gram: ``layerwise_gram(nqs, configs)`` if already computed, else ``None`` (computed here).

    Returns:
        The direction as a pytree shaped like ``eqx.filter(nqs, eqx.is_inexact_array)``.

    Method. The rows of ``J = [Re O; Im O]`` (uncentred, unscaled; ``(2 Ns, P)``) are never formed;
    only the ``(2 Ns, 2 Ns)`` Gram matrix ``G = J J^T`` is (:func:`_layerwise_gram`). For a linear
    layer ``z = W a + b`` of network ``j`` the derivative of ``log Psi_b`` w.r.t. ``W`` is
    ``sum_k Delta_bkj (x) a_bkj``, with ``a_bkj`` the layer input when network ``j`` is evaluated on
    configuration ``s_b^k`` and ``Delta_bkj = d log Psi_b / d z_bkj`` (complex), so the weight's
    share of ``G`` is ``sum_j sum_kk' (D_rbkj . D_r'ck'j) (a_bkj . a_ck'j)`` (``D_r`` the real or
    imaginary part) -- a product of two small Gram matrices; the bias ``b`` adds 1 to ``a . a'``
    (a constant input). The other parameters (LayerNorm scales and offsets) are few and get an
    explicit per-sample gradient. Centring and the ``sqrt(w)`` scaling act on the rows of ``J`` as
    a linear map ``R`` (``X = R J``), hence ``X X^T = R G R^T``; after the solve ``(R G R^T + lambda I) y = f`` the direction
    ``X^T y = J^T R^T y`` is a single VJP of ``theta -> R [Re log Psi; Im log Psi]`` at ``y``.

    The Gram matrix is its own compiled program (:func:`layerwise_gram`), the rest another: compiled
    as one program, XLA chose layouts for the Gram that its centring reads slowly (108 copies and 108
    transposes of ``(2, Ns, 2, Ns)`` arrays instead of 36 copies), and the direction took 1.75 s
    instead of 1.0 s + 0.13 s (4x4, K = 3, MLP 64 x 3, batch 512, float64, one core; docs/benchmarks.md).
    Called inside an outer ``jit``, both parts are inlined into that program again; pass ``gram``
    from outside it to keep them apart (as ``nirbench.updates.nqs_updates`` does).
    """
    _check_diag_shift(diag_shift)
    if not supports_layerwise_minsr(nqs):
        raise ValueError(
            "the NQS does not support the layer-wise minSR; use jacobian_of_log_psi + natural_gradient_tree"
        )
    params = _real_params(nqs)
    configs, eps = jnp.asarray(configs), jnp.asarray(eps)
    if configs.ndim != 3 or configs.shape[1] != nqs.n_states or eps.shape != (configs.shape[0],):
        raise ValueError(
            f"expected configs (Ns, {nqs.n_states}, N) and eps (Ns,), got {configs.shape} and {eps.shape}"
        )
    real_dtype = jnp.finfo(jnp.result_type(eps.dtype, *jax.tree_util.tree_leaves(params))).dtype
    w = _weights_or_uniform(weights, configs.shape[0], real_dtype)
    if gram is None:
        gram = layerwise_gram(nqs, configs)
    elif gram.shape != (2 * configs.shape[0],) * 2:
        raise ValueError(f"gram must have shape (2 Ns, 2 Ns) = {(2 * configs.shape[0],) * 2}, got {gram.shape}")
    return _layerwise_natural_gradient(nqs, configs, eps, w, diag_shift, gram)


@eqx.filter_jit
def _layerwise_natural_gradient(nqs, configs: jnp.ndarray, eps: jnp.ndarray, w: jnp.ndarray, diag_shift, gram):
    """Jitted kernel of :func:`layerwise_natural_gradient_tree` (``w`` given, renormalised here;
    ``gram`` from :func:`layerwise_gram`)."""
    w = w / jnp.sum(w)
    n_rows = 2 * configs.shape[0]
    params, static = eqx.partition(nqs, eqx.is_inexact_array)

    def centred_rows(theta):  # theta -> X-row space: R [Re log Psi; Im log Psi], shape (2 Ns,)
        log_psi = batched_log_psi(eqx.combine(theta, static), configs)
        return _stack_re_im(_centre_and_scale(log_psi, w), w.dtype)

    def centre_rows(matrix):  # R applied to the rows of a (2 Ns, M) matrix, per Re / Im half
        halves = matrix.reshape(2, n_rows // 2, -1)
        return jax.vmap(_centre_and_scale, in_axes=(0, None))(halves, w).reshape(matrix.shape)

    T = centre_rows(centre_rows(gram).T) + diag_shift * jnp.eye(n_rows, dtype=gram.dtype)
    f = _stack_re_im(_centre_and_scale(eps, w), w.dtype)
    y, _ = _psd_solve(T, f, n_rows * jnp.finfo(T.dtype).eps)
    _, pullback = jax.vjp(centred_rows, params)
    (delta,) = pullback(y.astype(w.dtype))
    return delta


def _to_complex(re_im: jnp.ndarray) -> jnp.ndarray:
    """``re_im[0] + 1j * re_im[1]``: the derivatives of ``Re`` and ``Im`` as one complex array."""
    return re_im[0] + 1j * re_im[1]


def _linear_parameters(network) -> list:
    """Weights and biases of ``network.linear_layers()`` (an ``eqx.tree_at`` ``where``)."""
    layers = network.linear_layers()
    return [linear.weight for linear in layers] + [
        linear.bias for linear in layers if linear.bias is not None
    ]


def layerwise_gram(nqs, configs: jnp.ndarray, tile: int | None = None) -> jnp.ndarray:
    """``G = J J^T`` of :func:`layerwise_natural_gradient_tree`, ``(2 Ns, 2 Ns)``, one compiled program.

    ``configs`` ``(Ns, K, N)``; ``nqs`` accepted by :func:`supports_layerwise_minsr`; ``tile``: samples
    per side of a tile of the linear layers' share (default :data:`GRAM_TILE`; see
    :func:`_tiled_gram`), the same ``G`` up to round-off whatever it is.

    A resampled batch repeats tuples (about 420 distinct of 512 in the 4x4 K = 3 reference case of
    issue 16), and the rows of ``J`` of equal tuples are equal. Given concrete ``configs`` (not
    under ``jit``), the distinct tuples are found on the host
    (:func:`nirbench.estimators.distinct_rows`) and moved to the front of a batch of the same shape
    (the rest repeats the first one), the tiles that hold none of them are skipped (the work falls
    with the square of the distinct count; one compiled program whatever the count), and ``G`` is
    gathered back to the batch's order.
    """
    tile = GRAM_TILE if tile is None else int(tile)
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    configs = jnp.asarray(configs)
    n_samples = configs.shape[0]
    # the count is an array: a traced argument of the compiled program, not one program per count
    if not isinstance(configs, jax.core.Tracer):
        index, inverse = distinct_rows(np.asarray(configs).reshape(n_samples, -1))
        if len(index) < n_samples:
            front = np.concatenate([index, np.full(n_samples - len(index), index[0])])
            distinct_gram = _compiled_layerwise_gram(nqs, configs[front], tile, jnp.int32(len(index)))
            return _rows_and_columns(distinct_gram, np.concatenate([inverse, inverse + n_samples]))
    return _compiled_layerwise_gram(nqs, configs, tile, jnp.int32(n_samples))


@jax.jit
def _rows_and_columns(matrix: jnp.ndarray, index: jnp.ndarray) -> jnp.ndarray:
    """``matrix[index][:, index]``."""
    return matrix[index][:, index]


def _layerwise_gram(nqs, configs: jnp.ndarray, tile: int, n_distinct) -> jnp.ndarray:
    """``G = J J^T``, ``(2 Ns, 2 Ns)`` real, for ``J = [Re O; Im O]`` (``O`` uncentred, unscaled).

    ``n_distinct`` (``()`` int, traced): only the entries between the first ``n_distinct`` samples
    are needed; tiles beyond them are left zero (:func:`_tiled_gram`).

    Shapes below: ``Ns`` samples ``b``, K configurations ``k`` per sample, K networks ``j``,
    ``M = Ns K`` network inputs (row ``b K + k`` of ``configs.reshape(M, N)``).
    """
    n_samples, n_states, n_sites = configs.shape
    rows = configs.reshape(n_samples * n_states, n_sites)
    networks = nqs.networks
    # the linear layers' parameters are held fixed; every other one is differentiated explicitly
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, networks)
    spec = eqx.tree_at(_linear_parameters, spec, replace=[False] * len(_linear_parameters(networks)))
    others, rest = eqx.partition(networks, spec)
    # a network evaluated on several images of its input (SpinFlipParity: s and -s) has probes and
    # layer inputs with an image axis of length n_images; each image counts as one more configuration
    n_images = getattr(networks, "n_images", None)
    image_shape = () if n_images is None else (n_images,)
    probe_sizes = [image_shape + (linear.out_features,) for linear in networks.linear_layers()]
    has_bias = [linear.bias is not None for linear in networks.linear_layers()]
    real_dtype = networks.linear_layers()[0].weight.dtype

    def one_network(others_j, rest_j):
        def re_im(others_p, probes, s):
            log_psi, inputs = eqx.combine(others_p, rest_j).probed_call(s, probes)
            return jnp.stack([jnp.real(log_psi), jnp.imag(log_psi)]), (log_psi, inputs)

        def one_input(s):
            probes = tuple(jnp.zeros(size, dtype=real_dtype) for size in probe_sizes)
            _, pullback, (log_psi, inputs) = jax.vjp(
                lambda o, p: re_im(o, p, s), others_j, probes, has_aux=True
            )
            d_others, d_probes = jax.vmap(pullback)(jnp.eye(2, dtype=real_dtype))
            d_others = jax.vmap(lambda tree: ravel_pytree(tree)[0])(d_others)  # (2, P_other)
            # d log psi_j(s) / d(.) as complex numbers: d Re + 1j d Im
            return log_psi, inputs, _to_complex(d_others), tuple(_to_complex(d) for d in d_probes)

        return jax.vmap(one_input)(rows)

    # leading axis j on every output; then (M, ...) per network
    log_amps, inputs, d_others, d_probes = eqx.filter_vmap(one_network)(others, rest)

    def split(x):  # (j, M, ...) -> (j, b, k, ...)
        return x.reshape(n_states, n_samples, n_states, *x.shape[2:])

    def per_input(x):  # (j, M, [images,] size) -> (j, b, k * images, size): an image is one more input
        return x.reshape(n_states, n_samples, -1, x.shape[-1])

    # c[j, b, k] = d log Psi_b / d log psi_j(s_b^k)
    c = jnp.moveaxis(_amplitude_sensitivities(nqs, jnp.moveaxis(split(log_amps), 0, -1)), -1, 0)

    c_images = jnp.repeat(c, 1 if n_images is None else n_images, axis=-1)  # (j, b, k * images)
    layer_inputs, layer_deltas = [], []
    for a, d_z in zip(inputs, d_probes):
        delta = c_images[..., None] * per_input(d_z)  # (j, b, k * images, out): d log Psi_b / d z
        layer_inputs.append(per_input(a))  # (j, b, k * images, in)
        layer_deltas.append(jnp.stack([jnp.real(delta), jnp.imag(delta)], axis=1))  # (j, r, b, k * images, out)
    # the other parameters: explicit rows sum_k c_jbk d log psi_j(s_b^k) / d theta, (2, Ns, K P_other)
    others_rows = _stack_re_im(
        jnp.einsum("jbk,jbkp->bjp", c, split(d_others)).reshape(n_samples, -1), real_dtype
    ).reshape(2, n_samples, -1)
    gram = _tiled_gram(layer_inputs, layer_deltas, has_bias, others_rows, tile, n_distinct)
    return gram.reshape(2 * n_samples, 2 * n_samples)


GRAM_TILE = 64
"""Samples per side of a tile of :func:`_tiled_gram`: the whole Gram of the 4x4 TFI recipe's NQS
(K = 3, batch 512, one core of an AVX-512 Xeon) took 0.243 s with 64, 0.267 s with 32, 0.257 s
with 128, 0.277 s with 16 and 0.707 s in the former form (``benchmarks/minsr_gram.py``,
docs/benchmarks.md); on a 2-core AMD EPYC (AVX2) with the tile's sum as one multiply-reduce,
0.80 s with 64, 0.84 s with 32, 0.88 s with 128."""


def _tiled_gram(
    inputs: list, deltas: list, has_bias: list, explicit_rows: jnp.ndarray, tile: int, n_distinct
) -> jnp.ndarray:
    """``G``, ``(2, Ns, 2, Ns)``, computed tile by tile.

    Per linear layer, ``inputs`` ``(j, Ns, k, in)`` (``a``) and ``deltas`` ``(j, r, Ns, k, out)``
    (``D``, ``r`` = Re / Im); ``has_bias`` adds the constant input 1. The share of a layer is
    ``G[r b, s c] = sum_j sum_kl (D_rbkj . D_sclj) (a_bkj . a_clj + bias)``; the other parameters'
    share is ``explicit_rows[r, b] . explicit_rows[s, c]`` (``explicit_rows`` ``(2, Ns, P)``).

    The ``(Ns, Ns)`` sample pairs are cut into tiles of ``tile`` x ``tile`` samples (fewer when
    ``Ns`` is smaller); only the tiles on and above the diagonal are computed (``G`` is symmetric:
    the rest are their transposes), one after the other (``lax.map``), each over every layer,
    network and pair ``(k, l)``, so a tile's ``(j, 2, T, k, k, 2, T)`` products stay in cache. On
    4x4 TFI, K = 3, MLP 64 x 3, batch 512 (float64, one core of an AVX-512 Xeon) the linear
    layers' share took 0.17 s against 0.63 s for the whole ``(j, 2 Ns, 2 Ns)`` products of each
    pair ``k <= l`` at once, which ran from memory (docs/benchmarks.md). Within a tile the
    products come out of the matrix product with the pair ``(k, l)`` between the row and the
    column samples and are summed over ``j, k, l`` as one multiply-reduce; summed as a second
    product over ``(j, k, l)`` per sample pair instead (a copy of the products into that order,
    then 4096 products of 4 x 27 by 27), the whole Gram took 0.90 s against 0.78 s on a 2-core AMD
    EPYC without AVX-512, whose float64 matrix products run at about 16 GFLOP/s, the rate of the
    tile's fused products now (docs/benchmarks.md). The batch is padded with zero rows to a multiple of
    the tile (zero rows add nothing). Only the entries between the first ``n_distinct`` samples
    (``()`` int, may be traced; the batch size for every entry) are needed: a tile whose column
    samples all lie at or beyond it is skipped (``lax.cond``) and left zero.
    """
    n_samples = inputs[0].shape[1]
    tile = min(tile, n_samples)
    n_tiles = -(-n_samples // tile)
    padding = n_tiles * tile - n_samples
    if padding:
        inputs = [jnp.pad(a, ((0, 0), (0, padding), (0, 0), (0, 0))) for a in inputs]
        deltas = [jnp.pad(d, ((0, 0), (0, 0), (0, padding), (0, 0), (0, 0))) for d in deltas]
        explicit_rows = jnp.pad(explicit_rows, ((0, 0), (0, padding), (0, 0)))
    rows, cols = np.triu_indices(n_tiles)

    def one_tile(index):  # tile (row, col) -> (2, T, 2, T)
        def row_and_col(x, axis):  # the tile's samples of x along its sample axis, for row and col
            return tuple(jax.lax.dynamic_slice_in_dim(x, i * tile, tile, axis=axis) for i in index)

        e_row, e_col = row_and_col(explicit_rows, 1)
        block = jnp.einsum("rbp,scp->rbsc", e_row, e_col)
        for a, d, bias in zip(inputs, deltas, has_bias):
            a_row, a_col = row_and_col(a, 1)
            d_row, d_col = row_and_col(d, 2)
            # the column side as (j, l, s, c, o): the product comes out of the matrix product as
            # (j, r, b, k, l, s, c), the pair (k, l) between the row and the column samples, so the
            # sum over j, k, l is a multiply-reduce over its outer axes, c contiguous
            dd = jnp.einsum("jrbko,jlsco->jrbklsc", d_row, jnp.transpose(d_col, (0, 3, 1, 2, 4)))
            aa = jnp.einsum("jbki,jcli->jbklc", a_row, a_col) + bias
            block = block + jnp.sum(dd * aa[:, None, :, :, :, None, :], axis=(0, 3, 4))
        return block

    n_active = -(-jnp.asarray(n_distinct) // tile)  # tiles holding needed samples

    def maybe_tile(index):  # the upper tiles have row <= col: skip those with col beyond the needed samples
        skipped = jnp.zeros((2, tile, 2, tile), explicit_rows.dtype)
        return jax.lax.cond(index[1] < n_active, one_tile, lambda _: skipped, index)

    upper = jax.lax.map(maybe_tile, (jnp.asarray(rows), jnp.asarray(cols)))  # (tiles, 2, T, 2, T)
    blocks = jnp.zeros((n_tiles, n_tiles) + upper.shape[1:], upper.dtype)
    blocks = blocks.at[cols, rows].set(jnp.transpose(upper, (0, 3, 4, 1, 2)))
    blocks = blocks.at[rows, cols].set(upper)  # the diagonal tiles as computed
    size = n_tiles * tile
    gram = jnp.transpose(blocks, (2, 0, 3, 4, 1, 5)).reshape(2, size, 2, size)
    return gram[:, :n_samples, :, :n_samples]


_compiled_layerwise_gram = eqx.filter_jit(_layerwise_gram)


class _AmplitudeTable(eqx.Module):
    """Stand-in single-state network returning ``values[k]`` for the "configuration" ``(k,)``."""

    values: jnp.ndarray  # (K,) complex for one network; (K, K) when stacked over the networks

    def __call__(self, s: jnp.ndarray) -> jnp.ndarray:
        return self.values[s[0]]


def _amplitude_sensitivities(nqs, log_amps: jnp.ndarray) -> jnp.ndarray:
    """``c[b, k, j] = d log Psi_b / d log psi_j(s_b^k)`` (complex), from ``log_amps`` ``(Ns, K, K)``.

    ``log Psi`` is a holomorphic function of the K x K amplitudes (``log det exp``); it is taken
    from ``nqs.log_psi`` itself, run on an :class:`_AmplitudeTable` in place of the networks and the
    "configurations" ``k = 0..K-1``, so the determinant code is not duplicated. K = 1 gives 1.
    """
    n_states = log_amps.shape[-1]
    index = jnp.arange(n_states)[:, None]

    def log_psi_re_im(re, im):  # (K, K) [k, j] -> (2,)
        table = eqx.tree_at(lambda m: m.networks, nqs, _AmplitudeTable((re + 1j * im).T))
        value = table.log_psi(index)
        return jnp.stack([jnp.real(value), jnp.imag(value)])

    def one_sample(amps):
        d = jax.jacrev(log_psi_re_im)(jnp.real(amps), jnp.imag(amps))  # (2, K, K), d/d Re
        return d[0] + 1j * d[1]  # holomorphic: d/dz = d/d Re z

    return jax.vmap(one_sample)(log_amps)
