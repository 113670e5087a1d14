"""NIR sampler: exactness (chi-square vs exact |Psi|^2), efficiency, modes, symmetrised proposal, errors.

Target: a random multi-state NQS (K=2 MLPs) for TFI on a periodic 2x2 lattice, T = K*N = 8 tokens,
256 tuples (16 with repeated rows, where Psi vanishes). The proposal is small (embed 16, 2 layers).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

from nirbench.estimators import log_effective_sample_size
from nirbench.hamiltonians import make_hamiltonian
from nirbench.models import batched_log_prob, build_nqs
from nirbench.proposal import (
    PatchedProposal,
    ProductProposal,
    TransformerProposal,
    spins_to_tokens,
    tokens_to_spins,
    train_step,
)
from nirbench.samplers import (
    STATS_KEYS,
    NIRSampler,
    SymmetryGroup,
    exact_distribution,
    indices_from_spins,
    make_sampler,
)
from nirbench.samplers.exact import chi_square_pvalue, histogram
from nirbench.samplers.nir import check_permutation_group, symmetrized_log_prob

K, N = 2, 4
ARCH = {"embed_dim": 16, "n_heads": 2, "n_layers": 2}
P_MIN = 1e-3
B = 512
# A resampled batch of B drawn from a pool of effective size ESS has count variance inflated by
# about (1 + B / ESS) relative to B independent draws (the pool itself fluctuates). The paper's
# alpha_ess = 2 gives a factor ~1.5, which a chi-square test over ~240 bins detects; the exactness
# tests therefore use alpha_ess = 16 (factor ~1.06).
ALPHA = 16.0


@pytest.fixture(scope="module")
def target():
    hamiltonian = make_hamiltonian("tfi", 2, 2, bc="periodic", g=1.0)
    nqs = build_nqs(hamiltonian, "mlp", n_states=K, width=8, depth=1, key=jax.random.key(0))
    configs, probs = exact_distribution(batched_log_prob, nqs, K, N)
    return hamiltonian, nqs, configs, np.asarray(probs)


@pytest.fixture(scope="module")
def trained_proposal(target):
    """The proposal fitted to the exact |Psi|^2: 300 full-batch steps of the weighted forward KL."""
    _, _, configs, probs = target
    proposal = TransformerProposal(K * N, **ARCH, key=jax.random.key(1))
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(proposal, eqx.is_inexact_array))
    tokens, weights = spins_to_tokens(configs), jnp.asarray(probs)
    for _ in range(300):
        proposal, opt_state, loss = train_step(proposal, opt_state, optimizer, tokens, weights)
    entropy = -np.sum(probs[probs > 0] * np.log(probs[probs > 0]))
    assert float(loss) - entropy < 0.1  # forward KL(p || q) after training
    return proposal


def importance_chi_square_pvalue(estimate, probs, q_probs, n_proposed, min_count=10.0):
    """Chi-square test of a self-normalised importance-sampling histogram against ``probs``.

    ``estimate[i] = sum_j w_j 1[s_j = i] / sum_j w_j`` from ``n_proposed`` draws of ``q_probs``.
    Delta method, ``w = p / q``: ``Var(estimate_b) ~ ((1 - 2 p_b) S_b + p_b^2 S) / n`` with
    ``S_b = sum_{s in b} p_s^2 / q_s`` and ``S = sum_s p_s^2 / q_s``. Bins (sorted by ``p``) are merged
    until ``n p_b`` and ``n q_b`` both reach ``min_count``; ``X = sum_b (estimate_b - p_b)^2 / Var_b``
    is compared with chi2(n_groups - 1).
    """
    keep = probs > 1e-20
    p, q, e = probs[keep], q_probs[keep], estimate[keep]
    ratio = p**2 / q
    total = ratio.sum()
    order = np.argsort(p)
    groups, acc = [], np.zeros(4)
    for i in order:
        acc += (p[i], q[i], e[i], ratio[i])
        if n_proposed * min(acc[0], acc[1]) >= min_count:
            groups.append(acc)
            acc = np.zeros(4)
    groups[-1] = groups[-1] + acc
    pb, _, eb, sb = np.array(groups).T
    variance = ((1 - 2 * pb) * sb + pb**2 * total) / n_proposed
    statistic = np.sum((eb - pb) ** 2 / variance)
    return float(scipy.stats.chi2.sf(statistic, len(pb) - 1))


def test_log_effective_sample_size():
    assert np.isclose(np.exp(log_effective_sample_size(jnp.zeros(100))), 100)
    one = jnp.full(10, -jnp.inf).at[3].set(5.0)
    assert np.isclose(np.exp(log_effective_sample_size(one)), 1.0)
    assert log_effective_sample_size(jnp.full(4, -jnp.inf)) == -jnp.inf
    w = np.random.default_rng(0).exponential(size=50)
    assert np.isclose(np.exp(log_effective_sample_size(jnp.log(w))), w.sum() ** 2 / np.sum(w**2))


def test_nir_resample_is_exact_and_efficient(target, trained_proposal):
    hamiltonian, nqs, _, probs = target
    default = make_sampler("nir", hamiltonian, B, n_states=K, **ARCH)
    assert (default.alpha_ess, default.alpha_eff, default.loss, default.mode) == (2.0, 0.1, "forward", "resample")
    sampler = make_sampler("nir", hamiltonian, B, n_states=K, alpha_ess=ALPHA, **ARCH)
    state = sampler.init(jax.random.key(2), K, N, proposal=trained_proposal)
    counts = np.zeros(probs.size)
    for seed in range(4):
        batch, state, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(10 + seed))
        assert set(STATS_KEYS) | {"proposal_loss", "n_rounds"} <= set(stats)
        assert batch.configs.shape == (B, K, N) and batch.configs.dtype == jnp.int8
        assert np.allclose(np.asarray(batch.weights), 1 / B)
        assert stats["n_proposed"] == B * stats["n_rounds"]
        assert stats["ess"] >= ALPHA * B and np.isclose(stats["efficiency"], stats["ess"] / stats["n_proposed"])
        assert stats["efficiency"] > 0.8 and stats["nqs_update"] is True
        assert np.isfinite(stats["proposal_loss"]) and np.isnan(stats["acceptance"])
        counts += histogram(batch.configs)
    assert counts[probs < 1e-20].sum() == 0  # Psi = 0 tuples (repeated rows) are never drawn
    assert chi_square_pvalue(counts, probs) > P_MIN
    # the chi-square test can fail: the proposal's own draws follow q, not p
    tokens, _ = state.proposal.sample(jax.random.key(99), 20000)
    q_counts = histogram(tokens_to_spins(tokens, K, N))
    assert chi_square_pvalue(q_counts, probs) < 1e-6


def test_nir_round_limit(target):
    """Adaptive calls stop after ceil((alpha_ess + 1) / alpha_eff) rounds (later ones cannot update the NQS)."""
    hamiltonian, nqs, _, _ = target
    assert make_sampler("nir", hamiltonian, B, n_states=K, **ARCH).round_limit == 30  # paper: 2, 0.1
    assert make_sampler("nir", hamiltonian, B, n_states=K, alpha_eff=0.0, **ARCH).round_limit == 64
    assert make_sampler("nir", hamiltonian, B, n_states=K, max_rounds=3, **ARCH).round_limit == 3
    # a fresh (uniform) proposal: 16 of the 256 tuples have Psi = 0, so ESS / n_proposed < 15/16 and
    # ESS = 20 B is out of reach within the 21 rounds
    sampler = make_sampler("nir", hamiltonian, B, n_states=K, alpha_ess=20.0, alpha_eff=1.0, **ARCH)
    state = sampler.init(jax.random.key(5), K, N)
    _, _, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(6))
    assert sampler.round_limit == 21
    assert stats["n_rounds"] == 21 and stats["nqs_update"] is False


def test_nir_float32_proposal_is_exact(target, trained_proposal):
    """The default float32 proposal: float32 parameters, weights in float64, exact resampling."""
    hamiltonian, nqs, _, probs = target
    sampler = make_sampler("nir", hamiltonian, B, n_states=K, alpha_ess=ALPHA, **ARCH)
    assert sampler.init(jax.random.key(3), K, N).proposal.positions.dtype == jnp.float32
    proposal = jax.tree_util.tree_map(
        lambda leaf: leaf.astype(jnp.float32) if eqx.is_inexact_array(leaf) else leaf, trained_proposal
    )
    state = sampler.init(jax.random.key(3), K, N, proposal=proposal)
    counts = np.zeros(probs.size)
    for seed in range(4):
        batch, state, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(20 + seed))
        assert stats["efficiency"] > 0.8
        counts += histogram(batch.configs)
    assert state.proposal.positions.dtype == jnp.float32  # training keeps the precision
    assert chi_square_pvalue(counts, probs) > P_MIN


def test_nir_with_a_product_proposal_is_exact_and_learns_the_marginal(target):
    """``proposal_factorization="product"``: ``q = q_1(s_1) q_1(s_2)`` with one 4-token Transformer.
    Fitted to the exact ``|Psi|^2`` by the forward KL on tuples, ``q_1`` becomes the one-configuration
    marginal of ``|Psi|^2``; the resampled batches follow ``|Psi|^2`` exactly (chi-square), at the
    efficiency ``1 / sum p^2 / q`` that enumeration gives for that product."""
    hamiltonian, nqs, configs, probs = target
    sampler = make_sampler(
        "nir", hamiltonian, B, n_states=K, alpha_ess=ALPHA, proposal_factorization="product", **ARCH
    )
    state = sampler.init(jax.random.key(4), K, N)
    assert isinstance(state.proposal, ProductProposal) and state.proposal.single.n_tokens == N
    proposal = fitted_to_exact(sampler, state, configs, probs)
    # the marginal of |Psi|^2 over one configuration (the same for both: Psi is symmetric in them)
    singles, inverse = np.unique(np.asarray(configs[:, 0, :]), axis=0, return_inverse=True)
    marginal = np.bincount(inverse.ravel(), weights=probs, minlength=len(singles))
    q_single = np.exp(np.asarray(proposal.single.log_prob_batch(spins_to_tokens(singles[:, None, :]))))
    assert 0.5 * np.abs(q_single - marginal).sum() < 1e-3  # total variation
    q_tuples = np.exp(np.asarray(proposal.log_prob_batch(spins_to_tokens(configs))))
    exact_efficiency = 1.0 / np.sum(probs**2 / q_tuples)
    assert 0.3 < exact_efficiency < 0.95  # the determinant's correlations are left to the weights

    counts, efficiency = frozen_histogram(sampler, nqs, proposal, probs)
    assert counts[probs < 1e-20].sum() == 0
    assert chi_square_pvalue(counts, probs) > P_MIN
    assert abs(efficiency / exact_efficiency - 1) < 0.03


def fitted_to_exact(sampler, state, configs, probs, steps: int = 300):
    """``state``'s proposal after ``steps`` full-batch Adam steps of the forward KL to the exact ``|Psi|^2``."""
    proposal, opt_state = state.proposal, state.opt_state
    tokens, weights = spins_to_tokens(configs), jnp.asarray(probs)
    for _ in range(steps):
        proposal, opt_state, _ = train_step(proposal, opt_state, sampler.optimizer, tokens, weights)
    return proposal


