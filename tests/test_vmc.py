"""The VMC driver: exact gradient, resume, reproducibility and input validation."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from nirbench.exact import all_configurations
from nirbench.updates import energy_gradient, estimate
from nirbench.vmc import VMCConfig, VMCRun, run

TINY = {"model": "tfi", "lx": 2, "ly": 2, "bc": "open", "g": 1.5, "width": 8, "depth": 1, "batch": 32, "eval_batch": 64}


@eqx.filter_jit
def _exact_trace_energy(nqs, configs, h):
    """tr(S^-1 H_sub) from the full vectors psi_j (DESIGN.md), the exact multi-state energy, with
    ``configs`` all (D, N) configurations and ``h`` the dense (D, D) Hamiltonian. Compiled: run
    op by op, its small programs took most of the test's time."""
    log_amp = jax.vmap(lambda s: nqs.log_amplitudes(s[None])[0])(configs)  # (D, K)
    psi = jnp.exp(log_amp)
    overlap = psi.conj().T @ psi
    h_sub = psi.conj().T @ h @ psi
    return jnp.real(jnp.trace(jnp.linalg.solve(overlap, h_sub)))


def _all_tuples(n_sites, n_states):
    configs = all_configurations(n_sites)
    return np.array([np.stack(t) for t in itertools.product(configs, repeat=n_states)])


