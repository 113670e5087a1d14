"""Batches cut into equal chunks of rows, for evaluations that run one chunk at a time (so that a
chunk's activations stay in cache): the proposal's training passes
(``nirbench.proposal.forward_kl_value_and_grad``) and the NQS on a batch
(``nirbench.models.multistate.evaluate_in_chunks``)."""

from __future__ import annotations

import jax.numpy as jnp


def row_chunks(x, chunk: int):
    """``(B, ...)`` -> ``(ceil(B / chunk), chunk, ...)``, padded by repeating the last row."""
    n_chunks = -(-x.shape[0] // chunk)
    pad = [(0, n_chunks * chunk - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad, mode="edge").reshape((n_chunks, chunk) + x.shape[1:])
