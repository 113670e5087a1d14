"""The VMC kernels: the estimate of the mean local-energy matrix, the energy gradient, the
(minSR-preconditioned) NQS update, the tempered target of ``sampling_power``, and the efficiency a
proposal set predicts for an updated NQS (the trust region's test). Shapes: a batch of K-tuples
``configs`` ``(B, K, N)``, self-normalised ``weights`` ``(B,)``, local-energy matrices ``eps``
``(B, K, K)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from nirbench.estimators import (
    energy_levels,
    local_energy_matrices_distinct,
    log_effective_sample_size,
    mean_energy_matrix,
)
from nirbench.minsr import (
    jacobian_of_log_psi,
    layerwise_gram,
    layerwise_natural_gradient_tree,
    natural_gradient_tree,
    supports_layerwise_minsr,
)
from nirbench.models import batched_log_prob, batched_log_psi


def count_parameters(module) -> int:
    """Number of real trainable scalars (inexact-array leaves) of an Equinox module."""
    return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array))))


def estimate(nqs, hamiltonian, configs, weights):
    """Mean energy matrix ``(K, K)``, its eigenvalues, the traces ``(B,)`` and their variance.

    The local-energy matrices come from :func:`~nirbench.estimators.local_energy_matrices_distinct`
    (one NQS evaluation per distinct configuration), the averages from one compiled call.
    """
    return _summarise(local_energy_matrices_distinct(nqs, hamiltonian, configs), weights)


@jax.jit
def _summarise(e_loc, weights):
    eps = jnp.trace(e_loc, axis1=1, axis2=2)
    mean_matrix = mean_energy_matrix(e_loc, weights)
    variance = jnp.sum(weights * jnp.abs(eps - jnp.sum(weights * eps)) ** 2)
    return mean_matrix, energy_levels(mean_matrix), eps, variance


class TemperedLogProb(eqx.Module):
    """The samplers' target ``log_prob_fn`` for ``sampling_power = p``: ``p log |Psi|^2``, shape ``(B,)``.

    A module with a static ``power`` rather than a closure, so that equal powers compare equal
    and the jitted samplers compile once.
    """

    power: float = eqx.field(static=True)

    def __call__(self, nqs, configs: jax.Array) -> jax.Array:
        return self.power * batched_log_prob(nqs, configs)


@eqx.filter_jit
def reweight_tempered(nqs, configs, weights, power):
    """Weights ``(B,)`` of a batch drawn for ``|Psi|^(2 power)``, turned into ``|Psi|^2`` weights.

    ``weights_b |Psi(s_b)|^(2 (1 - power))``, normalised to sum to 1 (``configs`` ``(B, K, N)``).
    """
    log_w = jnp.log(weights) + (1.0 - power) * batched_log_prob(nqs, configs)
    return jax.nn.softmax(log_w)


def _single_log_psi(nqs, config):
    return nqs.log_psi(config)


def energy_gradient(nqs, configs, weights, eps):
    """Gradient of ``tr <E_loc>`` w.r.t. the real parameters: ``2 Re sum_b w_b conj(O_b) (eps_b - <eps>)``.

    ``configs`` ``(B, K, N)``, self-normalised ``weights`` ``(B,)``, ``eps = tr E_loc`` ``(B,)``
    (paper eq. 6 with the multi-state local energy). Returns a pytree shaped like the NQS.
    """
    eps_c = jax.lax.stop_gradient(eps - jnp.sum(weights * eps))

    @eqx.filter_grad
    def surrogate(model):
        log_psi = batched_log_psi(model, configs)
        return 2 * jnp.real(jnp.sum(weights * jnp.conj(log_psi) * eps_c))

    return surrogate(nqs)


def nqs_updates(nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr):
    """One NQS step from a weighted batch; returns ``(updates, opt_state, finite)`` (``updates`` a
    pytree like the NQS, to be applied with ``eqx.apply_updates``, possibly scaled).

    With minSR the direction is the natural gradient of ``tr <E_loc>``; otherwise the plain
    gradient ``2 Re <conj(O_c) eps_c>`` (paper eq. 6), via a surrogate whose real-parameter
    gradient it is. When minSR's ``(2 Ns, 2 Ns)`` form is the cheap one (``2 Ns <= P``) and the
    networks allow it (plain MLPs), the direction comes from the Jacobian-free
    :func:`~nirbench.minsr.layerwise_natural_gradient_tree`, whose Gram matrix is computed first
    as a compiled program of its own (why: that function's docstring); otherwise from the
    per-sample Jacobian. Not jittable as a whole for that reason; each part is compiled.
    """
    layerwise = use_minsr and supports_layerwise_minsr(nqs) and 2 * configs.shape[0] <= count_parameters(nqs)
    gram = layerwise_gram(nqs, configs) if layerwise else None
    return _nqs_updates(nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr, gram)


@eqx.filter_jit
def _nqs_updates(nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr, gram):
    """Compiled part of :func:`nqs_updates` (``gram`` given exactly when the layer-wise minSR applies)."""
    params = eqx.filter(nqs, eqx.is_inexact_array)
    if gram is not None:
        direction = layerwise_natural_gradient_tree(nqs, configs, eps, weights, diag_shift, gram=gram)
    elif use_minsr:
        jacobian = jacobian_of_log_psi(_single_log_psi, nqs, configs)
        direction = natural_gradient_tree(nqs, jacobian, eps, weights, diag_shift)
    else:
        direction = energy_gradient(nqs, configs, weights, eps)
    updates, opt_state = optimizer.update(direction, opt_state, params)
    flat = jax.tree_util.tree_leaves(eqx.filter(updates, eqx.is_inexact_array))
    finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in flat]))
    return updates, opt_state, finite


def update(nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr):
    """One NQS update from a weighted batch (:func:`nqs_updates`, applied): ``(nqs, opt_state, finite)``."""
    updates, opt_state, finite = nqs_updates(
        nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr
    )
    return eqx.apply_updates(nqs, updates), opt_state, finite


#: the trust region halves a step at most this many times (smallest scale 2^-8)


def predicted_efficiency(log_prob_fn, nqs, configs, log_q, n_proposed):
    """``ESS / n_proposed`` of the weights ``log_prob_fn(nqs, configs) - log_q`` over a proposal set
    ``(M, K, N)``, ``(M,)``: the efficiency the same proposals would have for ``nqs``. The count
    divides outside the compiled ESS, so a new count does not compile it again."""
    return _effective_sample_size(log_prob_fn, nqs, configs, log_q) / n_proposed


@eqx.filter_jit
def _effective_sample_size(log_prob_fn, nqs, configs, log_q):
    return jnp.exp(log_effective_sample_size(log_prob_fn(nqs, configs) - log_q))
