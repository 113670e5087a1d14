"""The sampler interface shared by the exact, Metropolis (MCMC) and NIR samplers.

Conventions:

* A configuration batch has shape ``(B, K, N)``: ``B`` samples of ``K``-tuples of ``N``-site
  spin configurations, entries ``+1`` / ``-1`` stored as ``int8`` (site convention of
  :mod:`nirbench.lattice`).
* ``log_prob_fn(nqs, configs)`` maps ``configs`` of shape ``(B, K, N)`` to the *unnormalised*
  ``log |Psi|^2`` of shape ``(B,)``; ``nqs`` is an Equinox module (a pytree). It may return
  ``-inf`` where ``Psi`` vanishes (e.g. a determinant with two equal rows); such tuples are never
  drawn. Pass the *same* function object on every call (e.g. the module-level
  ``nirbench.models.batched_log_prob``): the samplers jit-compile per function object, and a new
  lambda per call would recompile every time.
* Every sampler is an :class:`equinox.Module` whose fields are static configuration only; its
  mutable part lives in an explicit ``state`` pytree returned by :meth:`Sampler.init` and threaded
  through :meth:`Sampler.sample`, so the VMC loop never needs to know which sampler it has::

      state = sampler.init(key, n_states, n_sites)
      batch, state, stats = sampler.sample(log_prob_fn, nqs, state, key)

* ``batch.weights`` are self-normalised (they sum to one). Exact, Metropolis and resampled NIR
  draws are equally weighted (``1 / B``); NIR in ``"importance"`` mode returns importance weights.
  Any expectation is therefore ``sum_b weights[b] * f(configs[b])``.
* ``stats`` is a ``dict`` of Python scalars with (at least) the keys :data:`STATS_KEYS`:
  ``ess`` (effective sample size of the batch), ``efficiency`` (``ess / n_proposed``),
  ``n_proposed`` (proposal configurations drawn), ``acceptance`` (Metropolis acceptance rate) and
  ``nqs_update`` (``bool``: may the NQS be updated with this batch). Keys that do not apply to a
  sampler are ``nan`` (``nqs_update`` is always a ``bool``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

#: stats keys every sampler returns (``nan`` where a key does not apply)
STATS_KEYS = ("ess", "efficiency", "n_proposed", "acceptance", "nqs_update")

LogProbFn = Callable[[Any, jax.Array], jax.Array]


class SampleBatch(NamedTuple):
    """A batch of weighted samples, and what its standard errors need to know of how it was drawn.

    Attributes:
        configs: ``(B, K, N)`` int8 array of +-1 spins.
        weights: ``(B,)`` float array, self-normalised (sums to 1); ``1 / B`` for equally
            weighted draws (exact, Metropolis, resampled NIR).
        n_chains: Metropolis only: the rows are ``S = B / n_chains`` consecutive recordings of
            ``n_chains`` chains, sample-major (``configs.reshape(S, n_chains, K, N)[t, c]``);
            ``None`` for rows drawn independently (given the sampler's state).
        source: resampled NIR only: ``(B,)`` int, the index of each row's proposal in the weighted
            proposal set it was resampled from (rows with equal ``source`` are duplicates).
        source_weights: resampled NIR only: ``(B,)`` float, that proposal's self-normalised
            importance weight in the proposal set (``w_i / sum_j w_j`` over all proposals).
        proposal_configs, proposal_log_q: NIR only: the whole proposal set of the call,
            ``(M, K, N)`` and the proposal's ``log q`` of each ``(M,)`` (padded to a power of two
            rounds with rows of ``log q = +inf``, which weigh nothing), so that the effect of an NQS
            step on the importance weights can be predicted (the VMC trust region).

    :func:`nirbench.estimators.standard_error` turns these into an honest standard error.
    """

    configs: jax.Array
    weights: jax.Array
    n_chains: int | None = None
    source: jax.Array | None = None
    source_weights: jax.Array | None = None
    proposal_configs: jax.Array | None = None
    proposal_log_q: jax.Array | None = None


def uniform_weights(batch_size: int) -> jax.Array:
    """Equal self-normalised weights ``(B,)`` = ``1 / B``."""
    return jnp.full((batch_size,), 1.0 / batch_size, dtype=jnp.result_type(float))


def multinomial_indices(key, log_weights, n: int) -> jax.Array:
    """``(n,)`` indices into ``log_weights`` ``(M,)`` drawn with replacement with probability
    ``∝ exp(log_weights)`` (``-inf``: never drawn).

    Inverse-CDF draws (``jax.random.choice`` with ``p``: a cumulative sum and a binary search,
    ``O(M + n log M)``), not the Gumbel-max trick of ``jax.random.categorical``, which draws
    ``n x M`` random numbers: 512 draws from 65 536 weights take 0.67 ms instead of 1.2 s on one core
    (``benchmarks/resample_speed.py``).
    """
    return jax.random.choice(key, log_weights.shape[0], shape=(n,), replace=True, p=jax.nn.softmax(log_weights))


def default_stats(**values) -> dict:
    """A stats dict with every key of :data:`STATS_KEYS` (``nan`` unless given) as Python scalars."""
    stats = {key: math.nan for key in STATS_KEYS}
    stats["nqs_update"] = True
    stats.update(values)
    out = {}
    for key, value in stats.items():
        if isinstance(value, bool) or key == "nqs_update":
            out[key] = bool(value)
        elif isinstance(value, int):
            out[key] = value
        else:
            out[key] = float(value)
    return out


def check_positive_int(name: str, value, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_choice(name: str, value, choices) -> None:
    """Raise ``ValueError`` naming the allowed values unless ``value in choices``."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {tuple(choices)}")


