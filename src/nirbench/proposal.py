"""The autoregressive Transformer proposal ``q`` of neural importance resampling (paper section 3.2).

``q`` is a distribution over ``T = K * N`` binary tokens, the ``K`` spin configurations of a
multi-state NQS flattened row-major (state ``k`` first, then site). :class:`TransformerProposal`
itself models strings over any vocabulary of ``V >= 2`` values (``vocab_size``; the paper's is
binary); :class:`PatchedProposal` (beyond the paper) uses that to read ``p`` consecutive spins as
one of ``2**p`` token values, ``T / p`` positions instead of ``T``, with the same binary interface.

Conventions
-----------
* Token ``0`` <-> spin ``+1``; token ``1`` <-> spin ``-1`` (:func:`spins_to_tokens`,
  :func:`tokens_to_spins`). Tokens are ``int32`` arrays of shape ``(..., T)``.
* The network reads the shifted sequence ``[start, t_0, ..., t_{T-2}]`` (a learnable start
  vector replaces the token embedding at position 0), adds learnable positional embeddings
  ``(T, embed_dim)``, applies ``n_layers`` pre-LayerNorm causal Transformer blocks
  (``x += MHA(LN(x))``, ``x += MLP(LN(x))`` with hidden width ``4 * embed_dim`` and GELU), a final
  LayerNorm and a Linear map to ``V`` logits per position. Output ``i`` depends on ``t_<i`` only.
* Conditionals carry a floor: ``p(t_i | t_<i) = p_floor + (1 - V p_floor) softmax(logits_i)``,
  so every string has ``q(t) >= p_floor**T > 0`` when ``p_floor > 0``.
* ``log_prob(tokens (T,)) -> ()`` is one parallel causal forward pass; batch it with
  ``jax.vmap(proposal.log_prob)`` or :meth:`TransformerProposal.log_prob_batch` ``(B, T) -> (B,)``.
* ``sample(key, n)`` draws autoregressively with a key/value cache (one token per step inside
  ``lax.scan``); ``sample_naive(key, n)`` recomputes the full forward pass at every position and is
  kept as a reference. Both use the same random numbers (see :func:`_uniforms`), so for the same key
  they return identical tokens.

:class:`ProductProposal` (beyond the paper) is ``q(t) = prod_k q_1(t^(k))`` with one
``TransformerProposal`` ``q_1`` over the ``N`` tokens of a single configuration, the same interface.

Training (paper section 3.3): :func:`forward_kl_loss` (eq. 11, samples from the target ``p``),
:func:`backward_kl_loss` (eq. 12, samples from ``q``), :func:`make_proposal_optimizer`,
:func:`train_step` / :func:`backward_train_step`, and :func:`random_block_permutation` to permute
the ``K`` states of each sample before training.
"""

from __future__ import annotations

import functools
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from nirbench.batching import row_chunks
from nirbench.models.layers import layer_norm

__all__ = [
    "KV_BLOCK",
    "TRAIN_CHUNK",
    "PatchedProposal",
    "ProductProposal",
    "TransformerProposal",
    "backward_kl_loss",
    "backward_train_step",
    "default_block_size",
    "forward_kl_loss",
    "forward_kl_value_and_grad",
    "make_proposal_optimizer",
    "random_block_permutation",
    "spins_to_tokens",
    "time_sampling",
    "tokens_to_spins",
    "train_step",
]


# --------------------------------------------------------------------------- tokens
def spins_to_tokens(configs) -> jnp.ndarray:
    """+-1 configurations ``(..., K, N)`` -> tokens ``(..., K * N)`` int32 (``-1`` -> 1, ``+1`` -> 0).

    Flattening is row-major: all ``N`` sites of state 0, then state 1, ...
    """
    configs = jnp.asarray(configs)
    if configs.ndim < 2:
        raise ValueError(f"configs must have shape (..., K, N), got shape {configs.shape}")
    tokens = (configs < 0).astype(jnp.int32)
    return tokens.reshape(configs.shape[:-2] + (configs.shape[-2] * configs.shape[-1],))


def tokens_to_spins(tokens, n_states: int, n_sites: int) -> jnp.ndarray:
    """Tokens ``(..., K * N)`` -> +-1 configurations ``(..., K, N)`` int8 (inverse of :func:`spins_to_tokens`)."""
    tokens = jnp.asarray(tokens)
    if tokens.ndim < 1 or tokens.shape[-1] != n_states * n_sites:
        raise ValueError(
            f"tokens must have shape (..., K * N) = (..., {n_states * n_sites}), got shape {tokens.shape}"
        )
    spins = (1 - 2 * tokens.astype(jnp.int32)).astype(jnp.int8)
    return spins.reshape(tokens.shape[:-1] + (n_states, n_sites))


def random_block_permutation(key, tokens, n_states: int, n_sites: int) -> jnp.ndarray:
    """Randomly permute the ``K`` blocks (states) of every row (paper section 3.3).

    ``tokens``: ``(B, K * N)``; returns the same shape and dtype, where row ``b`` is
    ``concat(block[perm_b[0]], ..., block[perm_b[K-1]])`` with an independent random ``perm_b``.
    """
    tokens = jnp.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] != n_states * n_sites:
        raise ValueError(
            f"tokens must have shape (B, K * N) = (B, {n_states * n_sites}), got shape {tokens.shape}"
        )
    batch = tokens.shape[0]
    blocks = tokens.reshape(batch, n_states, n_sites)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n_states))(jax.random.split(key, batch))
    blocks = jnp.take_along_axis(blocks, perms[:, :, None], axis=1)
    return blocks.reshape(batch, n_states * n_sites)