@pytest.mark.parametrize(("n_states", "parities"), [(1, None), (2, None), (2, "+-"), (2, "-")])
def test_trace_energy_gradient_matches_finite_differences(n_states, parities):
    vmc = VMCRun(VMCConfig(**TINY, states=n_states, sampler="exact", flip_parities=parities))
    nqs, hamiltonian = vmc.nqs, vmc.hamiltonian
    tuples = jnp.asarray(_all_tuples(hamiltonian.n_sites, n_states))
    log_prob = jax.jit(jax.vmap(nqs.log_prob))(tuples)
    distinct = np.array([len({row.tobytes() for row in np.asarray(t)}) == n_states for t in tuples])
    tuples, log_prob = tuples[distinct], log_prob[distinct]  # repeated rows: Psi = 0, never drawn
    weights = jnp.exp(log_prob - jax.scipy.special.logsumexp(log_prob))
    mean_matrix, _, eps, _ = estimate(nqs, hamiltonian, tuples, weights)
    configs, dense = all_configurations(hamiltonian.n_sites), jnp.asarray(hamiltonian.to_sparse().toarray())
    # the enumeration average of the local energy matrix is the exact energy
    assert float(jnp.real(jnp.trace(mean_matrix))) == pytest.approx(float(_exact_trace_energy(nqs, configs, dense)), abs=1e-10)
    gradient = eqx.filter_jit(energy_gradient)(nqs, tuples, weights, eps)

    params, static = eqx.partition(nqs, eqx.is_inexact_array)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    grad_flat, _ = jax.flatten_util.ravel_pytree(gradient)
    direction = jax.random.normal(jax.random.PRNGKey(1), flat.shape)

    def energy_at(theta):
        return _exact_trace_energy(eqx.combine(unravel(theta), static), configs, dense)

    h = 1e-5
    finite_difference = (energy_at(flat + h * direction) - energy_at(flat - h * direction)) / (2 * h)
    assert float(grad_flat @ direction) == pytest.approx(float(finite_difference), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(("sampler", "patch", "parities"), [("mcmc", 1, None), ("nir", 1, None), ("nir", 2, "-+")])
def test_resumed_run_reproduces_uninterrupted_run(tmp_path, sampler, patch, parities):
    options = dict(**TINY, states=2, sampler=sampler, steps=4, checkpoint_every=2, mcmc_warmup=8, mcmc_thinning=2,
                   proposal_dim=8, proposal_layers=1, proposal_heads=2, proposal_patch=patch, flip_parities=parities)
    config = VMCConfig(**options)
    full = VMCRun(config)
    full.train(progress=False)

    interrupted = VMCRun(config)
    for _ in range(2):
        interrupted.step()
    interrupted.save_checkpoint(tmp_path / "ckpt")  # the run is "killed" here
    resumed = VMCRun(config)
    assert resumed.load_checkpoint(tmp_path / "ckpt")
    resumed.train(progress=False)
    drop = ["seconds"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(resumed.rows).drop(columns=drop), pd.DataFrame(full.rows).drop(columns=drop)
    )


def test_a_checkpoint_resumes_only_under_its_own_options(tmp_path):
    """A checkpoint written before an option existed (absent from its manifest) resumes when the
    run leaves that option at its default; any option changed from the checkpoint's is refused."""
    import json

    config = VMCConfig(**TINY, sampler="mcmc", steps=2, mcmc_warmup=8, mcmc_thinning=2)
    first = VMCRun(config)
    first.step()
    first.save_checkpoint(tmp_path / "ckpt")
    manifest = tmp_path / "ckpt" / "meta.json"
    meta = json.loads(manifest.read_text())
    del meta["config"]["proposal_factorization"]  # as written by a nirbench without the option
    manifest.write_text(json.dumps(meta))
    resumed = VMCRun(config)
    assert resumed.load_checkpoint(tmp_path / "ckpt") and resumed.iteration == 1
    for changed in ({"proposal_factorization": "product"}, {"seed": 1}):
        with pytest.raises(ValueError, match="different configuration"):
            VMCRun(VMCConfig(**{**config.to_dict(), **changed})).load_checkpoint(tmp_path / "ckpt")


def test_same_seed_gives_the_same_csv(tmp_path):
    config = VMCConfig(**TINY, sampler="mcmc", steps=3, mcmc_warmup=8, mcmc_thinning=2)
    for name in ("a", "b"):
        run(config, tmp_path / f"{name}.csv", tmp_path / f"{name}_summary.csv", progress=False)
    a, b = (pd.read_csv(tmp_path / f"{n}.csv").drop(columns=["seconds"]) for n in "ab")
    pd.testing.assert_frame_equal(a, b)
    summary = pd.read_csv(tmp_path / "a_summary.csv")
    assert summary.loc[0, "steps"] == 3 and summary.loc[0, "status"] == "completed"


def test_summary_has_the_reference_levels_and_the_final_acceptance(tmp_path):
    from nirbench.cli import main

    reference = tmp_path / "ed.csv"
    assert main(["ed", "--model", "tfi", "--lx", "2", "--ly", "2", "--bc", "open", "--g", "1.5", "--states", "2",
                 "--out", str(reference)]) == 0  # fmt: skip
    levels = pd.read_csv(reference)["energy"].to_numpy()
    config = VMCConfig(**TINY, states=2, sampler="mcmc", steps=3, mcmc_warmup=8, mcmc_thinning=2, reference=str(reference))
    summary = run(config, tmp_path / "run.csv", tmp_path / "summary.csv", progress=False)
    assert [summary["reference_e_0"], summary["reference_e_1"]] == pytest.approx(levels[:2], abs=1e-12)
    assert summary["reference_energy"] == pytest.approx(levels[:2].sum(), abs=1e-12)
    steps = pd.read_csv(tmp_path / "run.csv")  # 3 updates: the final window holds every iteration
    assert summary["final_acceptance"] == pytest.approx(steps["acceptance"].mean()) and 0 < summary["final_acceptance"] <= 1
    exact = run(VMCConfig(**TINY, sampler="exact", steps=2), tmp_path / "e.csv", tmp_path / "es.csv", progress=False)
    assert np.isnan(exact["final_acceptance"]) and np.isnan(exact["reference_e_0"])


def test_summary_has_the_exact_levels_of_the_final_nqs(tmp_path):
    """Where the sector can be enumerated, the summary carries the exact levels of the trained
    state: Ritz values (each above its ED level), summing to the exact trace, which the sampled
    estimate brackets within its error bar; they are those of the final checkpointed NQS."""
    from nirbench.exact import lowest_levels, nqs_exact_columns

    config = VMCConfig(**TINY, states=2, sampler="mcmc", steps=3, mcmc_warmup=8, mcmc_thinning=2)
    summary = run(config, tmp_path / "run.csv", tmp_path / "summary.csv", tmp_path / "ckpt", progress=False)
    ed = lowest_levels(VMCRun(config).hamiltonian, 2)
    assert summary["exact_e_0"] >= ed[0] - 1e-9 and summary["exact_e_1"] >= ed[1] - 1e-9
    assert summary["exact_e_0"] + summary["exact_e_1"] == pytest.approx(summary["exact_energy"], rel=1e-10)
    assert abs(summary["energy"] - summary["exact_energy"]) < 4 * summary["energy_sigma"]
    final = VMCRun.from_checkpoint(tmp_path / "ckpt")
    columns = nqs_exact_columns(final.nqs, final.hamiltonian, 2)
    assert columns["exact_e_1"] == pytest.approx(summary["exact_e_1"], rel=1e-12)
    too_large = nqs_exact_columns(final.nqs, final.hamiltonian, 2, max_dimension=8)
    assert all(np.isnan(value) for value in too_large.values())


def test_max_minutes_stops_training_and_still_evaluates(tmp_path):
    config = VMCConfig(**TINY, sampler="exact", steps=50, max_minutes=1e-9)
    summary = run(config, tmp_path / "run.csv", tmp_path / "summary.csv", progress=False)
    assert summary["status"] == "time_limit" and summary["iterations"] == 1
    assert np.isfinite(summary["energy"])  # the final evaluation still ran
    assert len(pd.read_csv(tmp_path / "run.csv")) == 1


def test_evaluation_retrains_only_after_a_completed_run(tmp_path):
    """Retraining the proposal in the final evaluation is training: a run that ended at its time
    limit is measured with the proposal as it stands; a completed run retrains while the gate fails."""
    hopeless = {**TINY, "states": 2, "sampler": "nir", "alpha_eff": 0.99, "max_retries": 2, "steps": 50,
                "proposal_dim": 8, "proposal_layers": 1, "proposal_heads": 2}  # fmt: skip
    timed_out = run(VMCConfig(**hopeless, max_minutes=1e-9), tmp_path / "a.csv", tmp_path / "a_s.csv", progress=False)
    assert timed_out["status"] == "time_limit"
    assert timed_out["eval_retrains"] == 0 and not timed_out["eval_gate"] and np.isfinite(timed_out["energy"])
    completed = run(VMCConfig(**{**hopeless, "steps": 1, "alpha_eff": 0.0}), tmp_path / "b.csv", tmp_path / "b_s.csv",
                    progress=False)  # fmt: skip
    assert completed["status"] == "completed" and completed["eval_gate"]
    vmc = VMCRun(VMCConfig(**hopeless))
    assert vmc.evaluate(retrain=True)["eval_retrains"] == 2  # the same gate, retraining allowed


def test_energy_decreases_with_exact_sampling():
    config = VMCConfig(**TINY, sampler="exact", steps=60, lr=0.01, states=1)
    vmc = VMCRun(config)
    vmc.train(progress=False)
    energies = pd.DataFrame(vmc.rows)["energy"].to_numpy()
    exact = np.linalg.eigvalsh(vmc.hamiltonian.to_sparse().toarray())[0]
    assert energies[-10:].mean() < energies[:5].mean()
    assert abs(energies[-10:].mean() - exact) < abs(energies[:5].mean() - exact) / 3


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"net": "transformer"}, "unknown net"),
        ({"sampler": "gibbs"}, "unknown sampler"),
        ({"diag_shift": 0.0}, "diag_shift must be > 0"),
        ({"states": 17}, "exceeds the number of configurations"),
        ({"batch": "many"}, "must be of type int"),
        ({"g": "strong"}, r"must be of type float \| None"),
        ({"proposal_patch": True}, r"must be of type int \| str"),
        ({"proposal_patch": "row"}, "a number of spins or 'column'"),
        ({"lr_final": 0.01}, "lr_final must be in"),
        ({"symmetry_average": "median"}, "unknown symmetry_average"),
        ({"output_head": "sign"}, "unknown output_head"),
        ({"flip_parities": "+-+"}, "flip_parities must be"),
        ({"flip_parities": ""}, "flip_parities must be"),
        ({"flip_parities": "o"}, "flip_parities must be"),
        ({"model": "j1j2", "flip_parities": "+"}, "TFI model only"),
        ({"lr_warmup": 10**6}, "lr_warmup must be in"),
        ({"lr_units": "hartree"}, "unknown lr_units"),
        ({"max_minutes": 0}, "max_minutes must be > 0"),
        ({"sampling_power": 0.0}, "sampling_power must be in"),
        ({"sampling_power": 1.5}, "sampling_power must be in"),
    ],
)
def test_bad_input_fails_before_computation(changes, message):
    with pytest.raises(ValueError, match=message):
        VMCRun(VMCConfig.from_dict({**TINY, **changes}))


