"""Multilayer-perceptron NQS (paper section 4.2).

``MLP(n_sites, width, depth)`` maps a configuration ``s`` of shape ``(N,)`` (entries +-1, any
dtype; cast to the parameters' float dtype) to a complex scalar ``log psi(s)``:

    h_0 = s,   h_l = GELU(LayerNorm(W_l h_{l-1} + b_l))  for l = 1..depth,
    (a, b) = W_out h_depth + b_out,   log psi = a + i b.

Every hidden linear projection is followed by layer normalisation and GELU, as in the paper.
The output layer is initialised small (weights scaled by ``final_scale``, bias zero) so a new
network is close to, but not exactly, the uniform state.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from nirbench.models.layers import layer_norm


def _scaled_linear(linear: eqx.nn.Linear, scale: float) -> eqx.nn.Linear:
    """``linear`` with its weight multiplied by ``scale`` and its bias set to zero."""
    linear = eqx.tree_at(lambda lin: lin.weight, linear, linear.weight * scale)
    if linear.bias is not None:
        linear = eqx.tree_at(lambda lin: lin.bias, linear, jnp.zeros_like(linear.bias))
    return linear


class MLP(eqx.Module):
    """MLP wave function ``s (N,) -> log psi(s)`` (complex scalar).

    Args:
        n_sites: number of sites ``N`` (input width).
        width: neurons per hidden layer (paper: 256).
        depth: number of hidden layers, each Linear -> LayerNorm -> GELU (paper: 4).
        final_scale: factor applied to the initial output weights (output bias starts at 0).
        key: PRNG key.
    """

    hidden: tuple[eqx.nn.Linear, ...]
    norms: tuple[eqx.nn.LayerNorm, ...]
    output: eqx.nn.Linear

    def __init__(self, n_sites: int, width: int = 128, depth: int = 4, *, final_scale: float = 0.1, key):
        if depth < 1:
            raise ValueError(f"depth (number of hidden layers) must be >= 1, got {depth}")
        keys = jax.random.split(key, depth + 1)
        sizes = [n_sites] + [width] * depth
        self.hidden = tuple(eqx.nn.Linear(sizes[i], sizes[i + 1], key=keys[i]) for i in range(depth))
        self.norms = tuple(eqx.nn.LayerNorm(width) for _ in range(depth))
        self.output = _scaled_linear(eqx.nn.Linear(width, 2, key=keys[-1]), final_scale)

    def __call__(self, s: jax.Array) -> jax.Array:
        """``s`` of shape ``(N,)`` -> complex ``log psi(s)`` (shape ``()``)."""
        return self.probed_call(s)[0]

    def on_rows(self, rows: jax.Array) -> jax.Array:
        """``rows`` of shape ``(R, N)`` -> complex ``log psi`` ``(R,)``: ``jax.vmap(self)(rows)`` up to
        round-off, as batched products (:meth:`probed_rows`)."""
        return self.probed_rows(rows)[0]

    def linear_layers(self) -> tuple[eqx.nn.Linear, ...]:
        """The linear layers in evaluation order: the ``depth`` hidden ones, then the output layer."""
        return (*self.hidden, self.output)

    def probed_call(self, s: jax.Array, probes=None) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """``__call__`` exposing what the layer-wise minSR (``nirbench.minsr``) needs.

        ``probes``: ``None`` or one array per entry of :meth:`linear_layers`, of shape
        ``(out_features,)``, added to that layer's output ``z_l = W_l a_l + b_l`` (zero probes leave
        the result unchanged; their gradient is ``d log psi / d z_l``). Returns ``(log psi, inputs)``
        with ``inputs[l] = a_l`` of shape ``(in_features,)``, the input of linear layer ``l``.
        """
        return self._forward(jnp.asarray(s), probes)

    def probed_rows(self, rows: jax.Array, probes=None) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """:meth:`probed_call` on a batch: ``rows`` ``(R, N)``, ``probes`` ``None`` or one ``(R,
        out_features)`` array per linear layer; returns ``log psi`` ``(R,)`` and ``inputs[l]`` ``(R,
        in_features)``.

        The activations are feature-major, ``(width, R)``: each layer is one product ``W_l H`` and
        the layer norm runs over axis 0. ``jax.vmap`` of the one-row form gives the same numbers but
        products whose output XLA transposes to ``(R, width)`` before the norm: 512 rows of the
        MLP 4 x 128 took 7.8 ms that way against 4.8 ms here, 16 rows 0.39 ms either way
        (float64, one core of a 2-core AMD EPYC; docs/benchmarks.md). Rows against the weights'
        transpose (``(R, in) x (in, out)``) was as fast for 512 rows but 13-21 % slower inside
        Metropolis's loop over 16 chains.
        """
        return self._forward(jnp.asarray(rows).T, probes)

    def _forward(self, h: jax.Array, probes) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """The layers on ``h`` ``(N,)`` (one configuration) or ``(N, R)`` (a batch, feature-major);
        ``probes[l]`` ``(out,)`` or ``(R, out)``; ``inputs[l]`` ``(in,)`` or ``(R, in)``."""
        h = h.astype(self.output.weight.dtype)
        columns = (slice(None),) + (None,) * (h.ndim - 1)  # a vector broadcast along the batch
        layers = self.linear_layers()
        probes = (None,) * len(layers) if probes is None else probes
        inputs = []
        for linear, probe, norm in zip(layers, probes, (*self.norms, None)):
            inputs.append(h.T)
            h = linear.weight @ h if linear.bias is None else linear.weight @ h + linear.bias[columns]
            if probe is not None:
                h = h + probe.T
            if norm is not None:
                h = jax.nn.gelu(layer_norm(norm, h, axis=0))
        return h[0] + 1j * h[1], tuple(inputs)
