"""Neural importance resampling (NIR, paper section 3) with a Transformer proposal.

One call of :meth:`NIRSampler.sample`:

1. Draw proposal batches of ``batch_size`` K-tuples from the autoregressive proposal ``q``
   (:class:`nirbench.proposal.TransformerProposal`, KV-cached sampling) and accumulate the log
   importance weights ``log w = log |Psi|^2 - log q`` (log domain; ``|Psi|^2`` unnormalised).
2. Stop when ``ESS = (sum w)^2 / sum w^2 >= alpha_ess * batch_size`` or after ``max_rounds``
   batches (``adaptive=True``, section 3.4), or after exactly ``n_proposal_batches`` batches
   (``adaptive=False``: the JSD experiment's fixed number of proposals, section 4.3).
3. ``mode="resample"`` (paper): draw ``batch_size`` configurations with probability ``∝ w``
   (multinomial, :func:`nirbench.samplers.base.multinomial_indices`) and return them with uniform weights ``1/B``.
   ``mode="importance"``: return the whole weighted proposal set (``n_rounds * batch_size``
   configurations) with self-normalised weights; estimators must use ``batch.weights``.
4. Train ``q`` for ``train_steps`` Adam steps (``retrain_steps`` when the efficiency is below
   ``alpha_eff``):

   * ``loss="forward"`` (eq. 9/11), ``training="batch"`` (paper): every step on the returned
     batch: the resampled configurations, each with its K blocks randomly permuted (section 3.3);
     in importance mode, the *weighted* forward KL on the whole proposal set (self-normalised
     weights, blocks permuted).
   * ``loss="forward"``, ``training="proposals"`` (beyond the paper): every step on a fresh
     minibatch of ``batch_size`` configurations drawn with probability ``∝ w`` from the *whole*
     weighted proposal set of the call (blocks permuted): an unbiased estimate of the gradient of
     the forward KL weighted over everything that was proposed, instead of reusing the same
     ``B`` resampled tuples (duplicates) at every step. With ``train_ess = r > 0`` the weights
     of those minibatches are tempered, ``w -> w^beta`` with ``beta`` in ``[0, 1]`` the largest
     whose ESS is at least ``r B`` (:func:`tempering_exponent`): a call whose proposal set rests
     on a handful of tuples trains towards ``q^(1 - beta) |Psi|^(2 beta)`` (a step from ``q``
     towards ``|Psi|^2``) instead of fitting those few tuples. The sampled batch and every
     estimate keep the untempered weights: NIR stays exact.
   * ``loss="backward"`` (eq. 10/12): on a fresh batch from ``q`` scored by ``log_prob_fn``.

5. ``efficiency = ESS / n_proposed``; ``nqs_update = efficiency >= alpha_eff`` (always ``True``
   when ``adaptive=False``, unless every weight is zero). With ``gate_smoothing = s > 0`` the gate
   compares the exponential moving average ``s * previous + (1 - s) * efficiency`` (kept in the
   state) instead of one noisy value. When it is ``False`` the VMC loop should discard the batch
   and call ``sample`` again (the proposal has just been retrained).

The returned batch also carries the whole proposal set (``proposal_configs``, ``proposal_log_q``)
so that the VMC loop can predict how an NQS step would change the weights (its trust region).

Symmetry-augmented proposal (beyond the paper, ``symmetrize=True``): every proposed K-tuple
``s ~ q`` is replaced by ``g s`` with ``g`` uniform in the group
``G' = perms x {1, spin flip} x S_K`` (a lattice permutation applied to all K rows, an optional
global spin flip of all K rows, and a permutation of the K rows). ``g s`` has the exact mixture
density ``q_G(s) = mean_{h in G'} q(h s)``, which is what the weights use, so NIR stays exact
whatever the target. ``q_G`` is invariant under ``G'``; it helps when ``|Psi|^2`` is (nearly)
invariant too. The global spin flip is a symmetry of TFI and J1-J2 *without* a longitudinal field
only (``spin_flip=False`` leaves it out); the lattice permutations should be the Hamiltonian's
symmetry group (``lattice.symmetry_group()``) and must form a group (checked). Cost:
``|G'| = |perms| * (2 if spin_flip) * K!`` proposal log-density evaluations (full causal passes) per
proposed configuration, e.g. 6144 for an 8x8 periodic lattice with K=3 -- affordable for small
groups only. When symmetrising, the training configurations also get a random ``g`` (data
augmentation) instead of only a block permutation.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp

from nirbench.estimators import log_effective_sample_size, log_ess_from_sums
from nirbench.models.multistate import evaluate_in_chunks
from nirbench.profiling import timed
from nirbench.proposal import (
    PatchedProposal,
    ProductProposal,
    TransformerProposal,
    backward_train_step,
    make_proposal_optimizer,
    random_block_permutation,
    spins_to_tokens,
    tokens_to_spins,
    train_step,
)
from nirbench.samplers.base import (
    LogProbFn,
    SampleBatch,
    Sampler,
    check_choice,
    check_positive_int,
    default_stats,
    multinomial_indices,
    uniform_weights,
)

LOSSES = ("forward", "backward")
TRAININGS = ("batch", "proposals")
#: most proposal Adam steps in one call
MAX_TRAIN_STEPS = 256
MODES = ("resample", "importance")
PROPOSAL_DTYPES = ("float32", "float64")
#: the proposal's form over a K-tuple: one Transformer over its K N tokens (paper), or the product of
#: one Transformer over N tokens applied to each configuration (:class:`nirbench.proposal.ProductProposal`)
FACTORIZATIONS = ("joint", "product")
#: most spins per proposal token (:class:`nirbench.proposal.PatchedProposal`; 2**8 token values)
MAX_PATCH = 8


@functools.cache
def _optimizer(learning_rate: float) -> optax.GradientTransformation:
    """One optimiser object per learning rate, so jitted train steps are compiled once."""
    return make_proposal_optimizer(learning_rate)


def _as_perms(perms):
    if perms is None:
        return None
    array = np.asarray(perms)
    if array.ndim != 2 or array.shape[0] < 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"symmetry_perms must be an integer array of shape (G, N), got shape {array.shape}")
    return tuple(tuple(int(i) for i in row) for row in array)


def check_permutation_group(perms) -> None:
    """``ValueError`` unless the rows of ``perms`` ``(G, N)`` are permutations closed under composition."""
    perms = np.asarray(perms)
    n_sites = perms.shape[1]
    if not np.all(np.sort(perms, axis=1) == np.arange(n_sites)):
        raise ValueError("every row of symmetry_perms must be a permutation of range(N)")
    members = {tuple(p) for p in perms}
    if tuple(range(n_sites)) not in members:
        raise ValueError("symmetry_perms must contain the identity permutation")
    for p in perms:
        composed = perms[:, p]  # row q: q[p], the permutation s -> s[q][p] = s[q[p]]
        if any(tuple(c) not in members for c in composed):
            raise ValueError("symmetry_perms is not closed under composition (not a group)")


class SymmetryGroup(eqx.Module):
    """The product group ``G' = perms x {1, flip} x S_K`` acting on K-tuples ``(K, N)``.

    Element ``e`` maps ``s`` to ``flips[e] * s[block_perms[e]][:, site_perms[e]]``.

    Attributes:
        site_perms: ``(|G'|, N)`` int32 lattice permutations.
        flips: ``(|G'|,)`` int8, ``+1`` or ``-1`` (global spin flip).
        block_perms: ``(|G'|, K)`` int32 permutations of the K rows.
    """

    site_perms: jax.Array
    flips: jax.Array
    block_perms: jax.Array

    @classmethod
    def build(cls, perms, n_states: int, spin_flip: bool = True) -> SymmetryGroup:
        perms = np.asarray(perms, dtype=np.int32)
        blocks = np.array(list(itertools.permutations(range(n_states))), dtype=np.int32)
        flips = np.array([1, -1] if spin_flip else [1], dtype=np.int8)
        p_idx, f_idx, b_idx = (a.ravel() for a in np.meshgrid(
            np.arange(len(perms)), np.arange(len(flips)), np.arange(len(blocks)), indexing="ij"
        ))
        return cls(jnp.asarray(perms[p_idx]), jnp.asarray(flips[f_idx]), jnp.asarray(blocks[b_idx]))

    @property
    def size(self) -> int:
        return int(self.flips.shape[0])

    def apply(self, configs: jax.Array, elements: jax.Array) -> jax.Array:
        """Apply element ``elements[b]`` to ``configs[b]``: ``(B, K, N)``, ``(B,)`` -> ``(B, K, N)``."""
        out = jnp.take_along_axis(configs, self.block_perms[elements][:, :, None], axis=1)
        out = jnp.take_along_axis(out, self.site_perms[elements][:, None, :], axis=2)
        return (out * self.flips[elements][:, None, None]).astype(configs.dtype)

    def orbit(self, config: jax.Array) -> jax.Array:
        """All images of one K-tuple: ``(K, N)`` -> ``(|G'|, K, N)``."""
        out = config[self.block_perms]  # (G', K, N)
        out = jnp.take_along_axis(out, self.site_perms[:, None, :], axis=2)
        return (out * self.flips[:, None, None]).astype(config.dtype)

    def random_apply(self, key, configs: jax.Array) -> jax.Array:
        """Apply an independent uniformly random element to each configuration ``(B, K, N)``."""
        elements = jax.random.randint(key, (configs.shape[0],), 0, self.size)
        return self.apply(configs, elements)


def symmetrized_log_prob(proposal: TransformerProposal, group: SymmetryGroup, configs, chunk_size: int = 64):
    """``log q_G(s) = logsumexp_{h in G'} log q(h s) - log |G'|`` for ``configs`` ``(B, K, N)`` -> ``(B,)``.

    Exact; costs ``|G'|`` causal passes of ``q`` per configuration (``lax.map`` over chunks of
    ``chunk_size`` configurations to bound memory).
    """
    log_size = math.log(group.size)

    def one(config):
        tokens = spins_to_tokens(group.orbit(config))
        return logsumexp(proposal.log_prob_batch(tokens)) - log_size

    return jax.lax.map(one, jnp.asarray(configs), batch_size=chunk_size)


@dataclasses.dataclass(frozen=True)
class _Kernel:
    """The static settings the jitted NIR kernels depend on (hashable; thresholds excluded, so
    changing ``alpha_ess``, ``mode`` etc. does not recompile)."""

    batch_size: int
    n_states: int
    n_sites: int
    symmetrize: bool
    symmetry_perms: tuple | None
    spin_flip: bool
    symmetry_chunk: int

    def group(self) -> SymmetryGroup:
        perms = self.symmetry_perms if self.symmetry_perms is not None else (tuple(range(self.n_sites)),)
        return SymmetryGroup.build(perms, self.n_states, self.spin_flip)


class NIRState(eqx.Module):
    """State of :class:`NIRSampler`: the proposal network, its Adam state, and the smoothed
    efficiency of the gate (``()`` float, ``nan`` before the first call)."""

    proposal: TransformerProposal | ProductProposal | PatchedProposal
    opt_state: optax.OptState
    efficiency_ema: jax.Array


class NIRSampler(Sampler):
    """Neural importance resampling (see the module docstring). Defaults: paper table A1.

    Args:
        batch_size: ``B``, configurations per proposal batch and per resampled output (>= 1).
        n_states, n_sites: ``K`` and ``N``; the proposal has ``T = K * N`` tokens.
        alpha_ess: ESS threshold factor (> 0): stop proposing once ``ESS >= alpha_ess * B``.
        alpha_eff: efficiency threshold in ``[0, 1]`` for ``nqs_update``.
        max_rounds: most proposal batches per call when adaptive (>= 1). Default
            ``ceil((alpha_ess + 1) / alpha_eff)`` (64 when ``alpha_eff = 0``): one batch of ``B`` adds
            at most ``B`` to the ESS, so a call that needs more rounds ends with
            ``ESS / n_proposed < alpha_eff`` and cannot update the NQS; the cap saves those rounds.
        embed_dim, n_heads, n_layers, p_floor: proposal architecture (``p_floor`` in ``[0, 2**-proposal_patch)``).
        learning_rate: Adam learning rate of the proposal (> 0).
        loss: ``"forward"`` or ``"backward"`` KL.
        train_steps: proposal optimiser steps per call (>= 0, at most ``MAX_TRAIN_STEPS``).
        retrain_steps: optimiser steps in a call whose efficiency is below ``alpha_eff`` (default
            ``train_steps``): more training where the proposal has fallen behind, bounded.
        training: ``"batch"`` (paper: train on the returned batch) or ``"proposals"`` (fresh
            minibatches drawn from the whole weighted proposal set; see the module docstring).
        train_ess: ``r >= 0``; with ``training="proposals"``, temper the training weights so that
            their ESS is at least ``r * batch_size`` (0: untempered; see the module docstring).
        gate_smoothing: ``s`` in ``[0, 1)``; the gate compares the moving average of the efficiency
            with weight ``s`` on the past (0: the paper's gate on this call's efficiency).
        mode: ``"resample"`` (uniform weights) or ``"importance"`` (weighted proposal set).
        adaptive: ``False`` draws exactly ``n_proposal_batches`` batches and sets ``nqs_update=True``.
        n_proposal_batches: batches per call when not adaptive (default 1).
        symmetrize: use the symmetry-augmented proposal ``q_G``.
        symmetry_perms: ``(G, N)`` lattice permutations (a group) for ``symmetrize`` (default: identity).
        spin_flip: include the global spin flip in the group when ``symmetrize``.
        symmetry_chunk: configurations per chunk when evaluating ``q_G``.
        proposal_dtype: ``"float32"`` (default) or ``"float64"``, the proposal's parameters and
            arithmetic. The weights ``log |Psi|^2 - log q`` are formed in the NQS's precision either
            way, and ``log q`` is that of the very conditionals the draws used, so NIR stays exact;
            float32 halves the sampling time on the CPU (0.73 -> 0.37 s for 512 draws of 108 tokens).
        proposal_factorization: ``"joint"`` (paper: one Transformer over the ``K N`` tokens of a
            tuple) or ``"product"`` (:class:`nirbench.proposal.ProductProposal`: ``q = prod_k q_1(s_k)``
            with one Transformer over ``N`` tokens).
        proposal_patch: spins per proposal token, ``p`` consecutive sites of one configuration read
            as one of ``2**p`` values (:class:`nirbench.proposal.PatchedProposal`; 1: the paper's
            binary tokens); ``p`` must divide ``N``, be at most ``MAX_PATCH``, and ``p_floor < 2**-p``.

    Stats: ``ess``, ``n_proposed`` (``n_rounds * B``), ``efficiency = ess / n_proposed``,
    ``nqs_update``, ``proposal_loss`` (last training step's loss; for ``"backward"`` the surrogate
    value), ``n_rounds``, ``smoothed_efficiency`` (what the gate compared), ``train_steps`` (proposal
    Adam steps taken), ``train_beta`` (the tempering exponent of the training weights, 1 when
    untempered); ``acceptance`` is ``nan``.
    """

    n_states: int = eqx.field(static=True)
    n_sites: int = eqx.field(static=True)
    alpha_ess: float = eqx.field(static=True, default=2.0)
    alpha_eff: float = eqx.field(static=True, default=0.1)
    max_rounds: int | None = eqx.field(static=True, default=None)
    embed_dim: int = eqx.field(static=True, default=32)
    n_heads: int = eqx.field(static=True, default=4)
    n_layers: int = eqx.field(static=True, default=4)
    p_floor: float = eqx.field(static=True, default=1e-4)
    learning_rate: float = eqx.field(static=True, default=1e-3)
    loss: str = eqx.field(static=True, default="forward")
    train_steps: int = eqx.field(static=True, default=1)
    retrain_steps: int | None = eqx.field(static=True, default=None)
    training: str = eqx.field(static=True, default="batch")
    train_ess: float = eqx.field(static=True, default=0.0)
    gate_smoothing: float = eqx.field(static=True, default=0.0)
    mode: str = eqx.field(static=True, default="resample")
    adaptive: bool = eqx.field(static=True, default=True)
    n_proposal_batches: int | None = eqx.field(static=True, default=None)
    symmetrize: bool = eqx.field(static=True, default=False)
    symmetry_perms: tuple | None = eqx.field(static=True, default=None, converter=_as_perms)
    spin_flip: bool = eqx.field(static=True, default=True)
    symmetry_chunk: int = eqx.field(static=True, default=64)
    proposal_dtype: str = eqx.field(static=True, default="float32")
    proposal_factorization: str = eqx.field(static=True, default="joint")
    proposal_patch: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("n_states (K)", self.n_states)
        check_positive_int("n_sites (N)", self.n_sites)
        if not (isinstance(self.alpha_ess, (int, float)) and self.alpha_ess > 0):
            raise ValueError(f"alpha_ess must be > 0, got {self.alpha_ess!r}")
        if not (isinstance(self.alpha_eff, (int, float)) and 0 <= self.alpha_eff <= 1):
            raise ValueError(f"alpha_eff must be in [0, 1], got {self.alpha_eff!r}")
        if self.max_rounds is not None:
            check_positive_int("max_rounds", self.max_rounds)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        check_positive_int("embed_dim", self.embed_dim)
        check_positive_int("n_heads", self.n_heads)
        check_positive_int("n_layers", self.n_layers, minimum=0)
        if self.embed_dim % self.n_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be a multiple of n_heads ({self.n_heads})")
        check_choice("loss", self.loss, LOSSES)
        check_choice("mode", self.mode, MODES)
        check_positive_int("train_steps", self.train_steps, minimum=0)
        if self.retrain_steps is not None:
            check_positive_int("retrain_steps", self.retrain_steps, minimum=0)
        if max(self.train_steps, self.retrain_steps or 0) > MAX_TRAIN_STEPS:
            raise ValueError(f"train_steps and retrain_steps must be at most {MAX_TRAIN_STEPS}")
        check_choice("training", self.training, TRAININGS)
        if self.training == "proposals" and self.loss != "forward":
            raise ValueError("training='proposals' applies to the forward KL only")
        if not (isinstance(self.train_ess, (int, float)) and not isinstance(self.train_ess, bool) and self.train_ess >= 0):
            raise ValueError(f"train_ess must be a number >= 0, got {self.train_ess!r}")
        if self.train_ess and self.training != "proposals":
            raise ValueError("train_ess tempers the proposal-set training only: it needs training='proposals'")
        if not (isinstance(self.gate_smoothing, (int, float)) and 0 <= self.gate_smoothing < 1):
            raise ValueError(f"gate_smoothing must be in [0, 1), got {self.gate_smoothing!r}")
        if self.n_proposal_batches is not None:
            check_positive_int("n_proposal_batches", self.n_proposal_batches)
            if self.adaptive:
                raise ValueError("n_proposal_batches applies only with adaptive=False")
        check_positive_int("symmetry_chunk", self.symmetry_chunk)
        check_choice("proposal_dtype", self.proposal_dtype, PROPOSAL_DTYPES)
        check_choice("proposal_factorization", self.proposal_factorization, FACTORIZATIONS)
        check_positive_int("proposal_patch", self.proposal_patch)
        if self.proposal_patch > MAX_PATCH or self.n_sites % self.proposal_patch:
            raise ValueError(
                f"proposal_patch must divide N = {self.n_sites} and be at most {MAX_PATCH}, got {self.proposal_patch}"
            )
        if not (isinstance(self.p_floor, (int, float)) and 0 <= self.p_floor < 2.0**-self.proposal_patch):
            raise ValueError(
                f"p_floor must be in [0, 2**-proposal_patch = {2.0**-self.proposal_patch:g}), got {self.p_floor!r}"
            )
        if self.symmetry_perms is not None:
            if len(self.symmetry_perms[0]) != self.n_sites:
                raise ValueError(
                    f"symmetry_perms must have N = {self.n_sites} columns, got {len(self.symmetry_perms[0])}"
                )
            check_permutation_group(self.symmetry_perms)

    # ------------------------------------------------------------------ helpers
    @property
    def n_tokens(self) -> int:
        return self.n_states * self.n_sites

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return _optimizer(float(self.learning_rate))

    @property
    def round_limit(self) -> int:
        """Most proposal batches per adaptive call (``max_rounds``, see the class docstring)."""
        if self.max_rounds is not None:
            return self.max_rounds
        return math.ceil((self.alpha_ess + 1) / self.alpha_eff) if self.alpha_eff > 0 else 64

    @property
    def rounds_fixed(self) -> int:
        return 1 if self.n_proposal_batches is None else self.n_proposal_batches

    @property
    def kernel(self) -> _Kernel:
        return _Kernel(
            self.batch_size, self.n_states, self.n_sites, self.symmetrize, self.symmetry_perms,
            self.spin_flip, self.symmetry_chunk,
        )

    def group(self) -> SymmetryGroup:
        """The symmetry group ``G'`` used when ``symmetrize`` (identity perm when ``symmetry_perms`` is None)."""
        return self.kernel.group()

    def proposal_log_prob(self, proposal: TransformerProposal, configs) -> jax.Array:
        """The density the weights use: ``log q`` (or ``log q_G`` when symmetrising), ``(B, K, N) -> (B,)``."""
        if self.symmetrize:
            return symmetrized_log_prob(proposal, self.group(), configs, self.symmetry_chunk)
        return proposal.log_prob_batch(spins_to_tokens(configs))

    # ------------------------------------------------------------------ interface
    def frozen(self) -> NIRSampler:
        """The same sampler without proposal training (``train_steps = 0``): measurements draw from
        the proposal as it stands. The adaptive proposal loop and the efficiency gate are kept."""
        return dataclasses.replace(self, train_steps=0, retrain_steps=0)

    def init(
        self, key, n_states: int, n_sites: int, proposal: TransformerProposal | ProductProposal | PatchedProposal | None = None
    ) -> NIRState:
        """A fresh proposal over ``T = K * N`` tokens (a :class:`ProductProposal` when
        ``proposal_factorization="product"``, read in patches of ``proposal_patch`` spins), or the given
        one whatever its form, and its Adam state."""
        if (n_states, n_sites) != (self.n_states, self.n_sites):
            raise ValueError(
                f"this NIRSampler was built for K={self.n_states}, N={self.n_sites}; got K={n_states}, N={n_sites}"
            )
        if proposal is None:
            product = self.proposal_factorization == "product"
            patch = self.proposal_patch
            proposal = TransformerProposal(
                (self.n_sites if product else self.n_tokens) // patch, self.embed_dim, self.n_heads,
                self.n_layers, self.p_floor, vocab_size=2**patch, dtype=self.proposal_dtype, key=key,
            )  # fmt: skip
            if patch > 1:
                proposal = PatchedProposal(proposal, patch)
            if product:
                proposal = ProductProposal(proposal, self.n_states)
        elif proposal.n_tokens != self.n_tokens:
            raise ValueError(f"the proposal has {proposal.n_tokens} tokens, expected K*N = {self.n_tokens}")
        opt_state = self.optimizer.init(eqx.filter(proposal, eqx.is_inexact_array))
        return NIRState(proposal, opt_state, jnp.array(jnp.nan))

    def sample(self, log_prob_fn: LogProbFn, nqs, state: NIRState, key):
        key_propose, key_resample, key_train = jax.random.split(key, 3)
        rounds = []
        log_sum = log_sum_sq = -math.inf  # log sum w and log sum w^2, accumulated over rounds
        log_target = math.log(self.alpha_ess * self.batch_size)
        while True:
            key_propose, key_round = jax.random.split(key_propose)
            configs, log_w, log_q, lse, lse_sq = timed(
                "proposal sampling", _propose, self.kernel, log_prob_fn, nqs, state.proposal, key_round
            )
            rounds.append((configs, log_w, log_q))
            log_sum, log_sum_sq = np.logaddexp(log_sum, float(lse)), np.logaddexp(log_sum_sq, float(lse_sq))
            if math.isnan(log_sum) or math.isnan(log_sum_sq):
                raise FloatingPointError("NIR: log_prob_fn or the proposal returned NaN importance weights")
            log_ess = log_ess_from_sums(log_sum, log_sum_sq)
            if self.adaptive and (log_ess >= log_target or len(rounds) >= self.round_limit):
                break
            if not self.adaptive and len(rounds) >= self.rounds_fixed:
                break
        n_rounds = len(rounds)
        n_proposed = n_rounds * self.batch_size
        ess = math.exp(log_ess) if log_ess > -math.inf else 0.0
        efficiency = ess / n_proposed

        # pad to a power-of-two number of rounds with zero-weight filler: few distinct shapes to compile
        padded = 1 << (n_rounds - 1).bit_length()
        filler = (rounds[0][0], jnp.full_like(rounds[0][1], -jnp.inf), jnp.full_like(rounds[0][2], jnp.inf))
        configs, log_w, log_q, weights = _concatenate_rounds(rounds + [filler] * (padded - n_rounds))
        # the padded set (filler rows have log q = +inf: weight zero under any NQS)
        proposal_set = {"proposal_configs": configs, "proposal_log_q": log_q}
        if self.mode == "resample":
            picked = _resample(self.kernel, log_w, key_resample)
            batch = SampleBatch(
                configs[picked], uniform_weights(self.batch_size), source=picked, source_weights=weights[picked],
                **proposal_set,
            )
            training = (batch.configs, None)
        else:
            batch = SampleBatch(*_drop_impossible(configs[:n_proposed], weights[:n_proposed]), **proposal_set)
            training = (configs, weights)
        beta = 1.0
        if self.training == "proposals":
            if self.train_ess:
                beta = float(tempering_exponent(log_w, self.train_ess * self.batch_size))
            training = (configs, log_w if beta == 1.0 else beta * log_w)

        # the gate: this call's efficiency, or its moving average
        smoothing = self.gate_smoothing
        previous = float(state.efficiency_ema)
        smoothed = efficiency if (smoothing == 0 or math.isnan(previous)) else smoothing * previous + (1 - smoothing) * efficiency
        # without any non-zero weight the batch is meaningless, whatever the mode
        nqs_update = ess > 0 and ((smoothed >= self.alpha_eff) if self.adaptive else True)
        n_steps = self.train_steps if (efficiency >= self.alpha_eff or self.retrain_steps is None) else self.retrain_steps
        proposal, opt_state, loss = timed(
            "proposal training", self._train, log_prob_fn, nqs, state, training, key_train, n_steps
        )
        stats = default_stats(
            ess=ess, n_proposed=n_proposed, efficiency=efficiency, nqs_update=nqs_update,
            proposal_loss=loss, n_rounds=n_rounds, smoothed_efficiency=smoothed, train_steps=n_steps,
            train_beta=beta,
        )
        return batch, NIRState(proposal, opt_state, jnp.array(smoothed)), stats

    def _train(self, log_prob_fn, nqs, state: NIRState, training, key, n_steps: int):
        """``n_steps`` proposal updates on ``training``: ``(configs, weights or None)`` (the batch),
        or ``(configs, log_w)`` of the whole proposal set with ``training="proposals"``."""
        proposal, opt_state, loss = state.proposal, state.opt_state, math.nan
        configs, weights = training
        for _ in range(n_steps):
            key, key_step, key_pick = jax.random.split(key, 3)
            if self.loss == "backward":
                proposal, opt_state, loss = _backward_step(
                    self.kernel, self.optimizer, log_prob_fn, nqs, proposal, opt_state, key_step
                )
            elif self.training == "proposals":
                picked = configs[_resample(self.kernel, weights, key_pick)]  # a fresh minibatch ∝ w
                proposal, opt_state, loss = self._forward_step(proposal, opt_state, picked, key_step)
            else:
                proposal, opt_state, loss = self._forward_step(proposal, opt_state, configs, key_step, weights)
        return proposal, opt_state, float(loss)

    def _forward_step(self, proposal, opt_state, configs, key, weights=None):
        tokens = _training_tokens(self.kernel, configs, key)
        return train_step(proposal, opt_state, self.optimizer, tokens, weights)

    def pretrain(self, state: NIRState, configs, key, n_steps: int, batch_size: int | None = None):
        """Fit the proposal to target samples ``configs`` ``(M, K, N)`` by forward KL.

        ``n_steps`` Adam steps on random minibatches of ``batch_size`` (default ``B``) with the same
        augmentation as during sampling (random block permutation, or a random group element when
        symmetrising). Returns ``(state, losses (n_steps,))``. Useful to start NIR from a trained
        proposal (tests, benchmarks).
        """
        configs = jnp.asarray(configs, dtype=jnp.int8)
        size = min(batch_size or self.batch_size, configs.shape[0])
        proposal, opt_state = state.proposal, state.opt_state
        losses = []
        for _ in range(int(n_steps)):
            key, key_pick, key_step = jax.random.split(key, 3)
            rows = jax.random.choice(key_pick, configs.shape[0], (size,), replace=False)
            proposal, opt_state, loss = self._forward_step(proposal, opt_state, configs[rows], key_step)
            losses.append(float(loss))
        return NIRState(proposal, opt_state, state.efficiency_ema), np.array(losses)


@functools.partial(jax.jit, static_argnames="n_bisections")
def tempering_exponent(log_w, min_ess, n_bisections: int = 40):
    """The largest ``beta`` in ``[0, 1]`` for which the weights ``w^beta`` have an ESS of at least
    ``min_ess`` (``()`` float).

    ``log_w``: ``(M,)`` log weights, ``-inf`` for weight zero (ignored at any ``beta``, so the ESS
    at ``beta -> 0`` is the number of non-zero weights). The ESS ``(sum w^beta)^2 / sum w^(2 beta)``
    does not increase with ``beta`` (its log-derivative is ``2 (E_beta - E_2beta)[log w] <= 0``,
    ``E_b`` the mean under weights ``w^b``), so bisection finds the bound; 1 when the untempered
    weights already meet it, 0 when not even uniform weights over the non-zero ones do.
    """
    possible = jnp.isfinite(log_w)

    def log_ess(beta):
        return log_effective_sample_size(jnp.where(possible, beta * jnp.where(possible, log_w, 0.0), -jnp.inf))

    target = jnp.log(min_ess)

    def bisect(_, bounds):
        low, high = bounds
        middle = (low + high) / 2
        meets = log_ess(middle) >= target
        return jnp.where(meets, middle, low), jnp.where(meets, high, middle)

    low, _ = jax.lax.fori_loop(0, n_bisections, bisect, (jnp.zeros_like(target), jnp.ones_like(target)))
    return jnp.where(log_ess(1.0) >= target, 1.0, low)


@jax.jit
def _concatenate_rounds(rounds):
    """List of ``(configs (B, K, N), log w (B,), log q (B,))`` -> concatenated configs, log w,
    log q and the softmax weights."""
    configs = jnp.concatenate([c for c, _, _ in rounds])
    log_w = jnp.concatenate([w for _, w, _ in rounds])
    log_q = jnp.concatenate([q for _, _, q in rounds])
    return configs, log_w, log_q, jax.nn.softmax(log_w)


@jax.jit
def _drop_impossible(configs, weights):
    """Importance batch ``(M, K, N)``, ``(M,)`` -> the same with every row of negligible weight
    (self-normalised weight below ``eps^2`` of the dtype, about 5e-32: ``Psi`` zero up to round-off,
    e.g. a determinant with two equal rows, whose local energy is not finite) set to weight zero
    and replaced by the heaviest row. Such rows change no estimate, and every row then has a finite
    local energy."""
    keep = weights >= jnp.finfo(weights.dtype).eps ** 2
    weights = jnp.where(keep, weights, 0.0)
    configs = jnp.where(keep[:, None, None], configs, configs[jnp.argmax(weights)])
    return configs, weights / jnp.sum(weights)


@eqx.filter_jit
def _resample(sampler: _Kernel, log_w, key):
    """Multinomial resampling: ``(batch_size,)`` indices drawn with probability ``∝ exp(log_w)``."""
    return multinomial_indices(key, log_w, sampler.batch_size)


@eqx.filter_jit
def _training_tokens(sampler: _Kernel, configs, key):
    """Augmented training tokens ``(M, T)``: random block permutation, or a random group element."""
    if sampler.symmetrize:
        return spins_to_tokens(sampler.group().random_apply(key, configs))
    tokens = spins_to_tokens(configs)
    return random_block_permutation(key, tokens, sampler.n_states, sampler.n_sites)


@eqx.filter_jit
def _propose(sampler: _Kernel, log_prob_fn, nqs, proposal: TransformerProposal, key):
    """One proposal batch: ``configs (B, K, N)`` int8, ``log w (B,) = log |Psi|^2 - log q``, ``log q
    (B,)``, and the round's ``logsumexp(log w)`` and ``logsumexp(2 log w)`` (for the running ESS)."""
    key_sample, key_group = jax.random.split(key)
    tokens, log_q = proposal.sample(key_sample, sampler.batch_size)
    configs = tokens_to_spins(tokens, sampler.n_states, sampler.n_sites)
    if sampler.symmetrize:
        group = sampler.group()
        configs = group.random_apply(key_group, configs)
        log_q = symmetrized_log_prob(proposal, group, configs, sampler.symmetry_chunk)
    log_p = evaluate_in_chunks(log_prob_fn, nqs, configs)
    dtype = jnp.promote_types(log_p.dtype, log_q.dtype)
    log_w = log_p.astype(dtype) - log_q.astype(dtype)
    return configs, log_w, log_q.astype(dtype), logsumexp(log_w), logsumexp(2.0 * log_w)


@eqx.filter_jit
def _backward_step(sampler: _Kernel, optimizer, log_prob_fn, nqs, proposal, opt_state, key):
    tokens, _ = proposal.sample(key, sampler.batch_size)
    configs = tokens_to_spins(tokens, sampler.n_states, sampler.n_sites)
    log_p = log_prob_fn(nqs, configs)
    # tuples with |Psi|^2 = 0 would give infinite surrogate terms: clip them to a finite floor
    log_p = jnp.maximum(log_p, jnp.min(jnp.where(jnp.isfinite(log_p), log_p, jnp.inf)) - 50.0)
    return backward_train_step(proposal, opt_state, optimizer, tokens, log_p)
