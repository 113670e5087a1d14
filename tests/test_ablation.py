"""The proposal-size ablation against a fixed NQS (nirbench.ablation, `nirbench ablate`), on a
2x2 TFI system small enough to enumerate."""

import equinox as eqx
import jax
import numpy as np
import pandas as pd
import pytest

from nirbench.ablation import ablate_proposal_sizes, parse_size
from nirbench.cli import main
from nirbench.exact import nqs_exact_energies
from nirbench.proposal import TransformerProposal
from nirbench.updates import count_parameters
from nirbench.vmc import VMCConfig, VMCRun

TINY = {"model": "tfi", "lx": 2, "ly": 2, "bc": "open", "g": 1.5, "width": 8, "depth": 1, "batch": 64,
        "states": 2, "sampler": "exact", "proposal_heads": 2, "steps": 3}  # fmt: skip
SIZES = [(4, 1), (8, 2)]


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run after 3 NQS updates, checkpointed (trained on exact samples: the ablation takes
    any NQS, and a NIR run would compile a proposal of the default size for nothing)."""
    directory = tmp_path_factory.mktemp("run") / "ckpt"
    run = VMCRun(VMCConfig(**TINY))
    run.train(checkpoint_dir=directory, progress=False)
    return run, directory


@pytest.fixture(scope="module")
def ablation(trained):
    run, _ = trained
    before = _leaves(run.nqs)
    table, calls = ablate_proposal_sizes(run, SIZES, calls=4, train_steps=2, efficiency_calls=3, samples=1024,
                                         progress=False)  # fmt: skip
    return table, calls, before


def test_every_size_gets_the_same_budget_against_an_nqs_that_stays_fixed(trained, ablation):
    run, _ = trained
    table, calls, before = ablation
    assert all(np.array_equal(a, b) for a, b in zip(before, _leaves(run.nqs), strict=True))
    assert list(zip(table["d_embd"], table["n_layer"])) == SIZES
    for dim, layers in SIZES:
        expected = count_parameters(TransformerProposal(8, dim, 2, layers, key=jax.random.PRNGKey(0)))
        assert table.set_index(["d_embd", "n_layer"]).loc[(dim, layers), "n_param"] == expected
        rows = calls[(calls["d_embd"] == dim) & (calls["n_layer"] == layers)]
        assert list(rows["call"]) == [1, 2, 3, 4]
        assert rows["n_proposed"].sum() == table.set_index(["d_embd", "n_layer"]).loc[(dim, layers), "proposals"]
    assert (table["calls"] == 4).all() and (table["train_steps"] == 2).all() and (table["nqs_step"] == 3).all()
    assert ((table["efficiency"] > 0) & (table["efficiency"] <= 1)).all()
    assert (table["efficiency_sigma"] > 0).all()


def test_every_size_estimates_the_exact_energy_of_the_fixed_nqs(trained, ablation):
    run, _ = trained
    table, _, _ = ablation
    exact = nqs_exact_energies(run.nqs, run.hamiltonian)["trace"]
    assert (np.abs(table["energy"] - exact) < 4 * table["energy_sigma"]).all()
    assert np.allclose(table["energy_per_site"], table["energy"] / 4, rtol=1e-12)


def test_the_same_seed_gives_the_same_measurement(trained):
    run, _ = trained
    first, _ = ablate_proposal_sizes(run, [(4, 1)], calls=2, train_steps=1, efficiency_calls=2, samples=64,
                                     progress=False)  # fmt: skip
    second, _ = ablate_proposal_sizes(run, [(4, 1)], calls=2, train_steps=1, efficiency_calls=2, samples=64,
                                      progress=False)  # fmt: skip
    columns = ["efficiency", "energy", "proposals"]
    pd.testing.assert_frame_equal(first[columns], second[columns])


@pytest.mark.parametrize(
    "sizes, options, message",
    [
        ([(3, 1)], {}, "multiple of the run's proposal_heads"),
        ([(4, 0)], {}, "layers >= 1"),
        ([], {}, "at least one proposal size"),
        ([(4, 1)], {"calls": 0}, "calls must be"),
        ([(4, 1)], {"train_steps": 10_000}, "train_steps must be at most"),
        ([(4, 1)], {"samples": 0}, "samples must be"),
    ],
)
def test_bad_input_is_one_clear_error(trained, sizes, options, message):
    run, _ = trained
    with pytest.raises(ValueError, match=message):
        ablate_proposal_sizes(run, sizes, progress=False, **options)


def test_sizes_are_spelled_embed_x_layers():
    assert parse_size("16x2") == (16, 2)
    for text in ("16", "16x", "x2", "16x2x1", "ax2"):
        with pytest.raises(ValueError, match="EMBEDxLAYERS"):
            parse_size(text)


def test_the_ablate_command_writes_both_tables(tmp_path, trained):
    _, checkpoint = trained
    out, calls = tmp_path / "sizes.csv", tmp_path / "calls.csv"
    argv = ["ablate", "--checkpoint", str(checkpoint), "--sizes", "4x1", "8x1", "--calls", "2", "--train-steps", "1",
            "--efficiency-calls", "2", "--samples", "64", "--out", str(out), "--calls-out", str(calls)]  # fmt: skip
    assert main(argv) == 0
    assert len(pd.read_csv(out)) == 2 and len(pd.read_csv(calls)) == 4
    bad = tmp_path / "bad.csv"
    assert main([*argv[:4], "8x", "--out", str(bad)]) == 2
    assert main([*argv[:4], "4x1", "--out", str(checkpoint / "inside.csv")]) == 2
    assert not bad.exists() and not (checkpoint / "inside.csv").exists()