def frozen_histogram(sampler, nqs, proposal, probs, calls: int = 4):
    """Counts over the enumerated tuples of ``calls`` frozen NIR calls with ``proposal`` (keys 30, 31,
    ...), and their mean efficiency."""
    state = sampler.init(jax.random.key(4), K, N, proposal=proposal)
    counts, efficiencies = np.zeros(probs.size), []
    for seed in range(calls):
        batch, state, stats = sampler.frozen().sample(batched_log_prob, nqs, state, jax.random.key(30 + seed))
        efficiencies.append(stats["efficiency"])
        counts += histogram(batch.configs)
    return counts, float(np.mean(efficiencies))


def test_nir_with_patched_tokens_is_exact(target):
    """``proposal_patch=2``: pairs of spins as one of 4 token values, 4 positions instead of 8. Fitted
    to the exact ``|Psi|^2``, the frozen sampler's resampled batches follow it (chi-square) at a high
    efficiency, and it is the efficiency that enumeration gives, ``1 / sum p^2 / q``."""
    hamiltonian, nqs, configs, probs = target
    sampler = make_sampler("nir", hamiltonian, B, n_states=K, alpha_ess=ALPHA, proposal_patch=2, **ARCH)
    state = sampler.init(jax.random.key(4), K, N)
    assert isinstance(state.proposal, PatchedProposal) and state.proposal.inner.n_tokens == K * N // 2
    assert state.proposal.inner.vocab_size == 4
    proposal = fitted_to_exact(sampler, state, configs, probs)
    q_tuples = np.exp(np.asarray(proposal.log_prob_batch(spins_to_tokens(configs))))
    exact_efficiency = 1.0 / np.sum(probs**2 / q_tuples)
    assert exact_efficiency > 0.8

    counts, efficiency = frozen_histogram(sampler, nqs, proposal, probs)
    assert counts[probs < 1e-20].sum() == 0
    assert chi_square_pvalue(counts, probs) > P_MIN
    assert abs(efficiency / exact_efficiency - 1) < 0.05