KV_BLOCK = 16
"""Cache block length (positions) of KV-cached sampling (:func:`default_block_size`)."""

TRAIN_CHUNK = 16
"""Rows per chunk of full causal passes (``log_prob_batch``, :func:`forward_kl_value_and_grad`).

16 rather than 32: one forward-KL value and gradient of 512 rows (float32, embed 32, 4 heads, 2
layers, one core of a 2-core Intel Xeon, fastest of 7) took 93 / 103 ms at ``T = 48``, 373 / 455
ms at ``T = 108``, 1.00 / 1.02 s at ``T = 192`` and 34 / 33 ms at ``T = 18`` in chunks of 16 / 32
(64 was slower at 48 and 108)."""


# --------------------------------------------------------------------------- helpers
def _apply(module, x):
    """Apply a module acting on the last axis (``(d_in,) -> (d_out,)``) to ``x`` of shape ``(..., d_in)``.

    ``eqx.nn.Linear`` and ``eqx.nn.LayerNorm`` are applied with their own parameters as one matmul /
    one reduction over the last axis (same maths as their ``__call__``, a leaner graph than a
    ``vmap``; the norm by :func:`nirbench.models.layers.layer_norm`); any other module is vmapped.
    """
    if (
        isinstance(module, eqx.nn.Linear)
        and module.in_features != "scalar"
        and module.out_features != "scalar"
    ):
        y = x @ module.weight.T
        return y + module.bias if module.bias is not None else y
    if isinstance(module, eqx.nn.LayerNorm):
        return layer_norm(module, x)
    flat = x.reshape((-1, x.shape[-1]))
    out = jax.vmap(module)(flat)
    return out.reshape(x.shape[:-1] + out.shape[-1:])


def _uniforms(key, n: int, n_tokens: int, dtype) -> jnp.ndarray:
    """The random numbers of both samplers: shape ``(T, n)``; row ``i`` is drawn from ``split(key, T)[i]``.

    Binary tokens: token ``i`` of sample ``b`` is 1 iff ``u[i, b] < p(t_i = 1 | t_<i)``; a vocabulary
    of ``V`` values: the smallest ``c`` with ``u[i, b] < p(t_i <= c | t_<i)`` (:func:`_draw`).
    """
    keys = jax.random.split(key, n_tokens)
    return jax.vmap(lambda k: jax.random.uniform(k, (n,), dtype=dtype))(keys)


