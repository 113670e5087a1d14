"""Determinants and linear solves of batches of small ``K x K`` matrices, in plain jnp operations.

Why not ``jnp.linalg``: on the CPU, jaxlib 0.10's LAPACK kernels (``getrf``, behind ``slogdet`` and
``solve``) split a batch over XLA's intra-op thread pool and block until it is done. When XLA runs
two such kernels at once on a 2-thread pool, both threads wait for work that no thread is free to
do and the process hangs (seen in CI on the 2-core machine: a jitted function with two batched
complex LUs, every thread parked in ``ParallelBatchMap``). The matrices here are ``K x K`` with
``K`` the number of states (1-4), so Gaussian elimination with partial pivoting (as LAPACK's
``getrf``), unrolled over the ``K`` columns, costs little and calls no custom kernel. Both functions
are differentiable (the pivot choice is piecewise constant) and work on any leading batch shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _eliminate(m: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """Forward elimination with partial pivoting on the first ``n`` columns.

    ``m`` ``(..., n, c)`` with ``c >= n`` (a matrix, or a matrix with right-hand sides appended).
    Returns ``(u, parity)``: ``u`` ``(..., n, c)`` upper triangular in its first ``n`` columns (rows
    swapped and combined as the elimination did), ``parity`` ``(...,)`` +1 or -1, the sign of the row
    permutation. A zero pivot (a singular matrix) leaves its column as it is.
    """
    rows = jnp.arange(n)
    parity = jnp.ones(m.shape[:-2], dtype=jnp.int32)
    for k in range(n):
        p = k + jnp.argmax(jnp.abs(m[..., k:, k]), axis=-1)  # (...,) pivot row
        order = jnp.where(rows == k, p[..., None], jnp.where(rows == p[..., None], k, rows))  # swap k <-> p
        m = jnp.take_along_axis(m, jnp.broadcast_to(order[..., :, None], m.shape), axis=-2)
        parity = jnp.where(p != k, -parity, parity)
        pivot = m[..., k, k]
        zero = pivot == 0
        factors = jnp.where(zero[..., None], 0, m[..., k + 1 :, k] / jnp.where(zero, 1, pivot)[..., None])
        m = m.at[..., k + 1 :, :].add(-factors[..., :, None] * m[..., None, k, :])
    return m, parity


@jax.jit  # one program per shape when called outside jit (unrolled, it is dozens of small ops)
def slogdet(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sign, log|det a|)`` of ``a`` ``(..., n, n)``, as ``jnp.linalg.slogdet``.

    ``sign`` has the dtype of ``a`` (a unit complex phase for complex ``a``); a singular matrix
    gives ``sign = 0`` and ``log|det| = -inf``.
    """
    n = a.shape[-1]
    if a.ndim < 2 or a.shape[-2] != n:
        raise ValueError(f"slogdet expects square matrices (..., n, n), got {a.shape}")
    u, parity = _eliminate(a, n)
    diag = jnp.diagonal(u, axis1=-2, axis2=-1)
    abs_diag = jnp.abs(diag)
    phase = diag / jnp.where(abs_diag == 0, 1, abs_diag)
    sign = parity.astype(a.dtype) * jnp.prod(phase, axis=-1)
    return sign, jnp.sum(jnp.log(abs_diag), axis=-1)


@jax.jit
def solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a^-1 b`` for ``a`` ``(..., n, n)`` and ``b`` ``(..., n, m)``, as ``jnp.linalg.solve``.

    A singular ``a`` gives non-finite entries.
    """
    n = a.shape[-1]
    if a.ndim < 2 or a.shape[-2] != n or b.ndim != a.ndim or b.shape[-2] != n:
        raise ValueError(f"solve expects a (..., n, n) and b (..., n, m), got {a.shape} and {b.shape}")
    dtype = jnp.result_type(a, b)
    u, _ = _eliminate(jnp.concatenate([a.astype(dtype), b.astype(dtype)], axis=-1), n)
    upper, rhs = u[..., :n], u[..., n:]
    x = [None] * n
    for i in reversed(range(n)):  # back substitution
        acc = rhs[..., i, :]
        for j in range(i + 1, n):
            acc = acc - upper[..., i, j, None] * x[j]
        x[i] = acc / upper[..., i, i, None]
    return jnp.stack(x, axis=-2)