def test_nir_importance_mode_weighted_histogram(target):
    """Importance mode with an *untrained* proposal: only the weights make the histogram right."""
    hamiltonian, nqs, configs, probs = target
    sampler = make_sampler("nir", hamiltonian, B, n_states=K, mode="importance", alpha_ess=4.0, **ARCH)
    state = sampler.init(jax.random.key(3), K, N)
    q_probs = np.exp(np.asarray(state.proposal.log_prob_batch(spins_to_tokens(configs))))
    assert np.isclose(q_probs.sum(), 1.0)
    batch, state, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(20))
    n = stats["n_proposed"]
    assert batch.configs.shape == (n, K, N)
    assert stats["efficiency"] < 0.8  # the untrained proposal is clearly not the target
    assert np.isclose(float(jnp.sum(batch.weights)), 1.0)
    assert np.isclose(1.0 / np.sum(np.asarray(batch.weights) ** 2), stats["ess"])
    weighted = histogram(batch.configs, batch.weights)
    assert importance_chi_square_pvalue(weighted, probs, q_probs, n) > P_MIN
    # ignoring the weights is detectably wrong
    unweighted = histogram(batch.configs) / n
    assert importance_chi_square_pvalue(unweighted, probs, q_probs, n) < 1e-6


def test_nir_fixed_rounds_thresholds_and_backward(target, trained_proposal):
    hamiltonian, nqs, _, _ = target
    fixed = make_sampler("nir", hamiltonian, B, n_states=K, adaptive=False, n_proposal_batches=3,
                         alpha_eff=1.0, **ARCH)
    state = fixed.init(jax.random.key(4), K, N, proposal=trained_proposal)
    _, _, stats = fixed.sample(batched_log_prob, nqs, state, jax.random.key(30))
    assert stats["n_proposed"] == 3 * B and stats["n_rounds"] == 3
    assert stats["nqs_update"] is True  # always when not adaptive
    strict = make_sampler("nir", hamiltonian, B, n_states=K, alpha_eff=1.0, max_rounds=1, **ARCH)
    _, _, stats = strict.sample(batched_log_prob, nqs, state, jax.random.key(31))
    assert stats["n_rounds"] == 1 and stats["nqs_update"] is False  # efficiency < 1 and round cap
    backward = make_sampler("nir", hamiltonian, B, n_states=K, loss="backward", **ARCH)
    batch, new_state, stats = backward.sample(batched_log_prob, nqs, state, jax.random.key(32))
    assert np.isfinite(stats["proposal_loss"]) and batch.configs.shape == (B, K, N)
    before, after = state.proposal.head.weight, new_state.proposal.head.weight
    assert not np.allclose(np.asarray(before), np.asarray(after))


