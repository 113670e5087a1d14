"""Measurements that leave the run unchanged: the final evaluation, `nirbench evaluate`, the JSD,
and the exact energy of an NQS."""

import itertools
import json

import equinox as eqx
import jax
import numpy as np
import pandas as pd
import pytest

from nirbench.cli import main
from nirbench.evaluation import JSD_COLUMNS, evaluate, sampler_jsd, tuple_jsds
from nirbench.exact import all_configurations, nqs_exact_energies
from nirbench.samplers.base import indices_from_spins, unordered_tuple_indices
from nirbench.vmc import VMCConfig, VMCRun

TINY = {"model": "tfi", "lx": 2, "ly": 2, "bc": "open", "g": 1.5, "width": 8, "depth": 1, "batch": 32,
        "eval_batch": 128, "proposal_dim": 8, "proposal_layers": 1, "proposal_heads": 2}  # fmt: skip


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


def _same_tree(a, b):
    return all(
        np.array_equal(x, y, equal_nan=x.dtype.kind in "fc") for x, y in zip(_leaves(a), _leaves(b), strict=True)
    )


@pytest.mark.parametrize("model, n_states", [("tfi", 2), ("j1j2", 1)])
def test_exact_nqs_energies_equal_dense_linear_algebra(model, n_states):
    """Against the full 2^N vectors and the dense H (J1-J2: the NQS's off-sector amplitude is
    suppressed by e^-30, so the whole space and the sector agree)."""
    options = {"model": "j1j2", "lx": 4, "ly": 2, "symmetries": False} if model == "j1j2" else {}
    run = VMCRun(VMCConfig(**{**TINY, **options, "states": n_states, "sampler": "exact"}))
    hamiltonian = run.hamiltonian
    psi = np.exp(np.asarray(run.nqs.log_amplitudes(all_configurations(hamiltonian.n_sites))).astype(complex))
    h = hamiltonian.to_sparse(np.arange(2**hamiltonian.n_sites)).toarray()
    mean_matrix = np.linalg.solve(psi.conj().T @ psi, psi.conj().T @ h @ psi)
    exact = nqs_exact_energies(run.nqs, hamiltonian)
    assert exact["trace"] == pytest.approx(np.real(np.trace(mean_matrix)), rel=1e-9)
    assert exact["levels"] == pytest.approx(np.sort(np.real(np.linalg.eigvals(mean_matrix))), rel=1e-9)
    # the Ritz vectors: orthonormal states of the span that diagonalise H with the levels on the diagonal
    with_vectors = nqs_exact_energies(run.nqs, hamiltonian, return_vectors=True)
    full = np.zeros((2**hamiltonian.n_sites, n_states), dtype=complex)
    full[with_vectors["basis"]] = with_vectors["vectors"]
    assert full.conj().T @ full == pytest.approx(np.eye(n_states), abs=1e-9)
    assert full.conj().T @ h @ full == pytest.approx(np.diag(exact["levels"]), abs=1e-9)
    span = psi @ np.linalg.lstsq(psi, full, rcond=None)[0]  # each vector lies in the span of the psi_k
    assert span == pytest.approx(full, abs=1e-9)
    if n_states == 1:
        v = psi[:, 0] / np.linalg.norm(psi[:, 0])
        energy = np.real(v.conj() @ h @ v)
        assert exact["variance"] == pytest.approx(np.real(v.conj() @ h @ h @ v) - energy**2, rel=1e-7)


def test_exact_nqs_energies_refuse_large_systems():
    run = VMCRun(VMCConfig(**{**TINY, "lx": 5, "ly": 5, "sampler": "mcmc"}))
    with pytest.raises(ValueError, match="max_dimension"):
        nqs_exact_energies(run.nqs, run.hamiltonian)


def test_frozen_nir_does_not_train_its_proposal():
    run = VMCRun(VMCConfig(**TINY, states=2, sampler="nir"))
    frozen = run.sampler.frozen()
    assert frozen.train_steps == 0 and run.sampler.train_steps == 1
    state = run.sampler_state
    for seed in range(2):
        _, new_state, _ = run.draw(frozen, state, jax.random.key(seed))
        assert _same_tree(new_state.proposal, state.proposal)
    _, trained, _ = run.draw(run.sampler, state, jax.random.key(0))  # the training sampler does train
    assert not _same_tree(trained.proposal, state.proposal)