def spins_from_indices(indices: jax.Array, n_states: int, n_sites: int) -> jax.Array:
    """Integer tuple indices ``(D,)`` -> configurations ``(D, K, N)`` int8.

    The ``K * N`` spins are flattened state-major (state 0's site 0 first); flattened position
    ``p`` is bit ``K * N - 1 - p`` of the index and a set bit means spin down, extending the
    integer-basis convention of :mod:`nirbench.hamiltonians` to K-tuples. Index 0 is all spins up.
    """
    n_total = n_states * n_sites
    shifts = jnp.arange(n_total - 1, -1, -1, dtype=indices.dtype)
    bits = (indices[:, None] >> shifts) & 1
    return (1 - 2 * bits).astype(jnp.int8).reshape(indices.shape[0], n_states, n_sites)


def indices_from_spins(configs) -> jax.Array:
    """Configurations ``(D, K, N)`` of +-1 -> integer tuple indices ``(D,)``.

    Inverse of :func:`spins_from_indices` (needs ``K * N <= 62``; ``int64`` requires JAX x64).
    """
    configs = jnp.asarray(configs)
    flat = configs.reshape(configs.shape[0], -1)
    n_total = flat.shape[1]
    bits = ((1 - flat.astype(jnp.int32)) // 2).astype(jnp.int64)
    powers = jnp.left_shift(jnp.int64(1), jnp.arange(n_total - 1, -1, -1, dtype=jnp.int64))
    return jnp.sum(bits * powers, axis=1)


def unordered_tuple_indices(indices, n_states: int, n_sites: int) -> np.ndarray:
    """Tuple indices ``(D,)`` -> the index of the same K configurations in ascending order ``(D,)``.

    Two tuples that differ only in the order of their K configurations get the same index: the
    index of the tuple as a multiset. Every VMC quantity of the determinant ansatz depends only on
    that: permuting the rows of ``M_kl = psi_l(s_k)`` multiplies ``det M`` by the permutation's
    sign and leaves ``E_loc = M^-1 (H Psi)`` unchanged. (State ``k`` occupies bits
    ``N (K - 1 - k)`` to ``N (K - k) - 1`` of the index, as in :func:`spins_from_indices`.)
    """
    indices = np.asarray(indices, dtype=np.int64)
    shifts = n_sites * np.arange(n_states - 1, -1, -1, dtype=np.int64)
    rows = (indices[:, None] >> shifts) & ((1 << n_sites) - 1)  # (D, K): configuration of state k
    return np.sum(np.sort(rows, axis=1) << shifts, axis=1)


class Sampler(eqx.Module):
    """Abstract sampler: static configuration plus the two methods of the interface.

    Subclasses hold only static (hashable) configuration fields, so a sampler can be passed
    through ``equinox.filter_jit`` and compiled kernels are cached per configuration.
    """

    batch_size: int = eqx.field(static=True)

    @abc.abstractmethod
    def init(self, key: jax.Array, n_states: int, n_sites: int):
        """Create the sampler state (a pytree) for ``K = n_states`` states on ``N = n_sites`` sites.

        Raises ``ValueError`` when the problem size is out of this sampler's reach.
        """

    @abc.abstractmethod
    def sample(self, log_prob_fn: LogProbFn, nqs, state, key: jax.Array):
        """Draw a batch from ``|Psi|^2 ∝ exp(log_prob_fn(nqs, configs))``.

        Returns ``(SampleBatch, new_state, stats)``; see the module docstring for conventions.
        """

    def frozen(self) -> Sampler:
        """This sampler without adaptation: its calls draw from the state as it stands.

        Measurements (the JSD, the final evaluation) use it on a copy of the state, so they
        neither change what they measure nor the state training continues from. Samplers that do
        not adapt return themselves; NIR returns a copy that does not train its proposal.
        """
        return self
