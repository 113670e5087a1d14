"""Layer maths shared by the networks and the proposal, and the batched evaluation of a network."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp


def layer_norm(norm: eqx.nn.LayerNorm, x: jax.Array, axis: int = -1) -> jax.Array:
    """``norm`` (an ``eqx.nn.LayerNorm`` over one axis, ``norm.shape == (d,)``) applied along
    ``axis`` of ``x``, whatever the other axes: the maths of its ``__call__`` (mean, variance as
    the mean squared deviation, ``rsqrt(variance + eps)``, then weight and bias where it has them),
    without the ``vmap`` its ``__call__`` needs for a batch. ``x`` of any shape with
    ``x.shape[axis] == d``; same shape out."""
    mean = jnp.mean(x, axis=axis, keepdims=True)
    deviation = x - mean
    variance = jnp.mean(jnp.square(deviation), axis=axis, keepdims=True)
    out = deviation * jax.lax.rsqrt(variance + norm.eps)
    shape = [1] * x.ndim
    shape[axis] = -1
    if norm.weight is not None:
        out = out * norm.weight.reshape(shape)
    if norm.bias is not None:
        out = out + norm.bias.reshape(shape)
    return out


def on_rows(net, rows: jax.Array) -> jax.Array:
    """A single-state network on every row of ``rows`` ``(R, N)`` -> ``(R,)``: its batched form
    ``net.on_rows(rows)`` where it has one (``MLP``, ``SpinFlipParity``), else ``jax.vmap(net)``."""
    batched = getattr(net, "on_rows", None)
    return batched(rows) if callable(batched) else jax.vmap(net)(rows)