@pytest.mark.parametrize("sampler", ["nir", "mcmc"])
def test_jsd_measurement_leaves_training_exactly_as_without_it(sampler):
    options = dict(**TINY, states=2, sampler=sampler, steps=3, mcmc_warmup=8, mcmc_thinning=2, jsd_samples=64)
    measured, plain = VMCRun(VMCConfig(**options, jsd_every=2)), VMCRun(VMCConfig(**options))
    before = measured.sampler_state
    jsds = sampler_jsd(measured, before, jax.random.key(5), 64)
    assert _same_tree(measured.sampler_state, before)  # the measurement kept no state
    assert set(jsds) == set(JSD_COLUMNS) and all(0 < value <= np.log(2) for value in jsds.values())
    # forgetting the order of the K configurations never increases a JSD
    assert jsds["jsd_unordered"] <= jsds["jsd"] + 1e-12
    assert jsds["jsd_unordered_exact"] <= jsds["jsd_exact"] + 1e-12
    measured.train(progress=False)
    plain.train(progress=False)
    rows_measured, rows_plain = pd.DataFrame(measured.rows), pd.DataFrame(plain.rows)
    assert rows_measured["jsd"].notna().sum() == 2 and rows_measured["jsd_exact"].notna().sum() == 2
    assert rows_plain["jsd"].isna().all()
    drop = [*JSD_COLUMNS, "seconds"]
    pd.testing.assert_frame_equal(rows_measured.drop(columns=drop), rows_plain.drop(columns=drop))
    assert _same_tree(measured.nqs, plain.nqs) and _same_tree(measured.sampler_state, plain.sampler_state)


def test_jsd_of_exact_draws_sits_at_the_finite_sample_floor():
    run = VMCRun(VMCConfig(**{**TINY, "batch": 512}, states=2, sampler="exact"))
    jsds = sampler_jsd(run, run.sampler_state, jax.random.key(0), 2048)
    assert jsds["jsd"] == pytest.approx(jsds["jsd_exact"], rel=0.25)
    assert jsds["jsd_exact"] > 0.01  # 2048 draws over 240 possible tuples: clearly above zero
    assert jsds["jsd_unordered"] == pytest.approx(jsds["jsd_unordered_exact"], rel=0.35)


def test_unordered_tuple_indices_forget_the_order_of_the_states_only():
    rng = np.random.default_rng(0)
    configs = rng.choice(np.array([-1, 1], dtype=np.int8), size=(50, 3, 4))
    unordered = unordered_tuple_indices(indices_from_spins(configs), 3, 4)
    for permutation in itertools.permutations(range(3)):
        permuted = indices_from_spins(configs[:, list(permutation)])
        np.testing.assert_array_equal(unordered_tuple_indices(permuted, 3, 4), unordered)
    # the result is the index of the tuple with its states' configurations in ascending order
    rows = np.asarray(indices_from_spins(configs.reshape(150, 1, 4))).reshape(50, 3)
    ascending = np.take_along_axis(configs, np.argsort(rows, axis=1)[:, :, None], axis=1)
    np.testing.assert_array_equal(unordered, np.asarray(indices_from_spins(ascending)))
    # tuples that differ in more than the order stay apart
    distinct_sets = {tuple(sorted(r)) for r in rows.tolist()}
    assert len(np.unique(unordered)) == len(distinct_sets)


def test_tuple_jsds_separate_an_ordering_imbalance_from_a_wrong_distribution():
    """All 2-tuples of distinct 2-site configurations, equally likely: a sampler that draws each
    pair in one order only is as far as it can be over ordered tuples and exact over unordered ones."""
    configs = np.array([(a, b) for a in itertools.product([1, -1], repeat=2)
                        for b in itertools.product([1, -1], repeat=2) if a != b], dtype=np.int8)
    indices = np.asarray(indices_from_spins(configs))
    probs = np.full(len(indices), 1 / len(indices))
    rows = np.asarray(indices_from_spins(configs.reshape(-1, 1, 2))).reshape(-1, 2)
    one_order = (rows[:, 0] < rows[:, 1]).astype(float)  # each unordered pair in one order only
    jsds = tuple_jsds(probs, one_order, probs, indices, 2, 2)
    # p = 1/12 on 12 tuples, q = 1/6 on 6 of them: JSD = ln(4/3) / 4 + ln(4/3) / 2
    assert jsds["jsd"] == pytest.approx(0.75 * np.log(4 / 3), rel=1e-12)
    assert jsds["jsd_unordered"] == pytest.approx(0.0, abs=1e-12)
    assert jsds["jsd_exact"] == pytest.approx(0.0, abs=1e-12)
    lopsided = one_order * (1.0 + (rows[:, 0] == 0))  # the pairs containing all-up drawn twice as often
    assert tuple_jsds(probs, lopsided, probs, indices, 2, 2)["jsd_unordered"] > 0.01


