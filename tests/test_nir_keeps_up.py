"""NIR that keeps up with the NQS: proposal training on the whole proposal set, the smoothed
efficiency gate, and the VMC trust region (issue 15), checked on exact enumeration (3x2 TFI)."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from nirbench.cli import main
from nirbench.hamiltonians import make_hamiltonian
from nirbench.models import batched_log_prob, build_nqs
from nirbench.proposal import spins_to_tokens
from nirbench.samplers import NIRSampler, exact_distribution, make_sampler
from nirbench.samplers.nir import tempering_exponent
from nirbench.updates import predicted_efficiency
from nirbench.vmc import MAX_STEP_HALVINGS, VMCConfig, VMCRun

PROPOSAL = {"n_states": 2, "embed_dim": 8, "n_heads": 2, "n_layers": 1, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def target():
    """A fixed two-state NQS on the 3x2 open TFI (4096 tuples) and its exact distribution."""
    hamiltonian = make_hamiltonian("tfi", 3, 2, bc="open", g=0.5)
    nqs = build_nqs(hamiltonian, "mlp", n_states=2, width=16, depth=1, key=jax.random.key(3))
    configs, probs = exact_distribution(batched_log_prob, nqs, 2, hamiltonian.n_sites)
    return hamiltonian, nqs, configs, np.asarray(probs)


def _forward_kl(proposal, configs, probs):
    log_q = np.asarray(proposal.log_prob_batch(spins_to_tokens(configs)), dtype=np.float64)
    support = probs > 1e-300
    return float(np.sum(probs[support] * (np.log(probs[support]) - log_q[support])))


def test_training_on_the_proposal_set_fits_faster_per_proposal_drawn(target):
    hamiltonian, nqs, configs, probs = target
    results = {}
    for training in ("batch", "proposals"):
        sampler = make_sampler("nir", hamiltonian, 64, training=training, train_steps=4, alpha_eff=0.0, **PROPOSAL)
        state = sampler.init(jax.random.key(0), 2, hamiltonian.n_sites)
        drawn = 0
        for key in jax.random.split(jax.random.key(1), 25):
            _, state, stats = sampler.sample(batched_log_prob, nqs, state, key)
            drawn += stats["n_proposed"]
        results[training] = (_forward_kl(state.proposal, configs, probs), drawn)
    (kl_batch, drawn_batch), (kl_proposals, drawn_proposals) = results["batch"], results["proposals"]
    start = _forward_kl(NIRSampler(64, **PROPOSAL, n_sites=6).init(jax.random.key(0), 2, 6).proposal, configs, probs)
    assert kl_proposals < kl_batch < start
    # per proposal drawn: fewer (or as many) proposals for a lower KL
    assert kl_proposals * drawn_proposals < kl_batch * drawn_batch


def test_retrain_steps_apply_below_the_efficiency_threshold(target):
    hamiltonian, nqs, _, _ = target
    sampler = make_sampler("nir", hamiltonian, 64, train_steps=1, retrain_steps=5, alpha_eff=0.99, **PROPOSAL)
    state = sampler.init(jax.random.key(0), 2, hamiltonian.n_sites)
    _, _, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(1))
    assert stats["efficiency"] < 0.99 and stats["train_steps"] == 5 and not stats["nqs_update"]
    easy = make_sampler("nir", hamiltonian, 64, train_steps=1, retrain_steps=5, alpha_eff=0.0, **PROPOSAL)
    _, _, stats = easy.sample(batched_log_prob, nqs, state, jax.random.key(1))
    assert stats["train_steps"] == 1 and stats["nqs_update"]


def test_the_smoothed_gate_compares_the_moving_average(target):
    hamiltonian, nqs, _, _ = target
    sampler = make_sampler("nir", hamiltonian, 64, gate_smoothing=0.5, alpha_eff=0.3, train_steps=0, **PROPOSAL)
    state = sampler.init(jax.random.key(0), 2, hamiltonian.n_sites)
    _, first, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(1))
    efficiency = stats["efficiency"]
    assert 0.3 < efficiency < 0.9  # the untrained proposal passes on its own
    assert stats["smoothed_efficiency"] == pytest.approx(efficiency) and stats["nqs_update"]  # first call: no past
    assert float(first.efficiency_ema) == pytest.approx(efficiency)
    low_past = first.__class__(first.proposal, first.opt_state, jnp.array(0.0))
    _, after, stats = sampler.sample(batched_log_prob, nqs, low_past, jax.random.key(1))
    assert stats["smoothed_efficiency"] == pytest.approx(0.5 * stats["efficiency"])
    assert stats["nqs_update"] == (0.5 * stats["efficiency"] >= 0.3)
    assert not stats["nqs_update"]  # the same call passes without the low past
    assert float(after.efficiency_ema) == pytest.approx(0.5 * stats["efficiency"])


def test_predicted_efficiency_of_an_unchanged_nqs_is_the_current_one(target):
    hamiltonian, nqs, _, _ = target
    sampler = make_sampler("nir", hamiltonian, 64, **PROPOSAL)
    state = sampler.init(jax.random.key(0), 2, hamiltonian.n_sites)
    batch, _, stats = sampler.sample(batched_log_prob, nqs, state, jax.random.key(1))
    predicted = predicted_efficiency(batched_log_prob, nqs, batch.proposal_configs, batch.proposal_log_q,
                                     stats["n_proposed"])  # fmt: skip
    assert float(predicted) == pytest.approx(stats["efficiency"], rel=1e-10)


def test_the_trust_region_never_applies_a_step_below_its_bound():
    options = {"model": "tfi", "lx": 3, "ly": 2, "bc": "open", "g": 0.5, "states": 2, "width": 8, "depth": 1,
               "batch": 64, "steps": 4, "lr": 0.3, "optimizer": "sgd", "sampler": "nir", "proposal_dim": 8,
               "proposal_layers": 1, "proposal_heads": 2, "alpha_eff": 0.0, "trust_region": 0.9}  # fmt: skip
    run = VMCRun(VMCConfig(**options))
    run.train(progress=False)
    rows = pd.DataFrame(run.rows)
    updated = rows[rows["nqs_updated"] == 1]
    smallest = 2.0**-MAX_STEP_HALVINGS
    assert (updated["step_scale"] < 1).any()  # the bound is active at this learning rate
    ok = (updated["predicted_efficiency"] >= 0.9 * updated["efficiency"]) | (updated["step_scale"] == smallest)
    assert ok.all()
    # with a floor above every efficiency, no step may lower the efficiency at all
    floored = VMCRun(VMCConfig(**{**options, "trust_region": 0.5, "trust_floor": 0.99, "steps": 2}))
    floored.train(progress=False)
    rows = pd.DataFrame(floored.rows)
    ok = (rows["predicted_efficiency"] >= rows["efficiency"] * (1 - 1e-12)) | (rows["step_scale"] == smallest)
    assert ok.all() and (rows["step_scale"] < 1).any()
    plain = VMCRun(VMCConfig(**{**options, "sampler": "exact"}))  # a sampler without proposals ignores it
    plain.step()
    assert plain.rows[0]["step_scale"] == 1 and np.isnan(plain.rows[0]["predicted_efficiency"])


def test_the_round_cap_reaches_the_sampler_and_bounds_every_call():
    """``nir_max_rounds`` caps the proposal batches of an adaptive call, whatever ``alpha_ess`` asks."""
    options = {"model": "tfi", "lx": 2, "ly": 2, "bc": "open", "g": 1.0, "states": 2, "width": 8, "depth": 1,
               "batch": 16, "steps": 3, "sampler": "nir", "proposal_dim": 8, "proposal_layers": 1,
               "proposal_heads": 2, "alpha_ess": 50.0, "alpha_eff": 0.0}  # fmt: skip
    assert VMCRun(VMCConfig(**options)).sampler.round_limit == 64  # the default for alpha_eff = 0
    run = VMCRun(VMCConfig(**options, nir_max_rounds=3))
    assert run.sampler.round_limit == 3
    run.train(progress=False)
    assert all(row["n_proposed"] == 3 * 16 for row in run.rows)  # ESS 800 is out of reach: every call stops at 3


def _ess(log_w):
    finite = np.isfinite(log_w)
    w = np.exp(log_w[finite] - log_w[finite].max())
    return w.sum() ** 2 / (w**2).sum()


@pytest.mark.parametrize("target_ess", [1.5, 20.0, 300.0, 799.0, 5000.0])
def test_the_tempering_exponent_is_the_largest_that_meets_the_ess_bound(target_ess):
    rng = np.random.default_rng(4)
    log_w = rng.standard_t(df=2, size=1000) * 4.0  # heavy-tailed: the untempered ESS is a few
    log_w[:200] = -np.inf  # weight zero at any exponent: 800 non-zero weights
    beta = float(tempering_exponent(jnp.asarray(log_w), target_ess))
    assert _ess(log_w) < 20 and 0 <= beta <= 1
    if target_ess > 800:  # not even uniform weights on the 800 reach it
        assert beta == 0
    else:
        assert _ess(beta * log_w) >= target_ess * (1 - 1e-9)
        assert beta == 1 or _ess(min(beta + 1e-6, 1) * log_w) < target_ess  # the largest such exponent
    assert float(tempering_exponent(jnp.asarray(log_w), 1.0)) == 1  # an ESS of one is always met


def test_tempered_training_weights_keep_the_ess_bound_and_the_estimates_exact(target):
    """A sharpened target (``|Psi|^40``) gives proposal sets of an ESS of a few; the training weights
    are tempered to an ESS of at least ``train_ess * B``, the returned batch is resampled with the
    untempered weights (the same batch as without tempering, same key)."""
    hamiltonian, nqs, _, _ = target

    def sharp(model, configs):
        return 20 * batched_log_prob(model, configs)

    batches = {}
    for train_ess in (0.0, 0.5):
        sampler = make_sampler("nir", hamiltonian, 64, training="proposals", train_ess=train_ess, train_steps=2,
                               alpha_eff=0.0, max_rounds=4, **PROPOSAL)  # fmt: skip
        state = sampler.init(jax.random.key(0), 2, hamiltonian.n_sites)
        batch, _, stats = sampler.sample(sharp, nqs, state, jax.random.key(1))
        log_w = np.asarray(sharp(nqs, batch.proposal_configs), dtype=np.float64) - np.asarray(batch.proposal_log_q)
        assert stats["ess"] < 0.5 * 64  # the untempered set is too narrow to train on
        if train_ess:
            assert 0 < stats["train_beta"] < 1
            assert _ess(stats["train_beta"] * log_w) >= 0.5 * 64 * (1 - 1e-9)
        else:
            assert stats["train_beta"] == 1
        batches[train_ess] = np.asarray(batch.configs)
    np.testing.assert_array_equal(batches[0.0], batches[0.5])


@pytest.mark.parametrize(
    "option, fragment",
    [(["--trust-region", "0"], "trust_region"), (["--trust-region", "1.5"], "trust_region"),
     (["--gate-smoothing", "1"], "gate_smoothing"), (["--trust-floor", "1"], "trust_floor"), (["--proposal-training", "all"], "training"),
     (["--proposal-retrain-steps", "1000"], "at most 256"), (["--nir-max-rounds", "0"], "max_rounds"),
     (["--proposal-training", "proposals", "--nir-loss", "backward"], "forward KL only"),
     (["--proposal-training", "proposals", "--proposal-train-ess", "-1"], "proposal_train_ess"),
     (["--proposal-train-ess", "0.5"], "set proposal_training to 'proposals'")],
)
def test_bad_settings_fail_before_any_computation(tmp_path, capsys, option, fragment):
    out = tmp_path / "run.csv"
    argv = ["vmc", "--model", "tfi", "--lx", "2", "--ly", "2", "--bc", "open", "--g", "1", "--steps", "1",
            "--sampler", "nir", "--out", str(out), *option]  # fmt: skip
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists()
