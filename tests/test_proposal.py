"""Tests of the Transformer proposal: normalisation, KV cache vs naive sampling, floor, training."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp

import nirbench  # noqa: F401  (enables x64)
from nirbench.proposal import (
    PatchedProposal,
    ProductProposal,
    TransformerProposal,
    backward_kl_loss,
    backward_train_step,
    forward_kl_loss,
    forward_kl_value_and_grad,
    make_proposal_optimizer,
    random_block_permutation,
    spins_to_tokens,
    time_sampling,
    tokens_to_spins,
    train_step,
)
from nirbench.samplers.exact import chi_square_pvalue

# head_scale=1: the raw Equinox head, so an untrained q is already non-uniform
SMALL = {"embed_dim": 16, "n_heads": 2, "n_layers": 2, "head_scale": 1.0}


def all_strings(t_len):
    return jnp.array(list(itertools.product([0, 1], repeat=t_len)), dtype=jnp.int32)


def scale_head(model, factor):
    return eqx.tree_at(lambda m: m.head.weight, model, model.head.weight * factor)


@pytest.fixture(scope="module")
def model12():
    return TransformerProposal(12, **SMALL, key=jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def sharp12(model12):
    """An untrained network whose conditionals are far from 1/2 and depend on the context."""
    return scale_head(model12, 4.0)


def test_sample_log_q_matches_log_prob(model12):
    tokens, log_q = model12.sample(jax.random.PRNGKey(1), 64)
    assert tokens.shape == (64, 12) and tokens.dtype == jnp.int32
    assert log_q.shape == (64,) and log_q.dtype == jnp.float64
    assert set(np.unique(tokens)) <= {0, 1}
    np.testing.assert_allclose(log_q, model12.log_prob_batch(tokens), rtol=0, atol=1e-10)
    # usable inside an outer jit with static n
    tokens_jit, _ = eqx.filter_jit(lambda m, k: m.sample(k, 64))(model12, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(tokens_jit, tokens)


@pytest.mark.parametrize("t_len", [6, 10])
def test_q_is_normalised(t_len):
    model = TransformerProposal(t_len, **SMALL, key=jax.random.PRNGKey(t_len))
    model = scale_head(model, 4.0)  # a non-uniform q
    log_q = model.log_prob_batch(all_strings(t_len))
    assert float(jnp.std(log_q)) > 0.5
    assert abs(float(jnp.exp(logsumexp(log_q))) - 1.0) < 1e-10


@pytest.mark.parametrize(("sharp", "block_size"), [(False, None), (True, None), (True, 5)])
def test_kv_cache_equals_naive(model12, sharp12, sharp, block_size):
    """KV-cache and naive samplers agree exactly; block_size=5 splits T=12 into cache blocks 5, 5, 2."""
    model = sharp12 if sharp else model12
    key = jax.random.PRNGKey(7)
    tokens, log_q = model.sample(key, 64, block_size=block_size)
    tokens_naive, log_q_naive = model.sample_naive(key, 64)
    np.testing.assert_array_equal(tokens, tokens_naive)
    np.testing.assert_allclose(log_q, log_q_naive, rtol=0, atol=1e-10)
    np.testing.assert_allclose(log_q, model.log_prob_batch(tokens), rtol=0, atol=1e-10)
    if sharp:
        # the check has teeth: conditionals are far from 1/2 and depend on the context,
        # so tokens follow the network, not just the uniforms
        log_cond = eqx.filter_jit(lambda m, t: jax.vmap(m.log_conditionals)(t))(model, tokens)
        p_one = jnp.exp(log_cond[..., 1])
        assert float(jnp.mean(jnp.abs(p_one - 0.5) > 0.4)) > 0.2
        assert float(jnp.mean(jnp.std(p_one, axis=0))) > 0.1
        assert len({tuple(row) for row in np.asarray(tokens)}) > 20


def test_default_initialisation_is_uniform():
    model = TransformerProposal(6, embed_dim=16, n_heads=2, n_layers=2, key=jax.random.PRNGKey(5))
    np.testing.assert_allclose(model.log_prob_batch(all_strings(6)), -6 * np.log(2.0), rtol=0, atol=1e-12)
    # ... and it still learns: the head gets a non-zero gradient
    grads = eqx.filter_jit(eqx.filter_grad(lambda m: -m.log_prob(jnp.zeros(6, dtype=jnp.int32))))(model)
    assert float(jnp.abs(grads.head.weight).max()) > 1e-3


def test_different_keys_give_different_samples(model12):
    a, _ = model12.sample(jax.random.PRNGKey(1), 64)
    b, _ = model12.sample(jax.random.PRNGKey(2), 64)
    assert not np.array_equal(a, b)


def test_p_floor_bounds_q():
    t_len, p_floor = 6, 1e-2
    model = TransformerProposal(t_len, **SMALL, p_floor=p_floor, key=jax.random.PRNGKey(3))
    model = scale_head(model, 1e3)  # saturated softmax
    log_q = model.log_prob_batch(all_strings(t_len))
    assert bool(jnp.all(jnp.isfinite(log_q)))
    assert float(log_q.min()) >= t_len * np.log(p_floor) - 1e-10
    # the floor is active: the least likely string picks the floor at every position
    assert float(log_q.min()) == pytest.approx(t_len * np.log(p_floor), rel=1e-6)
    assert abs(float(jnp.exp(logsumexp(log_q))) - 1.0) < 1e-10
    # without the floor the same network gives (numerically) vanishing probabilities
    no_floor = TransformerProposal(t_len, **SMALL, p_floor=0.0, key=jax.random.PRNGKey(3))
    no_floor = scale_head(no_floor, 1e3)
    assert float(no_floor.log_prob_batch(all_strings(t_len)).min()) < t_len * np.log(p_floor) - 50


@pytest.mark.parametrize("p_floor", [-1e-3, 0.5, 0.7])
def test_bad_p_floor_raises(p_floor):
    with pytest.raises(ValueError, match="p_floor"):
        TransformerProposal(4, **SMALL, p_floor=p_floor, key=jax.random.PRNGKey(0))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="n_heads"):
        TransformerProposal(4, embed_dim=10, n_heads=4, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="n_tokens"):
        TransformerProposal(0, **SMALL, key=jax.random.PRNGKey(0))
    model = TransformerProposal(4, **SMALL, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="T = 4"):
        model.log_prob(jnp.zeros(5, dtype=jnp.int32))


@pytest.fixture(scope="module")
def product():
    """A product proposal over K = 2 blocks of N = 4 tokens, with a non-uniform single-block q_1."""
    return ProductProposal(scale_head(TransformerProposal(4, **SMALL, key=jax.random.PRNGKey(5)), 4.0), 2)


def test_product_proposal_is_the_product_of_its_blocks(product):
    strings = all_strings(8)
    log_q = product.log_prob_batch(strings)
    single = product.single.log_prob_batch(strings.reshape(-1, 4)).reshape(-1, 2)
    np.testing.assert_allclose(log_q, single.sum(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(jax.vmap(product.log_prob)(strings), log_q, rtol=0, atol=1e-12)
    assert product.n_tokens == 8 and float(jnp.std(log_q)) > 0.5
    assert abs(float(jnp.exp(logsumexp(log_q))) - 1.0) < 1e-10  # normalised over the 256 strings


def test_product_proposal_samples_match_its_density(product):
    tokens, log_q = product.sample(jax.random.PRNGKey(2), 4000)
    assert tokens.shape == (4000, 8) and log_q.shape == (4000,)
    np.testing.assert_allclose(log_q, product.log_prob_batch(tokens), rtol=0, atol=1e-10)
    naive, log_q_naive = product.sample_naive(jax.random.PRNGKey(2), 4000)
    np.testing.assert_array_equal(naive, tokens)
    np.testing.assert_allclose(log_q_naive, log_q, rtol=0, atol=1e-10)
    # the two blocks of a tuple are independent draws of q_1: the histogram follows q (chi-square)
    index = np.asarray(tokens) @ (1 << np.arange(7, -1, -1))  # the row of all_strings(8)
    probs = np.exp(np.asarray(product.log_prob_batch(all_strings(8))))
    assert chi_square_pvalue(np.bincount(index, minlength=256), probs) > 1e-3


def test_product_proposal_bad_input(product):
    with pytest.raises(ValueError, match="n_states"):
        ProductProposal(product.single, 0)
    with pytest.raises(ValueError, match="T = 8"):
        product.log_prob(jnp.zeros(4, dtype=jnp.int32))


@pytest.fixture(scope="module")
def patched():
    """Binary strings of T = 8 read in patches of 2: an inner Transformer over 4 positions of 4 values."""
    inner = TransformerProposal(4, **SMALL, vocab_size=4, key=jax.random.PRNGKey(6))
    return PatchedProposal(scale_head(inner, 3.0), 2)


def test_patched_proposal_is_normalised_and_reads_patches(patched):
    strings = all_strings(8)
    log_q = patched.log_prob_batch(strings)
    assert patched.n_tokens == 8 and float(jnp.std(log_q)) > 0.5
    assert abs(float(jnp.exp(logsumexp(log_q))) - 1.0) < 1e-10  # normalised over the 256 strings
    np.testing.assert_allclose(jax.vmap(patched.log_prob)(strings), log_q, rtol=0, atol=1e-12)
    # the inner model sees one token per pair of spins, first spin the most significant bit
    np.testing.assert_array_equal(patched.pack(jnp.array([[0, 1, 1, 0, 1, 1, 0, 0]])), [[1, 2, 3, 0]])
    np.testing.assert_array_equal(patched.unpack(patched.pack(strings)), strings)
    np.testing.assert_allclose(patched.inner.log_prob_batch(patched.pack(strings)), log_q, rtol=0, atol=0)


def test_patched_proposal_samples_match_its_density(patched):
    tokens, log_q = patched.sample(jax.random.PRNGKey(3), 6000)
    assert tokens.shape == (6000, 8) and set(np.unique(tokens)) <= {0, 1}
    np.testing.assert_allclose(log_q, patched.log_prob_batch(tokens), rtol=0, atol=1e-10)
    naive, log_q_naive = patched.sample_naive(jax.random.PRNGKey(3), 6000)
    np.testing.assert_array_equal(naive, tokens)
    np.testing.assert_allclose(log_q_naive, log_q, rtol=0, atol=1e-10)
    index = np.asarray(tokens) @ (1 << np.arange(7, -1, -1))
    probs = np.exp(np.asarray(patched.log_prob_batch(all_strings(8))))
    assert chi_square_pvalue(np.bincount(index, minlength=256), probs) > 1e-3


def test_vocabulary_floor_bounds_every_conditional():
    """With ``V`` values the floor is ``p_floor + (1 - V p_floor) softmax``: every conditional >= p_floor."""
    model = scale_head(TransformerProposal(3, **SMALL, vocab_size=8, p_floor=0.01, key=jax.random.PRNGKey(7)), 50.0)
    log_cond = jax.vmap(model.log_conditionals)(jnp.array([[0, 5, 7], [3, 3, 1]]))
    assert log_cond.shape == (2, 3, 8)
    np.testing.assert_allclose(jnp.exp(logsumexp(log_cond, axis=-1)), 1.0, rtol=0, atol=1e-12)
    assert float(jnp.min(jnp.exp(log_cond))) >= 0.01 * (1 - 1e-12)
    assert float(jnp.max(jnp.exp(log_cond))) > 0.5  # the sharp head is not flattened away


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"vocab_size": 1}, "vocab_size"),
    ({"vocab_size": 4, "p_floor": 0.25}, r"\[0, 0.25\)"),
])  # fmt: skip
def test_bad_vocabulary_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerProposal(4, key=jax.random.PRNGKey(0), **kwargs)


def test_patched_proposal_bad_input(patched):
    with pytest.raises(ValueError, match="inner vocabulary of 8"):
        PatchedProposal(patched.inner, 3)
    with pytest.raises(ValueError, match="patch"):
        PatchedProposal(patched.inner, 0)
    with pytest.raises(ValueError, match="T = 8"):
        patched.log_prob(jnp.zeros(6, dtype=jnp.int32))


def exact_kl(log_p, log_q):
    return float(jnp.sum(jnp.exp(log_p) * (log_p - log_q)))


def test_forward_kl_training_fits_a_known_distribution():
    t_len = 6
    key_target, key_draw, key_model = jax.random.split(jax.random.PRNGKey(11), 3)
    log_p = jax.nn.log_softmax(1.5 * jax.random.normal(key_target, (2**t_len,)))
    strings = all_strings(t_len)
    draws = jax.random.categorical(key_draw, log_p, shape=(2000,))
    samples = strings[draws]
    # T = 6 has only 64 strings: train on them with the sample counts as weights, which is the
    # same loss as the mean over the 2000 samples at 1/30 of the cost
    counts = jnp.bincount(draws, length=2**t_len).astype(jnp.float64)

    model = TransformerProposal(t_len, **SMALL, key=key_model)
    np.testing.assert_allclose(
        forward_kl_loss(model, strings, counts), -jnp.mean(model.log_prob_batch(samples)), rtol=1e-12
    )
    optimizer = make_proposal_optimizer(5e-3)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    kl0 = exact_kl(log_p, model.log_prob_batch(strings))
    losses = []
    for _ in range(300):
        model, opt_state, loss = train_step(model, opt_state, optimizer, strings, counts)
        losses.append(float(loss))
    kl = exact_kl(log_p, model.log_prob_batch(strings))
    assert losses[-1] < losses[0]
    print(f"forward KL {kl0:.4f} -> {kl:.4f}")
    assert kl < 0.5 * kl0 and kl < 0.05, (kl0, kl)


def test_forward_kl_weights_are_self_normalised():
    model = TransformerProposal(6, **SMALL, key=jax.random.PRNGKey(5))
    tokens = all_strings(6)
    log_q = model.log_prob_batch(tokens)
    loss = forward_kl_loss(model, tokens)
    np.testing.assert_allclose(loss, -jnp.mean(log_q), rtol=1e-12)
    np.testing.assert_allclose(forward_kl_loss(model, tokens, 3.0 * jnp.ones(64)), loss, rtol=1e-12)
    weights = jnp.zeros(64).at[3].set(2.0).at[7].set(6.0)
    expected = -(0.25 * log_q[3] + 0.75 * log_q[7])
    np.testing.assert_allclose(forward_kl_loss(model, tokens, weights), expected, rtol=1e-12)
    # the weighted train_step returns the loss before the update
    optimizer = make_proposal_optimizer(5e-3)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    _, _, step_loss = train_step(model, opt_state, optimizer, tokens, weights)
    np.testing.assert_allclose(step_loss, expected, rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_chunked_gradient_equals_the_whole_batch_gradient(weighted):
    """37 rows in chunks of 8 (the last one padded): value and every gradient leaf as at once."""
    model = TransformerProposal(6, **SMALL, key=jax.random.PRNGKey(6))
    tokens = jax.random.bernoulli(jax.random.PRNGKey(7), 0.4, (37, 6)).astype(jnp.int32)
    weights = jax.random.uniform(jax.random.PRNGKey(8), (37,)) if weighted else None
    loss, grads = eqx.filter_value_and_grad(forward_kl_loss)(model, tokens, weights)
    chunked_loss, chunked_grads = forward_kl_value_and_grad(model, tokens, weights, chunk=8)
    np.testing.assert_allclose(chunked_loss, loss, rtol=1e-12)
    leaves, chunked_leaves = jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(chunked_grads)
    assert len(leaves) == len(chunked_leaves) > 0
    for leaf, chunked in zip(leaves, chunked_leaves):
        np.testing.assert_allclose(chunked, leaf, rtol=0, atol=1e-12)


def test_log_prob_batch_in_chunks_equals_one_string_at_a_time(model12):
    """More rows than one chunk, not a multiple of it."""
    tokens = jax.random.bernoulli(jax.random.PRNGKey(9), 0.5, (70, 12)).astype(jnp.int32)
    expected = jnp.stack([model12.log_prob(t) for t in tokens])
    np.testing.assert_allclose(model12.log_prob_batch(tokens), expected, rtol=0, atol=1e-12)


def test_backward_kl_training_reduces_reverse_kl():
    t_len = 6
    strings = all_strings(t_len)
    log_p = jax.nn.log_softmax(1.5 * jax.random.normal(jax.random.PRNGKey(12), (2**t_len,)))
    place = 2 ** jnp.arange(t_len - 1, -1, -1)  # all_strings is in binary order: index = tokens @ place
    model = TransformerProposal(t_len, **SMALL, key=jax.random.PRNGKey(13))
    optimizer = make_proposal_optimizer(1e-2)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    def reverse_kl(m):
        log_q = m.log_prob_batch(strings)
        return exact_kl(log_q, log_p)

    # q = p (up to normalisation): the baseline makes the eq. 12 gradient vanish
    tokens, log_q = model.sample(jax.random.PRNGKey(15), 256)
    grad_fn = eqx.filter_jit(eqx.filter_grad(backward_kl_loss))

    def largest(tree):
        return max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(tree))

    assert largest(grad_fn(model, tokens, log_q + 5.0)) < 1e-12
    assert largest(grad_fn(model, tokens, log_p[tokens @ place])) > 1e-3

    kl0 = reverse_kl(model)
    key = jax.random.PRNGKey(14)
    for _ in range(40):
        key, sub = jax.random.split(key)
        tokens, _ = model.sample(sub, 256)
        target = log_p[tokens @ place] + 2.0  # unnormalised
        model, opt_state, _ = backward_train_step(model, opt_state, optimizer, tokens, target)
    kl = reverse_kl(model)
    print(f"reverse KL {kl0:.4f} -> {kl:.4f}")
    assert kl < 0.5 * kl0, (kl0, kl)


def test_spins_tokens_round_trip():
    rng = np.random.default_rng(0)
    configs = rng.choice(np.array([-1, 1], dtype=np.int8), size=(5, 3, 4))
    tokens = spins_to_tokens(configs)
    assert tokens.shape == (5, 12) and tokens.dtype == jnp.int32
    np.testing.assert_array_equal(tokens[:, :4], (configs[:, 0] == -1).astype(np.int32))
    back = tokens_to_spins(tokens, 3, 4)
    assert back.dtype == jnp.int8
    np.testing.assert_array_equal(back, configs)
    assert int(spins_to_tokens(np.ones((1, 2)))[0]) == 0
    assert int(spins_to_tokens(-np.ones((1, 2)))[0]) == 1
    with pytest.raises(ValueError):
        tokens_to_spins(tokens, 2, 4)


def test_random_block_permutation_permutes_whole_blocks():
    n_states, n_sites, batch = 3, 4, 40
    tokens = jax.random.bernoulli(jax.random.PRNGKey(0), 0.5, (batch, n_states * n_sites)).astype(jnp.int32)
    permuted = random_block_permutation(jax.random.PRNGKey(1), tokens, n_states, n_sites)
    assert permuted.shape == tokens.shape and permuted.dtype == tokens.dtype
    a = np.asarray(tokens).reshape(batch, n_states, n_sites)
    b = np.asarray(permuted).reshape(batch, n_states, n_sites)
    for row_a, row_b in zip(a, b):
        assert sorted(map(tuple, row_a)) == sorted(map(tuple, row_b))
    assert not np.array_equal(a, b)  # some rows actually moved


def test_time_sampling_runs():
    seconds = time_sampling(4, 8, embed_dim=16, n_heads=2, n_layers=1, repeats=2)
    assert 0.0 < seconds < 60.0
