"""Exact sampling by enumeration of all ``2^(K*N)`` K-tuples (small systems only).

The unnormalised ``log |Psi|^2`` is evaluated on every K-tuple in chunks of ``chunk_size``
(``jax.lax.map`` under ``jit``), and draws are made by inverse CDF (``jax.random.choice``). When the
target is the NQS's own (``batched_log_prob`` or ``TemperedLogProb``), the K networks are
evaluated once per configuration and each tuple takes the determinant of its K rows
(:func:`nqs_tuple_log_probs`); any other ``log_prob_fn`` is called on every tuple. Tuples with
``log |Psi|^2 = -inf`` (e.g. repeated rows of a determinant NQS) have probability zero and are
never drawn. The K-tuple ordering is described in :func:`nirbench.samplers.base.spins_from_indices`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from nirbench.models import MultiStateNQS, batched_log_prob
from nirbench.samplers.base import (
    LogProbFn,
    SampleBatch,
    Sampler,
    check_positive_int,
    default_stats,
    indices_from_spins,
    multinomial_indices,
    spins_from_indices,
    uniform_weights,
)
from nirbench.updates import TemperedLogProb

#: default largest number of K-tuples the exact sampler enumerates
DEFAULT_MAX_CONFIGURATIONS = 2**22


def check_exact_size(n_states: int, n_sites: int, max_configurations: int = DEFAULT_MAX_CONFIGURATIONS) -> int:
    """Return ``D = 2^(K*N)``; ``ValueError`` if it exceeds ``max_configurations``."""
    check_positive_int("n_states (K)", n_states)
    check_positive_int("n_sites (N)", n_sites)
    n_total = n_states * n_sites
    if n_total > 62 or 2**n_total > max_configurations:
        raise ValueError(
            f"exact sampling enumerates 2^(K*N) = 2^{n_total} K-tuples (K={n_states}, N={n_sites}), "
            f"above max_configurations = {max_configurations}; use the 'mcmc' or 'nir' sampler"
        )
    return 2**n_total


@eqx.filter_jit
def exact_log_probs(log_prob_fn: LogProbFn, nqs, n_states: int, n_sites: int, chunk_size: int = 2**14):
    """Unnormalised ``log |Psi|^2`` of every K-tuple, shape ``(2^(K*N),)``, in index order."""
    n_total = n_states * n_sites
    dim = 2**n_total
    chunk = min(dim, chunk_size)
    indices = jnp.arange(dim).reshape(dim // chunk, chunk)

    def evaluate(idx):
        return log_prob_fn(nqs, spins_from_indices(idx, n_states, n_sites)).astype(jnp.result_type(float))

    return jax.lax.map(evaluate, indices).reshape(dim)


@eqx.filter_jit
def nqs_tuple_log_probs(nqs, n_states: int, n_sites: int, power: float = 1.0, chunk_size: int = 2**14):
    """``power * log |Psi|^2`` of every K-tuple of a :class:`~nirbench.models.MultiStateNQS`,
    shape ``(2^(K*N),)``, in index order.

    The same numbers as :func:`exact_log_probs` with the samplers' target for
    ``sampling_power = power`` (``batched_log_prob``, ``TemperedLogProb``), but the K networks
    are evaluated once per configuration (``2^N`` passes) and each tuple only gathers its K rows
    of that table and takes the determinant (:meth:`MultiStateNQS.log_psi_of_amplitudes`),
    instead of ``K 2^(K*N)`` network passes: 3x2, K = 3 has 64 configurations in 786 432 rows.
    """
    dim = 2 ** (n_states * n_sites)
    chunk = min(dim, chunk_size)
    table = nqs.log_amplitudes(spins_from_indices(jnp.arange(2**n_sites), 1, n_sites)[:, 0])  # (2^N, K)
    shifts = n_sites * jnp.arange(n_states - 1, -1, -1)

    def evaluate(idx):
        rows = (idx[:, None] >> shifts) & (2**n_sites - 1)  # (chunk, K): the configuration of each state
        log_psi = jax.vmap(nqs.log_psi_of_amplitudes)(table[rows])
        return (2.0 * power * jnp.real(log_psi)).astype(jnp.result_type(float))

    return jax.lax.map(evaluate, jnp.arange(dim).reshape(dim // chunk, chunk)).reshape(dim)


def nqs_target_power(log_prob_fn: LogProbFn) -> float | None:
    """``p`` when ``log_prob_fn`` is the samplers' NQS target ``p log |Psi|^2``
    (``batched_log_prob``: 1; ``nirbench.updates.TemperedLogProb``: its ``power``), else ``None``."""
    if log_prob_fn is batched_log_prob:
        return 1.0
    if isinstance(log_prob_fn, TemperedLogProb):
        return float(log_prob_fn.power)
    return None


def tuple_log_probs(log_prob_fn: LogProbFn, nqs, n_states: int, n_sites: int, chunk_size: int = 2**14):
    """``log_prob_fn`` on every K-tuple, shape ``(2^(K*N),)``, in index order.

    The NQS's own target on a :class:`~nirbench.models.MultiStateNQS` goes through the amplitude
    table (:func:`nqs_tuple_log_probs`: ``2^N`` network passes instead of ``K 2^(K*N)``; 3x2,
    K = 3: 64 instead of 786 432); anything else through :func:`exact_log_probs`.
    """
    power = nqs_target_power(log_prob_fn)
    if power is not None and isinstance(nqs, MultiStateNQS):
        return nqs_tuple_log_probs(nqs, n_states, n_sites, power, chunk_size)
    return exact_log_probs(log_prob_fn, nqs, n_states, n_sites, chunk_size)


def exact_distribution(
    log_prob_fn: LogProbFn,
    nqs,
    n_states: int,
    n_sites: int,
    max_configurations: int = DEFAULT_MAX_CONFIGURATIONS,
    chunk_size: int = 2**14,
):
    """The exact normalised distribution ``|Psi|^2 / sum |Psi|^2`` over all K-tuples.

    Returns ``(configs, probs)``: ``configs`` of shape ``(D, K, N)`` int8 (``D = 2^(K*N)``, ordered
    as in :func:`~nirbench.samplers.base.spins_from_indices`) and ``probs`` of shape ``(D,)``
    summing to one. ``ValueError`` if ``D > max_configurations``.
    """
    dim = check_exact_size(n_states, n_sites, max_configurations)
    log_probs = tuple_log_probs(log_prob_fn, nqs, n_states, n_sites, chunk_size)
    probs = jax.nn.softmax(log_probs)
    configs = spins_from_indices(jnp.arange(dim), n_states, n_sites)
    return configs, probs


class ExactState(eqx.Module):
    """State of :class:`ExactSampler`: only the (static) problem size."""

    n_states: int = eqx.field(static=True)
    n_sites: int = eqx.field(static=True)


class ExactSampler(Sampler):
    """Independent exact draws from ``|Psi|^2`` by full enumeration.

    Args:
        batch_size: number ``B`` of draws per call (>= 1).
        max_configurations: refuse (``ValueError`` at :meth:`init`) when ``2^(K*N)`` exceeds it.
        chunk_size: number of K-tuples evaluated per ``log_prob_fn`` call.

    Stats: ``ess = B`` (independent draws), ``nqs_update = True``; other keys ``nan``.
    Cost per call: ``2^N`` network passes for the NQS's own target, else ``2^(K*N)`` evaluations
    of ``log_prob_fn`` (:func:`tuple_log_probs`; no caching: the NQS changes).
    """

    max_configurations: int = eqx.field(static=True, default=DEFAULT_MAX_CONFIGURATIONS)
    chunk_size: int = eqx.field(static=True, default=2**14)

    def __check_init__(self):
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("max_configurations", self.max_configurations)
        check_positive_int("chunk_size", self.chunk_size)

    def init(self, key, n_states: int, n_sites: int) -> ExactState:
        check_exact_size(n_states, n_sites, self.max_configurations)
        return ExactState(n_states, n_sites)

    def sample(self, log_prob_fn: LogProbFn, nqs, state: ExactState, key):
        configs = _exact_draw(self, log_prob_fn, nqs, state, key)
        batch = SampleBatch(configs, uniform_weights(self.batch_size))
        return batch, state, default_stats(ess=float(self.batch_size), nqs_update=True)


@eqx.filter_jit
def _exact_draw(sampler: ExactSampler, log_prob_fn, nqs, state: ExactState, key):
    log_probs = tuple_log_probs(log_prob_fn, nqs, state.n_states, state.n_sites, sampler.chunk_size)
    indices = multinomial_indices(key, log_probs, sampler.batch_size)
    return spins_from_indices(indices, state.n_states, state.n_sites)


def histogram(configs, weights=None) -> np.ndarray:
    """Counts (or summed ``weights``) of ``configs`` ``(M, K, N)`` per K-tuple index, shape ``(2^(K*N),)``."""
    configs = np.asarray(configs)
    n_total = configs.shape[1] * configs.shape[2]
    indices = np.asarray(indices_from_spins(configs))
    weights = None if weights is None else np.asarray(weights, dtype=np.float64)
    return np.bincount(indices, weights=weights, minlength=2**n_total).astype(np.float64)


def chi_square_pvalue(counts, probs, min_expected: float = 5.0, zero_tol: float = 1e-20) -> float:
    """Pearson chi-square goodness-of-fit p-value of ``counts`` ``(D,)`` against ``probs`` ``(D,)``.

    Bins with ``probs <= zero_tol`` count as impossible and must be empty (otherwise the p-value is
    0); e.g. tuples with repeated rows, where a determinant NQS is zero up to round-off. The others are sorted by
    expected count and merged greedily into groups of expected count ``>= min_expected`` (the
    remainder joins the last group); then ``scipy.stats.chisquare`` with ``n_groups - 1`` degrees
    of freedom.
    """
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    impossible = probs <= zero_tol
    if counts[impossible].sum() > 0:
        return 0.0
    total = counts.sum()
    expected = total * probs[~impossible] / probs[~impossible].sum()
    observed = counts[~impossible]
    order = np.argsort(expected)
    expected, observed = expected[order], observed[order]
    group_e, group_o, acc_e, acc_o = [], [], 0.0, 0.0
    for e, o in zip(expected, observed):
        acc_e, acc_o = acc_e + e, acc_o + o
        if acc_e >= min_expected:
            group_e.append(acc_e)
            group_o.append(acc_o)
            acc_e = acc_o = 0.0
    if acc_e > 0 or acc_o > 0:
        if group_e:
            group_e[-1] += acc_e
            group_o[-1] += acc_o
        else:
            group_e, group_o = [acc_e], [acc_o]
    if len(group_e) < 2:
        return 1.0
    return float(scipy.stats.chisquare(np.array(group_o), np.array(group_e)).pvalue)