def test_lr_final_decays_the_learning_rate():
    schedule = VMCConfig(**TINY, steps=100, lr=1e-2, lr_final=1e-4).learning_rate()
    assert float(schedule(0)) == pytest.approx(1e-2)
    assert float(schedule(50)) == pytest.approx(0.5 * (1e-2 + 1e-4))
    assert float(schedule(100)) == pytest.approx(1e-4)
    assert VMCConfig(**TINY, lr=1e-2).learning_rate() == 1e-2


@pytest.mark.parametrize("g", [0.5, 6.0])
def test_lr_units_energy_divides_the_schedule_by_the_energy_scale(g):
    """With lr_units 'energy' the run's optimiser applies lr / energy_scale: the same updates as
    an absolute schedule with the divided values (one SGD step on the same direction)."""
    options = {**TINY, "g": g, "steps": 100, "lr": 0.5, "lr_final": 0.05, "lr_warmup": 10, "optimizer": "sgd"}
    energy = VMCRun(VMCConfig(**options, lr_units="energy"))
    scale = energy.hamiltonian.energy_scale
    absolute = VMCConfig(**{**options, "lr": 0.5 / scale, "lr_final": 0.05 / scale}).learning_rate()
    schedule = energy.config.learning_rate(scale)
    for step in (0, 5, 10, 55, 100):
        assert float(schedule(step)) == pytest.approx(float(absolute(step)))
    grads = jax.tree.map(jnp.ones_like, eqx.filter(energy.nqs, eqx.is_inexact_array))
    for _ in range(6):  # inside the warm-up, where the step is nonzero from the second update
        updates, energy.opt_state = energy.optimizer.update(grads, energy.opt_state)
    step = float(jax.tree.leaves(updates)[0].ravel()[0])
    assert step == pytest.approx(-float(schedule(5)))
    with pytest.raises(ValueError, match="needs the Hamiltonian's energy scale"):
        energy.config.learning_rate()