def test_symmetrized_density_is_normalised_and_invariant(target, trained_proposal):
    hamiltonian, _, configs, _ = target
    perms = hamiltonian.lattice.symmetry_group()
    group = SymmetryGroup.build(perms, K, spin_flip=True)
    assert group.size == len(perms) * 2 * 2
    log_qg = symmetrized_log_prob(trained_proposal, group, configs)
    assert np.isclose(float(jnp.sum(jnp.exp(log_qg))), 1.0, atol=1e-10)
    elements = jax.random.randint(jax.random.key(5), (configs.shape[0],), 0, group.size)
    moved = group.apply(configs, elements)
    assert not np.array_equal(np.asarray(moved), np.asarray(configs))
    assert np.allclose(np.asarray(symmetrized_log_prob(trained_proposal, group, moved)), np.asarray(log_qg))
    # the plain proposal is not invariant, so the test above is not vacuous
    log_q = trained_proposal.log_prob_batch(spins_to_tokens(configs))
    log_q_moved = trained_proposal.log_prob_batch(spins_to_tokens(moved))
    assert not np.allclose(np.asarray(log_q), np.asarray(log_q_moved))


def test_nir_symmetrized_sampling_is_exact(target, trained_proposal):
    """The symmetry-augmented proposal keeps NIR exact (the MLP target itself is not symmetric).

    Importance mode, one call: q_G costs |G'| = 32 proposal passes per configuration here.
    """
    hamiltonian, nqs, configs, probs = target
    sampler = make_sampler("nir", hamiltonian, B, n_states=K, symmetrize=True, mode="importance",
                           alpha_ess=4.0, **ARCH)
    assert len(sampler.symmetry_perms) == 8 and sampler.group().size == 32
    state = sampler.init(jax.random.key(6), K, N, proposal=trained_proposal)
    batch, state, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(40))
    assert stats["efficiency"] > 0.1 and stats["ess"] >= 4.0 * B
    assert np.all(np.asarray(batch.weights)[probs[np.asarray(indices_from_spins(batch.configs))] < 1e-20] < 1e-20)
    q_probs = np.exp(np.asarray(symmetrized_log_prob(trained_proposal, sampler.group(), configs)))
    weighted = histogram(batch.configs, batch.weights)
    assert importance_chi_square_pvalue(weighted, probs, q_probs, stats["n_proposed"]) > P_MIN


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"),
    ({"alpha_ess": 0.0}, "alpha_ess"),
    ({"alpha_ess": -1.0}, "alpha_ess"),
    ({"p_floor": 0.5}, "p_floor"),
    ({"p_floor": -0.1}, "p_floor"),
    ({"loss": "reverse"}, "'forward', 'backward'"),
    ({"mode": "weighted"}, "'resample', 'importance'"),
    ({"alpha_eff": 1.5}, "alpha_eff"),
    ({"max_rounds": 0}, "max_rounds"),
    ({"n_proposal_batches": 2}, "adaptive=False"),
    ({"adaptive": False, "n_proposal_batches": 0}, "n_proposal_batches"),
    ({"embed_dim": 10, "n_heads": 4}, "multiple of n_heads"),
    ({"symmetry_perms": [[0, 1, 2, 3], [1, 0, 2, 3], [0, 1, 3, 2]]}, "not closed"),
    ({"symmetry_perms": [[1, 0, 2, 3], [0, 1, 2, 3], [0, 0, 2, 3]]}, "permutation"),
    ({"symmetry_perms": [[0, 1, 2]]}, "columns"),
    ({"proposal_dtype": "float16"}, "'float32', 'float64'"),
    ({"proposal_factorization": "mean-field"}, "'joint', 'product'"),
    ({"proposal_patch": 3}, "divide N = 4"),
    ({"proposal_patch": 0}, "proposal_patch"),
    ({"proposal_patch": 2, "p_floor": 0.25}, r"2\*\*-proposal_patch = 0.25"),
])
def test_nir_bad_input(kwargs, match):
    options = {"batch_size": 16, "n_states": K, "n_sites": N, **kwargs}
    with pytest.raises(ValueError, match=match):
        NIRSampler(**options)


def test_nir_init_checks_sizes():
    sampler = NIRSampler(16, K, N, **ARCH)
    with pytest.raises(ValueError, match="K=2, N=4"):
        sampler.init(jax.random.key(0), 3, 4)
    with pytest.raises(ValueError, match="tokens"):
        sampler.init(jax.random.key(0), K, N, proposal=TransformerProposal(5, **ARCH, key=jax.random.key(0)))


def test_check_permutation_group_accepts_lattice_groups():
    from nirbench.lattice import SquareLattice

    check_permutation_group(SquareLattice(3, 2).symmetry_group())
    check_permutation_group(SquareLattice(4, 4, "open").point_group())