def test_evaluation_respects_the_efficiency_gate_and_leaves_the_run_unchanged():
    hopeless = VMCRun(VMCConfig(**TINY, states=2, sampler="nir", alpha_eff=0.99, max_retries=2))
    state = hopeless.sampler_state
    result = evaluate(hopeless, 64, jax.random.key(0))
    assert result["eval_gate"] is False and result["eval_retrains"] == 2
    assert _same_tree(hopeless.sampler_state, state)
    easy = VMCRun(VMCConfig(**TINY, states=2, sampler="nir", alpha_eff=0.0))
    result = evaluate(easy, 64, jax.random.key(0))
    assert result["eval_gate"] is True and result["eval_retrains"] == 0
    assert sum(result["levels"]) == pytest.approx(result["energy"], rel=1e-10)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("run") / "ckpt"
    run = VMCRun(VMCConfig(**TINY, states=2, sampler="nir", steps=3))
    run.train(checkpoint_dir=directory, progress=False)
    return directory


@pytest.mark.parametrize("extra", [
    [], ["--sampler", "mcmc", "--batch", "64", "--samples", "512"],
    ["--sampler", "mcmc", "--batch", "64", "--samples", "512", "--mcmc-chains", "32", "--mcmc-global-flip", "0.1"],
])
def test_evaluate_command_writes_one_honest_row(tmp_path, checkpoint, extra):
    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--out", str(out), *extra]) == 0
    row = pd.read_csv(out).iloc[0]
    n_sites = 4
    assert row["v_score"] == pytest.approx(n_sites * row["variance"] / row["energy"] ** 2, rel=1e-12)
    assert row["e_0"] + row["e_1"] == pytest.approx(row["energy"], rel=1e-10)
    assert row["e_0_sigma"] > 0 and row["e_1_sigma"] > 0 and row["energy_sigma"] > 0
    assert row["nqs_step"] == 3 and row["trained_with"] == "nir" and bool(row["eval_gate"])
    # the exact energy of the same NQS lies within the error bar
    assert abs(row["energy"] - row["exact_energy"]) < 4 * row["energy_sigma"]
    assert row["exact_e_0"] + row["exact_e_1"] == pytest.approx(row["exact_energy"], rel=1e-10)


def _damaged(tmp_path, checkpoint, pattern, content):
    directory = tmp_path / "damaged"
    directory.mkdir()
    for path in checkpoint.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    path = next(directory.glob(pattern))
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        path.write_text(json.dumps({**json.loads(path.read_text()), **content}))
    else:
        path.write_bytes(path.read_bytes()[:content])
    return directory


@pytest.mark.parametrize(
    "damage, message",
    [
        (None, "no checkpoint"),
        (("meta.json", b"{not json"), "meta.json: not a nirbench checkpoint"),
        (("meta.json", {"config": {"model": "tfi"}}), "meta.json: not a nirbench checkpoint"),
        (("state-*.eqx", 100), "does not match its checksum"),
    ],
)
def test_evaluate_refuses_a_missing_or_damaged_checkpoint(tmp_path, capsys, checkpoint, damage, message):
    directory = tmp_path / "missing" if damage is None else _damaged(tmp_path, checkpoint, *damage)
    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--checkpoint", str(directory), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--mcmc-global-flip", "0.1"], "apply to --sampler mcmc, not 'nir'"),
    (["--sampler", "mcmc", "--mcmc-global-flip", "1.5"], "global_flip must be in [0, 1), got 1.5"),
])
def test_evaluate_refuses_bad_metropolis_settings(tmp_path, capsys, checkpoint, extra, message):
    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_refuses_a_sampler_that_cannot_serve_the_system(tmp_path, capsys):
    directory = tmp_path / "big"
    VMCRun(VMCConfig(**{**TINY, "lx": 4, "ly": 4, "states": 2, "sampler": "mcmc"})).save_checkpoint(directory)
    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--checkpoint", str(directory), "--out", str(out), "--sampler", "exact"]) == 2
    assert "exact sampling enumerates 2^(K*N) = 2^32" in capsys.readouterr().err
    assert not out.exists()
