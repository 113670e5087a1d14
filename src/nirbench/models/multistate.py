"""Multi-state NQS (Pfau et al. 2024; paper eq. 2): ``Psi(s^1..s^K) = det[psi_j(s^k)]``.

The K single-state networks are stored *stacked*: every array leaf of ``networks`` has a
leading axis of length K (the K networks are built from K keys and their array leaves
stacked) and they are evaluated together with ``eqx.filter_vmap``. ``K = 1`` is the
ordinary single-state NQS, and then ``log_psi`` is exactly ``log psi_1(s^1)``.

Conventions:

* A K-tuple of configurations has shape ``(K, N)``; row ``k`` is ``s^k``.
* ``log_amplitudes(s)[k, j] = log psi_j(s^k)``: rows are configurations, columns are states,
  i.e. the matrix ``A_kj = psi_j(s^k)`` of eq. 2 in log form.
* A tuple containing the same configuration twice has ``Psi = 0``; in floating point the
  determinant is round-off small rather than exactly zero (``log_prob`` some 80 below typical
  tuples, or ``-inf``), so such tuples carry negligible weight and are never drawn in practice.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nirbench.batching import row_chunks
from nirbench.linalg import slogdet
from nirbench.models.layers import on_rows
from nirbench.models.symmetry import images_per_configuration


def _stack(*leaves):
    """Stack equal-shaped array leaves along a new axis 0 (on the host when not traced)."""
    if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        try:  # host stacking: no compilation per leaf shape
            return jnp.asarray(np.stack([np.asarray(leaf) for leaf in leaves]))
        except TypeError:  # e.g. typed PRNG key arrays
            pass
    return jnp.stack(leaves)


def stack_networks(networks) -> eqx.Module:
    """Stack single-state networks of identical structure into one module (leading axis K).

    Array leaves (parameters, and integer arrays such as permutations) are stacked; everything
    else is taken from the first network.
    """
    networks = list(networks)
    arrays = [eqx.filter(net, eqx.is_array) for net in networks]
    static = eqx.filter(networks[0], eqx.is_array, inverse=True)
    try:
        stacked = jax.tree_util.tree_map(_stack, *arrays)
    except ValueError as error:
        raise ValueError(f"the K networks must have identical structure and shapes: {error}") from None
    return eqx.combine(stacked, static)


class MultiStateNQS(eqx.Module):
    """K stacked single-state networks combined by a determinant.

    Args:
        make_network: ``key -> eqx.Module`` building one single-state network
            (``__call__(s: (N,)) -> complex log psi``). It is called once per key (not under
            a transform, so initialisation compiles once per shape, whatever K) and must
            build the same structure for every key.
        n_states: the number K of states (>= 1).
        key: PRNG key; split into K keys, one per network.
    """

    networks: eqx.Module
    n_states: int = eqx.field(static=True)

    def __init__(self, make_network: Callable[[jax.Array], eqx.Module], n_states: int, *, key):
        if int(n_states) < 1:
            raise ValueError(f"the number of states K (n_states) must be >= 1, got {n_states}")
        self.n_states = int(n_states)
        keys = jax.random.split(key, self.n_states)
        self.networks = stack_networks(make_network(keys[j]) for j in range(self.n_states))

    def network(self, j: int) -> eqx.Module:
        """The single-state network ``psi_j`` (0-based ``j``), unstacked."""
        if not 0 <= j < self.n_states:
            raise IndexError(f"state index {j} out of range for K = {self.n_states}")
        return jax.tree_util.tree_map(lambda x: x[j] if eqx.is_array(x) else x, self.networks)

    def log_amplitudes(self, s: jax.Array) -> jax.Array:
        """``s`` of shape ``(K', N)`` -> complex ``(K', K)`` with ``[k, j] = log psi_j(s^k)``.

        ``K'`` is arbitrary (any batch of configurations), so all K networks are evaluated on
        all rows in one batched call: the networks outermost, the rows inside, so that every
        layer's activations are ``(K, K', width)`` in the order the stacked matrix products give
        them. With the rows outermost (``vmap`` over rows of a ``vmap`` over networks) each
        linear layer's output was transposed to ``(K', K, width)``: 512 rows of the 4x4 TFI
        MLP 64 x 3, K = 3, took 9.6 ms against 5.1 ms now (float64, one core of a 2-core AMD
        EPYC; docs/benchmarks.md).
        """
        per_network = eqx.filter_vmap(on_rows, in_axes=(eqx.if_array(0), None))(self.networks, jnp.asarray(s))
        return per_network.T

    def log_psi(self, s: jax.Array) -> jax.Array:
        """``s`` of shape ``(K, N)`` -> complex ``log Psi = log det[psi_j(s^k)]``.

        Stable form: with ``m_k = max_j Re log psi_j(s^k)``,
        ``log Psi = log det[exp(log psi_j(s^k) - m_k)] + sum_k m_k`` (complex ``slogdet``).
        The imaginary part is the phase of ``Psi`` in ``(-pi, pi]`` for K > 1; for K = 1 the
        network's ``log psi_1(s^1)`` is returned unchanged.
        """
        s = jnp.asarray(s)
        if s.ndim != 2 or s.shape[0] != self.n_states:
            raise ValueError(f"log_psi expects a K-tuple of shape ({self.n_states}, N), got {s.shape}")
        return self.log_psi_of_amplitudes(self.log_amplitudes(s))

    def log_psi_of_amplitudes(self, log_amps: jax.Array) -> jax.Array:
        """``log_amps`` of shape ``(K, K)`` (``[k, j] = log psi_j(s^k)``, as
        :meth:`log_amplitudes` gives) -> complex ``log Psi`` of the tuple, in the stable form of
        :meth:`log_psi`."""
        if self.n_states == 1:
            return log_amps[0, 0]
        # the shift cancels exactly, so no gradient needs to flow through the max
        shift = jax.lax.stop_gradient(jnp.max(log_amps.real, axis=1))
        sign, log_abs = slogdet(jnp.exp(log_amps - shift[:, None]))
        return log_abs + jnp.sum(shift) + 1j * jnp.angle(sign)

    def log_prob(self, s: jax.Array) -> jax.Array:
        """``s`` of shape ``(K, N)`` -> real unnormalised ``log |Psi|^2 = 2 Re log Psi``."""
        return 2.0 * jnp.real(self.log_psi(s))

    def __call__(self, s: jax.Array) -> jax.Array:
        """Alias of ``log_psi``."""
        return self.log_psi(s)


def batched_log_psi(nqs: MultiStateNQS, configs: jax.Array) -> jax.Array:
    """``configs`` of shape ``(B, K, N)`` -> complex ``(B,)`` ``log Psi``: ``jax.vmap(nqs.log_psi)``
    up to round-off, with the amplitudes of all ``B K`` rows from one :meth:`~MultiStateNQS.log_amplitudes`
    call (the networks outermost)."""
    configs = jnp.asarray(configs)
    n_batch, n_states, n_sites = configs.shape
    if n_states != nqs.n_states:
        raise ValueError(f"expected configs (B, {nqs.n_states}, N), got {configs.shape}")
    log_amps = nqs.log_amplitudes(configs.reshape(n_batch * n_states, n_sites))
    return jax.vmap(nqs.log_psi_of_amplitudes)(log_amps.reshape(n_batch, n_states, n_states))


#: network evaluations per vectorised NQS call where a batch is evaluated in chunks (the distinct
#: configurations of the local energies, NIR's proposals, the Jacobian minSR), so that a chunk's
#: activations stay in cache: :func:`evaluation_chunk`.
EVALUATION_IMAGES = 2048


def evaluation_chunk(nqs) -> int:
    """Configurations per vectorised call of ``nqs``: about :data:`EVALUATION_IMAGES` network
    evaluations (K networks times the images each evaluates,
    ``nirbench.models.symmetry.images_per_configuration``), a power of 2 from 16 to 512.

    Measured on the recipes' batches (one core; docs/benchmarks.md, "The ResCNN's convolutions as
    dense products"): the J1-J2 symmetric ResCNN (16 images) took 0.58 s for its local energies in
    chunks of 128 configurations against 1.03 s in chunks of 512; the TFI MLPs (K = 3, one image)
    lose in smaller chunks (0.095 s with 512 against 0.105 with 128 on 4x4), as does the NetKet
    comparison's single MLP 4 x 128 (60 against 78 ms): they keep 512; with the two images of
    ``flip_parities`` (K = 3, 6x6) the rule's 256 was the fastest (0.46 s against 0.49 in 512 and
    in 128).

    Any other target (a sampler's ``log_prob_fn`` may read any pytree, e.g. a table of exact
    amplitudes) counts as one evaluation per configuration: 512.
    """
    is_nqs = isinstance(nqs, MultiStateNQS)
    evaluations = nqs.n_states * images_per_configuration(nqs.networks) if is_nqs else 1
    chunk = 2 ** int(np.floor(np.log2(max(EVALUATION_IMAGES // evaluations, 1))))
    return int(np.clip(chunk, 16, 512))


def evaluate_in_chunks(log_prob_fn: Callable, nqs: MultiStateNQS, configs: jax.Array) -> jax.Array:
    """``log_prob_fn(nqs, configs)`` for ``configs`` ``(B, K, N)`` -> ``(B,)``, one call per
    :func:`evaluation_chunk` rows (``lax.map`` over chunks, the last padded by repeating the last
    row), so that one chunk's activations stay in cache; the same values up to round-off. Smaller
    batches are evaluated in one call."""
    chunk = evaluation_chunk(nqs)
    n_configs = configs.shape[0]
    if n_configs <= chunk:
        return log_prob_fn(nqs, configs)
    return jax.lax.map(lambda c: log_prob_fn(nqs, c), row_chunks(configs, chunk)).reshape(-1)[:n_configs]


def batched_log_prob(nqs: MultiStateNQS, configs: jax.Array) -> jax.Array:
    """``configs`` of shape ``(B, K, N)`` -> real ``(B,)`` unnormalised ``log |Psi|^2``.

    The samplers' ``log_prob_fn(params, configs)``.
    """
    return 2.0 * jnp.real(batched_log_psi(nqs, configs))
