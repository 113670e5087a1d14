"""Metropolis-Hastings sampling with persistent chains and local moves on the whole K-tuple.

Transition rules (both symmetric, ``T(s -> s') = T(s' -> s)``, so the acceptance probability is
``min(1, |Psi(s')|^2 / |Psi(s)|^2)``, paper eq. 7):

* ``"flip"``: pick one of the ``K`` states uniformly, then one site uniformly, and flip it.
* ``"exchange"``: pick one of the ``K`` states uniformly, then one bond ``(i, j)`` of ``bonds``
  uniformly (the Hamiltonian's nearest-neighbour bonds), and swap ``s_i`` and ``s_j``; this
  conserves the magnetisation of every state (a swap of equal spins is a null move).

With ``global_flip = p > 0`` (beyond the paper) each move is, with probability ``p``, a flip of
every spin of one of the ``K`` states, or of all ``K`` (each of the ``K + 1`` choices uniform)
instead: symmetric too, and it keeps a zero magnetisation. In an ordered phase local moves cannot
cross between the sectors of ``|Psi|^2`` (all up, all down) and the chains freeze; a global flip
crosses in one move. Flipping all rows at once matters for multi-state tuples: from ``(up, down,
x)`` a flip of one row gives ``(down, down, x)``, where the determinant nearly vanishes, while the
flip of all rows gives ``(down, up, -x)``. The moves stay exact for any ``|Psi|^2``; they only
help when ``|Psi|^2`` is (nearly) invariant under the flip, as for TFI and J1-J2 without a
longitudinal field. With ``p = 0`` the moves, and their random stream, are the paper's.

Each call to :meth:`MetropolisSampler.sample` runs ``n_warmup`` discarded steps on every chain,
then records every chain once each ``thinning`` steps until ``batch_size`` samples are collected
(``batch_size / n_chains`` per chain). One *step* proposes one move per chain. Paper (table A1):
warm-up 640 and thinning 10; it does not give the number of chains. Thinning only means something
when a chain gives several samples per call, so our default follows that reading: a few chains
(:data:`DEFAULT_CHAINS`, NetKet's default on a CPU), each recording ``batch_size / n_chains``
thinned samples per call (32 at the paper's batch 512), every call continuing the chains of the
last one. NetKet's ``MetropolisLocal(n_chains=16, sweep_size=16)`` with ``n_discard_per_chain=40``
is ``n_chains=16, thinning=16, n_warmup=40 * 16``. Successive samples of a chain are correlated:
:func:`nirbench.estimators.standard_error` accounts for it through the integrated
autocorrelation time (:func:`~nirbench.estimators.integrated_autocorrelation_time`) of the recorded series.

A chain whose current ``log |Psi|^2`` is ``-inf`` (possible only for a random initial tuple with
repeated rows) accepts any move to a finite value, and moves freely between ``-inf`` tuples.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nirbench.samplers.base import (
    LogProbFn,
    SampleBatch,
    Sampler,
    check_choice,
    check_positive_int,
    default_stats,
    uniform_weights,
)

RULES = ("flip", "exchange")

#: the default number of chains (at most; see :func:`default_chain_count`)
DEFAULT_CHAINS = 16


def default_chain_count(batch_size: int) -> int:
    """The largest divisor of ``batch_size`` that is ``<= DEFAULT_CHAINS`` (16 for ``B = 512``)."""
    return max(c for c in range(1, min(DEFAULT_CHAINS, batch_size) + 1) if batch_size % c == 0)


def _as_bonds(bonds):
    if bonds is None:
        return None
    array = np.asarray(bonds, dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1:
        raise ValueError(f"bonds must have shape (n_bonds >= 1, 2), got {array.shape}")
    return tuple((int(i), int(j)) for i, j in array)


class MCMCState(eqx.Module):
    """State of :class:`MetropolisSampler`.

    Attributes:
        chains: ``(n_chains, K, N)`` int8, the current configuration of every chain.
        log_probs: ``(n_chains,)`` their ``log |Psi|^2`` under the NQS of the last call (``nan``
            before the first call); recomputed at the start of each call since the NQS changes.
    """

    chains: jax.Array
    log_probs: jax.Array


class MetropolisSampler(Sampler):
    """Metropolis-Hastings sampler with persistent chains.

    Args:
        batch_size: samples per call ``B`` (>= 1), a multiple of ``n_chains``.
        n_chains: number of parallel chains (default :func:`default_chain_count`: 16 for a batch
            that is a multiple of 16).
        n_warmup: discarded steps at the start of every call (>= 0).
        thinning: steps between recorded samples (>= 1).
        rule: ``"flip"`` or ``"exchange"`` (see module docstring).
        bonds: ``(n_bonds, 2)`` site pairs for the exchange rule (required for it).
        global_flip: probability in ``[0, 1)`` that a move flips a whole state of the K-tuple, or
            all of them (module docstring); 0 (default): local moves only, as in the paper.

    Stats: ``acceptance`` (mean acceptance rate of the post-warm-up steps), ``n_proposed`` (number
    of Metropolis proposals, i.e. ``log_prob_fn`` evaluations, in this call), ``nqs_update = True``;
    ``ess`` and ``efficiency`` are ``nan`` (see :func:`~nirbench.estimators.integrated_autocorrelation_time`).

    The output batch is ordered sample-major: ``configs.reshape(S, n_chains, K, N)[t, c]`` is the
    ``t``-th recorded sample of chain ``c`` (``S = B / n_chains``).
    """

    n_chains: int | None = eqx.field(static=True, default=None)
    n_warmup: int = eqx.field(static=True, default=640)
    thinning: int = eqx.field(static=True, default=10)
    rule: str = eqx.field(static=True, default="flip")
    bonds: tuple | None = eqx.field(static=True, default=None, converter=_as_bonds)
    global_flip: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        check_positive_int("batch_size", self.batch_size)
        if self.n_chains is not None:
            check_positive_int("n_chains", self.n_chains)
            if self.batch_size % self.n_chains:
                raise ValueError(
                    f"batch_size ({self.batch_size}) must be a multiple of n_chains ({self.n_chains})"
                )
        check_positive_int("n_warmup", self.n_warmup, minimum=0)
        check_positive_int("thinning", self.thinning)
        check_choice("rule", self.rule, RULES)
        if not 0.0 <= self.global_flip < 1.0:
            raise ValueError(f"global_flip must be in [0, 1), got {self.global_flip}")
        if self.rule == "exchange" and self.bonds is None:
            raise ValueError("the 'exchange' rule needs bonds (the Hamiltonian's nearest-neighbour pairs)")

    @property
    def chain_count(self) -> int:
        """The number of chains (``n_chains``, or :func:`default_chain_count` when it is ``None``)."""
        return default_chain_count(self.batch_size) if self.n_chains is None else self.n_chains

    @property
    def samples_per_chain(self) -> int:
        return self.batch_size // self.chain_count

    def init(self, key, n_states: int, n_sites: int) -> MCMCState:
        """Random initial chains; for ``"exchange"`` with even ``N``, zero magnetisation per state."""
        check_positive_int("n_states (K)", n_states)
        check_positive_int("n_sites (N)", n_sites)
        if self.bonds is not None and max(max(b) for b in self.bonds) >= n_sites:
            raise ValueError(f"bonds refer to sites >= n_sites = {n_sites}")
        shape = (self.chain_count, n_states, n_sites)
        if self.rule == "exchange" and n_sites % 2 == 0:
            order = jnp.argsort(jax.random.uniform(key, shape), axis=-1)
            chains = jnp.where(order < n_sites // 2, 1, -1)
        else:
            chains = 1 - 2 * jax.random.bernoulli(key, 0.5, shape).astype(jnp.int32)
        log_probs = jnp.full((self.chain_count,), jnp.nan, dtype=jnp.result_type(float))
        return MCMCState(chains.astype(jnp.int8), log_probs)

    def draw_moves(self, key, n_steps: int, n_states: int, n_sites: int) -> jax.Array:
        """The moves of ``n_steps`` steps of every chain, drawn at once: ``(n_steps, C)`` int32.

        ``"flip"``: the flipped position ``k * N + i`` in the flattened K-tuple (state ``k``, site
        ``i``); ``"exchange"``: ``k * n_bonds + b`` (state ``k``, bond ``b``). Both uniform. With
        ``global_flip = p``, each is replaced with probability ``p`` by ``n_local + k``, ``k``
        uniform in ``0..K``: flip all of state ``k``, or all K states for ``k = K`` (``n_local``:
        the number of local moves, :meth:`local_move_count`).
        """
        shape = (n_steps, self.chain_count)
        n_local = self.local_move_count(n_states, n_sites)
        if self.global_flip == 0:
            return jax.random.randint(key, shape, 0, n_local)  # the random stream of local moves only
        key_local, key_global, key_state = jax.random.split(key, 3)
        is_global = jax.random.bernoulli(key_global, self.global_flip, shape)
        global_moves = n_local + jax.random.randint(key_state, shape, 0, n_states + 1)
        return jnp.where(is_global, global_moves, jax.random.randint(key_local, shape, 0, n_local))

    def local_move_count(self, n_states: int, n_sites: int) -> int:
        """The number of distinct local moves: ``K * N`` (flip) or ``K * n_bonds`` (exchange)."""
        return n_states * (n_sites if self.rule == "flip" else len(self.bonds))

    def apply_moves(self, moves: jax.Array, chains: jax.Array) -> jax.Array:
        """Apply one move per chain (a row of :meth:`draw_moves`): ``(C,)``, ``(C, K, N)`` -> ``(C, K, N)``."""
        n_chains, n_states, n_sites = chains.shape
        n_local = self.local_move_count(n_states, n_sites)
        local = jnp.minimum(moves, n_local - 1)  # a global move's local part is discarded below
        flat = chains.reshape(n_chains, n_states * n_sites)
        if self.rule == "flip":
            flipped = jnp.arange(n_states * n_sites) == local[:, None]
            flat = jnp.where(flipped, -flat, flat)
        else:
            bonds = jnp.asarray(self.bonds)
            state, bond = local // bonds.shape[0], bonds[local % bonds.shape[0]]
            rows = jnp.arange(n_chains)
            i, j = state * n_sites + bond[:, 0], state * n_sites + bond[:, 1]
            si, sj = flat[rows, i], flat[rows, j]
            flat = flat.at[rows, i].set(sj).at[rows, j].set(si)
        moved = flat.reshape(chains.shape)
        if self.global_flip == 0:
            return moved
        target = (moves - n_local)[:, None]  # the flipped state, K for all of them
        flip_state = ((jnp.arange(n_states) == target) | (target == n_states))[:, :, None]  # (C, K, 1)
        return jnp.where((moves >= n_local)[:, None, None], jnp.where(flip_state, -chains, chains), moved)

    def sample(self, log_prob_fn: LogProbFn, nqs, state: MCMCState, key):
        configs, chains, log_probs, acceptance = _metropolis_run(self, log_prob_fn, nqs, state.chains, key)
        n_steps = self.n_warmup + self.samples_per_chain * self.thinning
        stats = default_stats(acceptance=float(acceptance), n_proposed=int(n_steps * self.chain_count))
        batch = SampleBatch(configs, uniform_weights(self.batch_size), n_chains=self.chain_count)
        return batch, MCMCState(chains, log_probs), stats


@eqx.filter_jit
def _metropolis_run(sampler: MetropolisSampler, log_prob_fn, nqs, chains, key):
    """Warm-up, then ``samples_per_chain`` records ``thinning`` steps apart. The moves and the
    acceptance uniforms of all steps are drawn before the loop (one vectorised draw each)."""
    n_chains, n_states, n_sites = chains.shape
    real = jnp.result_type(float)
    log_probs = log_prob_fn(nqs, chains).astype(real)
    n_records = sampler.samples_per_chain
    n_steps = sampler.n_warmup + n_records * sampler.thinning
    key_moves, key_accept = jax.random.split(key)
    moves = sampler.draw_moves(key_moves, n_steps, n_states, n_sites)
    log_uniforms = jnp.log(jax.random.uniform(key_accept, (n_steps, n_chains), dtype=real))

    def step(carry, randomness):
        current, current_lp = carry
        move, log_u = randomness
        proposed = sampler.apply_moves(move, current)
        proposed_lp = log_prob_fn(nqs, proposed).astype(real)
        log_ratio = jnp.where(
            current_lp == -jnp.inf, jnp.where(proposed_lp == -jnp.inf, 0.0, jnp.inf), proposed_lp - current_lp
        )
        accept = log_u < log_ratio
        current = jnp.where(accept[:, None, None], proposed, current)
        current_lp = jnp.where(accept, proposed_lp, current_lp)
        return (current, current_lp), jnp.mean(accept.astype(real))

    warmup = sampler.n_warmup
    carry, _ = jax.lax.scan(step, (chains, log_probs), (moves[:warmup], log_uniforms[:warmup]))

    def record(carry, randomness):
        carry, accepted = jax.lax.scan(step, carry, randomness)
        return carry, (carry[0], jnp.mean(accepted))

    per_record = (n_records, sampler.thinning, n_chains)
    carry, (samples, accepted) = jax.lax.scan(
        record, carry, (moves[warmup:].reshape(per_record), log_uniforms[warmup:].reshape(per_record))
    )
    configs = samples.reshape(sampler.batch_size, n_states, n_sites)
    return configs, carry[0], carry[1], jnp.mean(accepted)