@pytest.mark.parametrize("lr_final", [None, 1e-4])
def test_lr_warmup_rises_linearly_then_follows_the_schedule(lr_final):
    schedule = VMCConfig(**TINY, steps=100, lr=1e-2, lr_final=lr_final, lr_warmup=10).learning_rate()
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(0.5e-2)
    assert float(schedule(10)) == pytest.approx(1e-2)
    assert float(schedule(55)) == pytest.approx(1e-2 if lr_final is None else 0.5 * (1e-2 + 1e-4))
    assert float(schedule(100)) == pytest.approx(1e-2 if lr_final is None else 1e-4)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown VMC option.*'gamma'"):
        VMCConfig.from_dict({**TINY, "gamma": 1})


def test_reference_for_another_system_is_rejected(tmp_path):
    from nirbench.cli import main

    reference = tmp_path / "ed.csv"
    assert main(["ed", "--model", "tfi", "--lx", "2", "--ly", "2", "--bc", "open", "--g", "3.0", "--out", str(reference)]) == 0
    with pytest.raises(ValueError, match="g="):
        VMCRun(VMCConfig.from_dict({**TINY, "reference": str(reference)}))


def test_tempered_sampling_draws_psi_and_reweights_to_psi_squared():
    """sampling_power 0.5: raw exact draws follow |Psi|, the reweighted batch follows |Psi|^2."""
    vmc = VMCRun(VMCConfig(**{**TINY, "batch": 4096}, sampler="exact", sampling_power=0.5))
    # sharpen the initial state so that |Psi| and |Psi|^2 differ clearly
    vmc.nqs = jax.tree_util.tree_map(lambda x: 8.0 * x if eqx.is_inexact_array(x) else x, vmc.nqs)
    configs = all_configurations(vmc.hamiltonian.n_sites)
    log_prob = np.asarray(jax.vmap(vmc.nqs.log_prob)(jnp.asarray(configs)[:, None, :]))
    target = np.exp(log_prob - log_prob.max())
    target /= target.sum()
    tempered = np.exp(0.5 * (log_prob - log_prob.max()))
    tempered /= tempered.sum()
    assert np.abs(target - tempered).max() > 0.05
    index = {row.tobytes(): i for i, row in enumerate(configs.astype(np.int8))}
    raw, weighted = np.zeros(len(configs)), np.zeros(len(configs))
    n_batches = 12
    for b in range(n_batches):
        key = jax.random.PRNGKey(b)
        draws, _, _ = vmc.sampler.sample(vmc.log_prob_fn, vmc.nqs, vmc.sampler_state, key)
        batch, _, _ = vmc.draw(vmc.sampler, vmc.sampler_state, key)
        np.testing.assert_array_equal(np.asarray(batch.configs), np.asarray(draws.configs))
        rows = [index[np.asarray(c[0], dtype=np.int8).tobytes()] for c in np.asarray(batch.configs)]
        np.add.at(raw, rows, np.asarray(draws.weights))
        np.add.at(weighted, rows, np.asarray(batch.weights))
    np.testing.assert_allclose(raw / n_batches, tempered, atol=0.01)
    np.testing.assert_allclose(weighted / n_batches, target, atol=0.01)
    assert float(np.sum(batch.weights)) == pytest.approx(1.0)