class CausalSelfAttention(eqx.Module):
    """Multi-head causal self-attention with separate q, k, v, output projections ``(D,) -> (D,)``."""

    query: eqx.nn.Linear
    key: eqx.nn.Linear
    value: eqx.nn.Linear
    output: eqx.nn.Linear
    n_heads: int = eqx.field(static=True)

    def __init__(self, embed_dim: int, n_heads: int, dtype=None, *, key):
        kq, kk, kv, ko = jax.random.split(key, 4)
        self.query = eqx.nn.Linear(embed_dim, embed_dim, dtype=dtype, key=kq)
        self.key = eqx.nn.Linear(embed_dim, embed_dim, dtype=dtype, key=kk)
        self.value = eqx.nn.Linear(embed_dim, embed_dim, dtype=dtype, key=kv)
        self.output = eqx.nn.Linear(embed_dim, embed_dim, dtype=dtype, key=ko)
        self.n_heads = n_heads

    def _heads(self, module, x):
        """``(..., D)`` -> projected and split into heads ``(..., H, D / H)``."""
        y = _apply(module, x)
        return y.reshape(y.shape[:-1] + (self.n_heads, y.shape[-1] // self.n_heads))

    def __call__(self, x):
        """Full causal pass: ``x (L, D)`` -> ``(L, D)``; position ``i`` attends to positions ``<= i``."""
        length, dim = x.shape
        q, k, v = (self._heads(m, x) for m in (self.query, self.key, self.value))  # (L, H, hd)
        scores = jnp.einsum("ihd,jhd->hij", q, k) / math.sqrt(dim // self.n_heads)
        causal = jnp.tril(jnp.ones((length, length), dtype=bool))
        weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
        out = jnp.einsum("hij,jhd->ihd", weights, v).reshape(length, dim)
        return _apply(self.output, out)

    def step(self, x, k_cache, v_cache, j):
        """One cached step for a batch.

        ``x``: ``(n, D)`` inputs at position ``j``. ``k_cache``, ``v_cache``: ``(n, H, S, hd)`` keys
        and values of positions ``0 .. S - 1`` (``S > j``); slots ``> j`` are not yet filled and
        are masked. Returns ``(out (n, D), k_cache, v_cache)`` with slot ``j`` filled.
        """
        n, dim = x.shape
        q, k, v = (self._heads(m, x) for m in (self.query, self.key, self.value))  # (n, H, hd)
        k_cache = lax.dynamic_update_slice(k_cache, k[:, :, None, :], (0, 0, j, 0))
        v_cache = lax.dynamic_update_slice(v_cache, v[:, :, None, :], (0, 0, j, 0))
        scores = jnp.einsum("nhd,nhtd->nht", q, k_cache) / math.sqrt(dim // self.n_heads)
        filled = jnp.arange(k_cache.shape[2]) <= j
        weights = jax.nn.softmax(jnp.where(filled, scores, -jnp.inf), axis=-1)
        out = jnp.einsum("nht,nhtd->nhd", weights, v_cache)
        return _apply(self.output, out.reshape(n, dim)), k_cache, v_cache


class TransformerBlock(eqx.Module):
    """Pre-LayerNorm block: ``x += MHA(LN(x))``; ``x += W2 GELU(W1 LN(x))`` (hidden ``4 D``)."""

    norm1: eqx.nn.LayerNorm
    attention: CausalSelfAttention
    norm2: eqx.nn.LayerNorm
    mlp_in: eqx.nn.Linear
    mlp_out: eqx.nn.Linear

    def __init__(self, embed_dim: int, n_heads: int, dtype=None, *, key):
        ka, k1, k2 = jax.random.split(key, 3)
        self.norm1 = eqx.nn.LayerNorm(embed_dim, dtype=dtype)
        self.attention = CausalSelfAttention(embed_dim, n_heads, dtype=dtype, key=ka)
        self.norm2 = eqx.nn.LayerNorm(embed_dim, dtype=dtype)
        self.mlp_in = eqx.nn.Linear(embed_dim, 4 * embed_dim, dtype=dtype, key=k1)
        self.mlp_out = eqx.nn.Linear(4 * embed_dim, embed_dim, dtype=dtype, key=k2)

    def _mlp(self, x):
        return _apply(self.mlp_out, jax.nn.gelu(_apply(self.mlp_in, _apply(self.norm2, x))))

    def __call__(self, x):
        """``x (L, D)`` -> ``(L, D)`` (full causal pass)."""
        x = x + self.attention(_apply(self.norm1, x))
        return x + self._mlp(x)

    def step(self, x, k_cache, v_cache, j):
        """``x (n, D)`` at position ``j`` -> ``(x, k_cache, v_cache)`` (see ``CausalSelfAttention.step``)."""
        h, k_cache, v_cache = self.attention.step(_apply(self.norm1, x), k_cache, v_cache, j)
        x = x + h
        return x + self._mlp(x), k_cache, v_cache


# --------------------------------------------------------------------------- the proposal
class TransformerProposal(eqx.Module):
    """Autoregressive Transformer ``q(t)`` over ``T = n_tokens`` tokens (see the module docstring).

    Parameters: ``n_tokens`` (``T = K * N >= 1``), ``embed_dim`` (divisible by ``n_heads``),
    ``n_heads``, ``n_layers``, ``p_floor`` in ``[0, 1 / V)``, ``head_scale`` (see below),
    ``vocab_size`` ``V >= 2`` (token values ``0 .. V - 1``; 2, binary, by default), ``key``; ``dtype`` of the parameters
    (default: JAX's default float, float64 under nirbench). Raises ``ValueError`` naming the bad
    argument.

    Initialisation: Equinox defaults for the Linear/LayerNorm/Embedding layers (token embeddings
    ``N(0, 1)``); the start vector and the positional embeddings are also ``N(0, 1)`` (with GPT's
    0.02 the positions are nearly indistinguishable and a small model learns position-dependent
    conditionals much more slowly). The output head's Equinox initialisation is multiplied by
    ``head_scale``; the default ``0`` starts ``q`` exactly uniform (every conditional 1/2), which
    matches a freshly initialised, nearly uniform NQS: with the raw Equinox head (``head_scale=1``)
    ``q`` starts far from uniform, and on 4x4 TFI with K = 3 the first NIR iterations then fell
    below ``alpha_eff`` (efficiency 0.04-0.10 instead of 0.33 with a uniform start).
    """

    token_embedding: eqx.nn.Embedding
    start: jax.Array
    positions: jax.Array
    blocks: list
    final_norm: eqx.nn.LayerNorm
    head: eqx.nn.Linear
    n_tokens: int = eqx.field(static=True)
    embed_dim: int = eqx.field(static=True)
    n_heads: int = eqx.field(static=True)
    n_layers: int = eqx.field(static=True)
    p_floor: float = eqx.field(static=True)
    vocab_size: int = eqx.field(static=True)

    def __init__(
        self,
        n_tokens: int,
        embed_dim: int = 32,
        n_heads: int = 4,
        n_layers: int = 4,
        p_floor: float = 1e-4,
        head_scale: float = 0.0,
        vocab_size: int = 2,
        *,
        key,
        dtype=None,
    ):
        if int(n_tokens) != n_tokens or n_tokens < 1:
            raise ValueError(f"n_tokens must be an integer >= 1, got {n_tokens}")
        if n_heads < 1 or embed_dim < 1 or embed_dim % n_heads:
            raise ValueError(
                f"embed_dim must be a positive multiple of n_heads, got embed_dim={embed_dim}, n_heads={n_heads}"
            )
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        if int(vocab_size) != vocab_size or vocab_size < 2:
            raise ValueError(f"vocab_size must be an integer >= 2, got {vocab_size}")
        if not 0.0 <= p_floor < 1.0 / vocab_size:
            raise ValueError(f"p_floor must be in [0, {1.0 / vocab_size:g}), got p_floor={p_floor}")
        dtype = jnp.dtype(dtype) if dtype is not None else jnp.zeros(0).dtype
        k_emb, k_start, k_pos, k_head, k_blocks = jax.random.split(key, 5)
        self.token_embedding = eqx.nn.Embedding(int(vocab_size), embed_dim, dtype=dtype, key=k_emb)
        self.start = jax.random.normal(k_start, (embed_dim,), dtype=dtype)
        self.positions = jax.random.normal(k_pos, (n_tokens, embed_dim), dtype=dtype)
        self.blocks = [
            TransformerBlock(embed_dim, n_heads, dtype=dtype, key=k)
            for k in jax.random.split(k_blocks, n_layers)
        ]
        self.final_norm = eqx.nn.LayerNorm(embed_dim, dtype=dtype)
        head = eqx.nn.Linear(embed_dim, int(vocab_size), dtype=dtype, key=k_head)
        self.head = eqx.tree_at(lambda h: (h.weight, h.bias), head, (head.weight * head_scale, head.bias * head_scale))
        self.n_tokens = int(n_tokens)
        self.embed_dim = int(embed_dim)
        self.n_heads = int(n_heads)
        self.n_layers = int(n_layers)
        self.p_floor = float(p_floor)
        self.vocab_size = int(vocab_size)

    # ------------------------------------------------------------------ pieces
    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.n_heads

    @property
    def dtype(self):
        """The parameters' (and the arithmetic's) float dtype."""
        return self.positions.dtype

    def _log_conditionals(self, logits):
        """Logits ``(..., V)`` -> floored log conditionals ``log p(t_i = c | t_<i)``, shape ``(..., V)``."""
        log_soft = jax.nn.log_softmax(logits, axis=-1)
        if self.p_floor == 0.0:
            return log_soft
        return jnp.logaddexp(math.log(self.p_floor), math.log1p(-self.vocab_size * self.p_floor) + log_soft)

    def _readout(self, x):
        """Hidden states ``(..., D)`` -> log conditionals ``(..., V)``."""
        return self._log_conditionals(_apply(self.head, _apply(self.final_norm, x)))

    def _embed(self, tokens):
        """Token embeddings ``(...,) -> (..., D)``; for binary tokens written as a select (cheaper than a
        gather and its scatter)."""
        weight = self.token_embedding.weight
        if self.vocab_size == 2:
            return jnp.where(tokens[..., None] == 1, weight[1], weight[0])
        return jnp.take(weight, tokens, axis=0)

    def _check_tokens(self, tokens):
        if tokens.shape[-1] != self.n_tokens:
            raise ValueError(f"tokens must have last axis T = {self.n_tokens}, got shape {tokens.shape}")

    def log_conditionals(self, tokens):
        """One parallel causal pass: tokens ``(T,)`` -> ``log p(t_i = c | t_<i)`` of shape ``(T, V)``."""
        tokens = jnp.asarray(tokens)
        self._check_tokens(tokens)
        prev = self._embed(tokens[:-1])  # (T - 1, D)
        x = jnp.concatenate([self.start[None, :], prev], axis=0) + self.positions
        for block in self.blocks:
            x = block(x)
        return self._readout(x)

    # ------------------------------------------------------------------ densities
    def log_prob(self, tokens):
        """``log q(tokens)``: tokens ``(T,)`` int -> scalar, ONE causal forward pass.

        Batched use: ``jax.vmap(proposal.log_prob)(tokens_BT)`` or :meth:`log_prob_batch`.
        """
        tokens = jnp.asarray(tokens)
        return jnp.sum(_chosen(self.log_conditionals(tokens), tokens))

    def log_prob_batch(self, tokens):
        """``log q`` of a batch: tokens ``(B, T)`` -> ``(B,)`` (``jax.vmap`` of :meth:`log_prob`, jitted)."""
        return _log_prob_batch(self, jnp.asarray(tokens))

    # ------------------------------------------------------------------ sampling
    def sample(self, key, n: int, block_size: int | None = None):
        """Draw ``n`` strings with the key/value cache. Returns ``(tokens (n, T) int32, log_q (n,))``.

        One token per step inside ``lax.scan``. The cache holds, per layer, keys and values of shape
        ``(n, H, S, hd)``, written in place with ``lax.dynamic_update_slice``; step ``i`` attends
        to the cached keys/values of positions ``<= i`` (unfilled slots masked); no full forward
        pass is ever made. The positions are split into blocks of ``block_size`` (default
        :func:`default_block_size`), one ``lax.scan`` per block: block ``b``'s cache holds the
        positions up to the end of block ``b`` only, so a step reads about ``i`` slots, not ``T``
        (half the attention work over a whole draw; each block compiles its own step). ``n`` and
        ``block_size`` are static; the call is jitted (``eqx.filter_jit``) and may be used inside
        an outer ``jit``. ``log_q`` equals :meth:`log_prob_batch` of the returned tokens up to
        round-off. Uses the same random numbers as :meth:`sample_naive` (see :func:`_uniforms`),
        so both return the same tokens for the same key, whatever ``block_size``.
        """
        return _sample_kv(self, key, int(n), None if block_size is None else int(block_size))

    def sample_naive(self, key, n: int):
        """Reference sampler: a full causal forward pass of the whole ``(n, T)`` buffer at every position.

        Same outputs as :meth:`sample` for the same key (same uniforms; future positions of the
        buffer hold zeros and are hidden by the causal mask). ``O(T)`` times more work; for tests
        and benchmarks only.
        """
        return _sample_naive(self, key, int(n))


class ProductProposal(eqx.Module):
    """``q(t) = prod_k q_1(t^(k))``: one :class:`TransformerProposal` ``q_1`` over the ``N`` tokens of
    a single configuration, applied to each of the ``K`` blocks of a tuple (beyond the paper).

    The paper's proposal is one Transformer over all ``T = K * N`` tokens of a tuple. This one models
    only the one-configuration marginal of ``|Psi|^2`` (for the determinant ansatz, the density
    ``rho(s) = (1/K) sum_k |phi_k(s)|^2`` of the orthonormalised states); the determinant's
    correlations between the ``K`` configurations are left to the importance weights. For exact
    orthonormal levels the infinite-sample efficiency of ``prod_k rho(s_k)`` is 0.22-0.44 on 3x2 and
    3x3 TFI (``K!/K^K = 0.22`` in the degenerate limit), while ``q_1`` has ``K`` times fewer tokens to
    fit and to draw. Symmetric under permutations of the blocks by construction. Measured on the 6x6
    ordering NQS, it fits no better than the joint proposal (efficiency 0.02-0.03 either way) and
    NIR stalls the same way with it (docs/nir-keeping-up.md); it is a diagnostic, not the recipe.

    Same interface as :class:`TransformerProposal`: tokens ``(..., T)`` with ``T = K * N`` (state
    ``k``'s block at ``t[k N : (k + 1) N]``), ``log_prob (T,) -> ()``, ``log_prob_batch (B, T) -> (B,)``,
    ``sample(key, n) -> (tokens (n, T), log_q (n,))`` (``n K`` independent draws of ``q_1``, grouped
    in consecutive ``K``).
    """

    single: TransformerProposal
    n_states: int = eqx.field(static=True)

    def __init__(self, single: TransformerProposal, n_states: int):
        if int(n_states) != n_states or n_states < 1:
            raise ValueError(f"n_states must be an integer >= 1, got {n_states}")
        self.single = single
        self.n_states = int(n_states)

    @property
    def n_tokens(self) -> int:
        return self.n_states * self.single.n_tokens

    @property
    def dtype(self):
        return self.single.dtype

    def _blocks(self, tokens):
        """``(..., K N)`` -> ``(..., K, N)``, checking the length."""
        tokens = jnp.asarray(tokens)
        if tokens.shape[-1] != self.n_tokens:
            raise ValueError(f"tokens must have last axis T = {self.n_tokens}, got shape {tokens.shape}")
        return tokens.reshape(tokens.shape[:-1] + (self.n_states, self.single.n_tokens))

    def log_prob(self, tokens):
        """``log q(tokens)``: ``(T,)`` -> scalar, the sum over the ``K`` blocks."""
        return jnp.sum(jax.vmap(self.single.log_prob)(self._blocks(tokens)))

    def log_prob_batch(self, tokens):
        """``(B, T)`` -> ``(B,)``: one batched pass of ``q_1`` over the ``B K`` configurations."""
        blocks = self._blocks(tokens)
        batch = blocks.shape[0]
        log_q = self.single.log_prob_batch(blocks.reshape(batch * self.n_states, -1))
        return jnp.sum(log_q.reshape(batch, self.n_states), axis=1)

    def _group(self, tokens, log_q, n: int):
        return tokens.reshape(n, self.n_tokens), jnp.sum(log_q.reshape(n, self.n_states), axis=1)

    def sample(self, key, n: int, block_size: int | None = None):
        """``n`` tuples from ``n K`` KV-cached draws of ``q_1`` (see :meth:`TransformerProposal.sample`)."""
        tokens, log_q = self.single.sample(key, int(n) * self.n_states, block_size)
        return self._group(tokens, log_q, int(n))

    def sample_naive(self, key, n: int):
        """Reference sampler; the same tuples as :meth:`sample` for the same key."""
        tokens, log_q = self.single.sample_naive(key, int(n) * self.n_states)
        return self._group(tokens, log_q, int(n))


class PatchedProposal(eqx.Module):
    """``q`` over ``T`` binary tokens read in patches: ``p`` consecutive tokens (spins) are one token
    of value ``sum_j t_j 2^(p - 1 - j)`` (the first spin the most significant bit) of an inner
    :class:`TransformerProposal` over ``T / p`` positions and ``2**p`` values (beyond the paper).

    The same distribution family as a binary Transformer, but each autoregressive step draws ``p``
    spins jointly, from a full table of ``2**p`` conditionals: the inner model has ``p`` times fewer
    positions to attend over and to draw (attention work ``p**2`` times smaller), so a wider one costs
    what the binary one does; patches of neighbouring sites see their short-range correlations
    exactly. Patches never straddle two configurations when ``p`` divides ``N`` (checked by the
    sampler that builds it).

    Same interface as :class:`TransformerProposal` on binary tokens ``(..., T)``: ``log_prob (T,) ->
    ()``, ``log_prob_batch (B, T) -> (B,)``, ``sample(key, n) -> (tokens (n, T), log_q (n,))``,
    ``sample_naive``, ``n_tokens``, ``dtype``.
    """

    inner: TransformerProposal
    patch: int = eqx.field(static=True)

    def __init__(self, inner: TransformerProposal, patch: int):
        if int(patch) != patch or patch < 1:
            raise ValueError(f"patch must be an integer >= 1, got {patch}")
        if inner.vocab_size != 2**patch:
            raise ValueError(f"a patch of {patch} spins needs an inner vocabulary of {2**patch}, got {inner.vocab_size}")
        self.inner = inner
        self.patch = int(patch)

    @property
    def n_tokens(self) -> int:
        return self.inner.n_tokens * self.patch

    @property
    def dtype(self):
        return self.inner.dtype

    def pack(self, tokens):
        """Binary tokens ``(..., T)`` -> patch tokens ``(..., T / p)`` int32."""
        tokens = jnp.asarray(tokens)
        if tokens.shape[-1] != self.n_tokens:
            raise ValueError(f"tokens must have last axis T = {self.n_tokens}, got shape {tokens.shape}")
        bits = tokens.reshape(tokens.shape[:-1] + (self.inner.n_tokens, self.patch)).astype(jnp.int32)
        return jnp.sum(bits << jnp.arange(self.patch - 1, -1, -1, dtype=jnp.int32), axis=-1)

    def unpack(self, patches):
        """Patch tokens ``(..., T / p)`` -> binary tokens ``(..., T)`` int32 (inverse of :meth:`pack`)."""
        patches = jnp.asarray(patches, dtype=jnp.int32)
        bits = (patches[..., None] >> jnp.arange(self.patch - 1, -1, -1, dtype=jnp.int32)) & 1
        return bits.reshape(patches.shape[:-1] + (self.n_tokens,))

    def log_prob(self, tokens):
        """``log q(tokens)``: binary ``(T,)`` -> scalar."""
        return self.inner.log_prob(self.pack(tokens))

    def log_prob_batch(self, tokens):
        """Binary ``(B, T)`` -> ``(B,)``."""
        return self.inner.log_prob_batch(self.pack(tokens))

    def sample(self, key, n: int, block_size: int | None = None):
        """``n`` binary strings from the inner KV-cached sampler (``block_size`` in patch positions)."""
        patches, log_q = self.inner.sample(key, n, block_size)
        return self.unpack(patches), log_q

    def sample_naive(self, key, n: int):
        """Reference sampler; the same strings as :meth:`sample` for the same key."""
        patches, log_q = self.inner.sample_naive(key, n)
        return self.unpack(patches), log_q


@eqx.filter_jit
def _log_prob_batch(model: TransformerProposal, tokens):
    """``log_prob`` vmapped over chunks of ``TRAIN_CHUNK`` rows (``lax.map`` with ``batch_size``): one
    chunk's ``(chunk, H, T, T)`` attention matrices at a time. At ``T = 192``, ``B = 512`` (one core,
    float32) 4.9 s at once against 2.7 s in chunks; at ``T = 18`` 0.055 s against 0.063 s
    (``benchmarks/proposal_speed.py``)."""
    return lax.map(model.log_prob, tokens, batch_size=TRAIN_CHUNK)


def _chosen(log_cond, tokens):
    """Log conditionals ``(..., V)`` and tokens ``(...)`` -> the log conditional of each token, ``(...)``."""
    if log_cond.shape[-1] == 2:
        return jnp.where(tokens == 1, log_cond[..., 1], log_cond[..., 0])
    return jnp.take_along_axis(log_cond, tokens[..., None], axis=-1)[..., 0]


def _draw(log_cond, u):
    """Log conditionals ``(n, V)`` and uniforms ``(n,)`` -> (tokens ``(n,)`` int32, their log prob ``(n,)``).

    Inverse CDF: token ``c`` for ``P(t <= c - 1) <= u < P(t <= c)`` (the last value takes what
    round-off leaves above the sum); binary tokens: 1 iff ``u < p(1)``.
    """
    if log_cond.shape[-1] == 2:
        token = (u < jnp.exp(log_cond[:, 1])).astype(jnp.int32)
    else:
        below = jnp.cumsum(jnp.exp(log_cond[:, :-1]), axis=-1)  # P(t <= c), c < V - 1
        token = jnp.sum(u[:, None] >= below, axis=-1).astype(jnp.int32)
    return token, _chosen(log_cond, token)


def default_block_size(n_tokens: int) -> int:
    """Cache block length of :meth:`TransformerProposal.sample` when none is given: ``KV_BLOCK``
    positions (one block of ``n_tokens`` when that is shorter).

    Measured on one core of a 2-core Intel Xeon (AVX-512), float32, ``n = 512``, embed 32, 4 heads,
    2 layers, fastest of 10 (a throwaway script of ``sample`` with ``block_size`` given): ``T = 48``
    45 ms in one block, 39 ms in blocks of 24, 37 ms in blocks of 16, 36 ms in blocks of 8;
    ``T = 32`` 25 -> 22 ms (16); ``T = 108`` 179 -> 134 ms (16) and 137 ms (24); ``T = 192``
    369 ms with 16 or 24; ``T = 18`` 11 ms either way. The attention over the cache is most of a
    draw's time (without it ``T = 48`` takes 13 ms), and a block's steps read only the slots up to
    its end. Earlier, on a 2-core AMD EPYC with 4 layers: ``T = 192`` 3.4 s -> 2.2 s in blocks of
    24, ``T = 48`` no gain from two blocks (``benchmarks/proposal_speed.py``).
    """
    return min(KV_BLOCK, int(n_tokens))


@eqx.filter_jit
def _sample_kv(model: TransformerProposal, key, n: int, block_size: int | None = None):
    t_len, dim = model.n_tokens, model.embed_dim
    dtype = model.dtype
    block = default_block_size(t_len) if block_size is None else int(block_size)
    if block < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    u = _uniforms(key, n, t_len, dtype)
    x_in = jnp.broadcast_to(model.start, (n, dim))
    log_q = jnp.zeros(n, dtype=dtype)
    # per layer: keys and values of the positions so far, (n, H, S, hd), S = end of the current block
    k_cache = tuple(jnp.zeros((n, model.n_heads, 0, model.head_dim), dtype=dtype) for _ in model.blocks)
    v_cache = k_cache

    def step(carry, inputs):
        x_in, k_cache, v_cache, log_q = carry
        j, u_i, pos_i = inputs
        x = x_in + pos_i
        new_k, new_v = [], []
        for block_module, k_l, v_l in zip(model.blocks, k_cache, v_cache):
            x, k_l, v_l = block_module.step(x, k_l, v_l, j)
            new_k.append(k_l)
            new_v.append(v_l)
        token, log_p = _draw(model._readout(x), u_i)
        return (model._embed(token), tuple(new_k), tuple(new_v), log_q + log_p), token

    chunks = []
    for start in range(0, t_len, block):
        stop = min(start + block, t_len)
        # the cache grows by one block of empty slots; this block's steps attend to positions < stop
        grow = functools.partial(_append_empty_slots, size=stop - start)
        k_cache, v_cache = tuple(map(grow, k_cache)), tuple(map(grow, v_cache))
        inputs = (jnp.arange(start, stop), u[start:stop], model.positions[start:stop])
        (x_in, k_cache, v_cache, log_q), tokens = lax.scan(step, (x_in, k_cache, v_cache, log_q), inputs)
        chunks.append(tokens)
    tokens = jnp.concatenate(chunks, axis=0)  # (T, n)
    return tokens.T.astype(jnp.int32), log_q


def _append_empty_slots(cache, size: int):
    """``(n, H, S, hd)`` -> ``(n, H, S + size, hd)`` with zeros in the new slots."""
    n, heads, _, head_dim = cache.shape
    return jnp.concatenate([cache, jnp.zeros((n, heads, size, head_dim), cache.dtype)], axis=2)


@eqx.filter_jit
def _sample_naive(model: TransformerProposal, key, n: int):
    t_len = model.n_tokens
    dtype = model.dtype
    u = _uniforms(key, n, t_len, dtype)
    batched = jax.vmap(model.log_conditionals)

    def step(carry, inputs):
        tokens, log_q = carry
        i, u_i = inputs
        log_cond = lax.dynamic_index_in_dim(batched(tokens), i, axis=1, keepdims=False)  # (n, V)
        token, log_p = _draw(log_cond, u_i)
        tokens = lax.dynamic_update_index_in_dim(tokens, token, i, axis=1)
        return (tokens, log_q + log_p), None

    init = (jnp.zeros((n, t_len), dtype=jnp.int32), jnp.zeros(n, dtype=dtype))
    (tokens, log_q), _ = lax.scan(step, init, (jnp.arange(t_len), u))
    return tokens, log_q


# --------------------------------------------------------------------------- training
def forward_kl_loss(proposal: TransformerProposal, tokens, weights=None):
    """Forward-KL loss (paper eq. 9, gradient eq. 11): ``-mean log q(tokens)``.

    ``tokens``: ``(B, T)`` samples from the target ``p`` (the resampled configurations).
    ``weights``: optional ``(B,)`` non-negative weights; then the self-normalised weighted mean
    ``-sum_b w_b log q_b / sum_b w_b`` (e.g. importance weights of proposal samples). Scalar.
    """
    log_q = proposal.log_prob_batch(tokens)
    return -jnp.sum(_row_coefficients(weights, log_q.shape[0], log_q.dtype) * log_q)


def _row_coefficients(weights, batch: int, dtype) -> jnp.ndarray:
    """The rows' coefficients ``c_b`` of the forward-KL loss ``-sum_b c_b log q_b``, shape ``(B,)``:
    ``1 / B``, or the self-normalised weights ``w_b / sum w``."""
    if weights is None:
        return jnp.full((batch,), 1.0 / batch, dtype=dtype)
    weights = jnp.asarray(weights, dtype=dtype)
    return weights / jnp.sum(weights)


def backward_kl_loss(proposal: TransformerProposal, tokens, log_p):
    """Surrogate for the backward KL (paper eq. 10) whose gradient is the estimator eq. 12.

    ``tokens``: ``(B, T)`` samples from ``q`` itself; ``log_p``: ``(B,)`` unnormalised target log
    probabilities (e.g. ``2 Re log Psi``). Returns
    ``mean(stop_grad(log q - log p - b) * log q)`` with the baseline ``b = mean(log q - log p)``
    (stop-gradient; it removes the unknown normalisation of ``p`` and reduces variance).
    The value itself is not the KL; only its gradient is meaningful.
    """
    log_q = proposal.log_prob_batch(tokens)
    diff = lax.stop_gradient(log_q - jnp.asarray(log_p, dtype=log_q.dtype))
    return jnp.mean((diff - jnp.mean(diff)) * log_q)


@functools.cache
def make_proposal_optimizer(learning_rate: float = 1e-3) -> optax.GradientTransformation:
    """Adam for the proposal. Initialise with ``opt.init(eqx.filter(proposal, eqx.is_inexact_array))``.

    Cached per learning rate: the optimiser is a static argument of the jitted :func:`train_step`,
    so returning the same object avoids recompiling for every new run.
    """
    return optax.adam(learning_rate)


def apply_grads(proposal, opt_state, optimizer, grads):
    """One ``optimizer`` step of ``proposal`` along ``grads`` (its inexact-array leaves): ``(proposal, opt_state)``."""
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(proposal, eqx.is_inexact_array))
    return eqx.apply_updates(proposal, updates), opt_state


def forward_kl_value_and_grad(proposal: TransformerProposal, tokens, weights=None, chunk: int = TRAIN_CHUNK):
    """Value and gradient of :func:`forward_kl_loss`, accumulated over chunks of ``chunk`` rows.

    ``tokens`` ``(B, T)``, ``weights`` optional ``(B,)``. The loss is a weighted sum over rows,
    ``-sum_b c_b log q_b`` with ``c_b = w_b / sum w`` (or ``1 / B``), so its gradient is the sum of
    the chunks' gradients; a ``lax.scan`` over the chunks (rows padded with weight zero) keeps the
    ``(chunk, H, T, T)`` attention matrices of one chunk alive at a time instead of ``B`` of them.
    Measured with ``B = 512`` weighted rows (one core, float32, ``benchmarks/proposal_speed.py``):
    at ``T = 18 / 48 / 108 / 192`` 0.35 / 0.90 / 2.95 / 6.6 s for the whole batch at once against
    0.22 / 0.67 / 2.15 / 4.6 s in chunks of 32. Returns ``(loss, grads)`` like
    ``eqx.filter_value_and_grad(forward_kl_loss)``; equal to it up to round-off.
    """
    tokens = jnp.asarray(tokens)
    batch = tokens.shape[0]
    coef = _row_coefficients(weights, batch, proposal.dtype)
    # padding rows repeat the last row (a finite log q) and carry weight zero
    tokens = row_chunks(tokens, chunk)
    coef = jnp.pad(coef, (0, tokens.shape[0] * chunk - batch)).reshape(tokens.shape[:2])
    params, static = eqx.partition(proposal, eqx.is_inexact_array)

    def chunk_loss(params, tokens_c, coef_c):
        return -jnp.sum(coef_c * eqx.combine(params, static).log_prob_batch(tokens_c))

    def add_chunk(total, chunk_inputs):
        loss, grads = jax.value_and_grad(chunk_loss)(params, *chunk_inputs)
        return jax.tree_util.tree_map(jnp.add, total, (loss, grads)), None

    zeros = (jnp.zeros((), dtype=coef.dtype), jax.tree_util.tree_map(jnp.zeros_like, params))
    (loss, grads), _ = lax.scan(add_chunk, zeros, (tokens, coef))
    return loss, grads


@eqx.filter_jit
def train_step(proposal: TransformerProposal, opt_state, optimizer, tokens, weights=None):
    """One optimiser step on :func:`forward_kl_loss`. Returns ``(proposal, opt_state, loss)``.

    ``tokens`` ``(B, T)`` from the target; ``weights`` optional ``(B,)``. Gradients w.r.t. the
    inexact-array leaves of ``proposal``, accumulated in chunks (:func:`forward_kl_value_and_grad`).
    """
    loss, grads = forward_kl_value_and_grad(proposal, tokens, weights)
    proposal, opt_state = apply_grads(proposal, opt_state, optimizer, grads)
    return proposal, opt_state, loss


@eqx.filter_jit
def backward_train_step(proposal: TransformerProposal, opt_state, optimizer, tokens, log_p):
    """One optimiser step on :func:`backward_kl_loss` (``tokens`` ``(B, T)`` from ``q``, ``log_p`` ``(B,)``).

    Returns ``(proposal, opt_state, loss)`` where ``loss`` is the surrogate value.
    """
    loss, grads = eqx.filter_value_and_grad(backward_kl_loss)(proposal, tokens, log_p)
    proposal, opt_state = apply_grads(proposal, opt_state, optimizer, grads)
    return proposal, opt_state, loss


# --------------------------------------------------------------------------- benchmark helper
def time_sampling(
    n_tokens: int,
    batch: int,
    embed_dim: int = 32,
    n_heads: int = 4,
    n_layers: int = 4,
    repeats: int = 3,
    naive: bool = False,
    seed: int = 0,
) -> float:
    """Median wall-clock seconds of one ``sample`` (or ``sample_naive``) call of ``batch`` strings.

    Compilation is excluded (ahead-of-time ``lower().compile()``); every call is followed by
    ``block_until_ready``. Model: ``TransformerProposal(n_tokens, embed_dim, n_heads, n_layers)``
    with default ``p_floor``, parameters from ``PRNGKey(seed)``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    key = jax.random.PRNGKey(seed)
    model = TransformerProposal(n_tokens, embed_dim, n_heads, n_layers, key=key)
    sampler = _sample_naive if naive else _sample_kv
    # compile ahead of time (no throw-away run: the naive sampler is slow at large T)
    compiled = sampler.lower(model, key, int(batch)).compile()
    times = []
    for r in range(repeats):
        sample_key = jax.random.PRNGKey(seed + 1 + r)
        start = time.perf_counter()
        jax.block_until_ready(compiled(model, sample_key, int(batch)))
        times.append(time.perf_counter() - start)
    return float(np.median(times))
