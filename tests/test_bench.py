"""Fast smoke tests of the speed benchmarks (``nirbench.bench``: ``nirbench bench vmc``, and the target of
``nirbench bench sampling``'s symmetric case)."""

import math

import jax
import numpy as np
import pandas as pd
import pytest

from nirbench.bench import VMC_COLUMNS, _eigenstate_target, bench_vmc, table_log_prob, vmc_bench_config
from nirbench.samplers import NIRSampler
from nirbench.updates import count_parameters

TINY = {"lx": 2, "ly": 2, "width": 8, "depth": 1, "batch": 8, "n_chains": 4, "n_discard_sweeps": 1}


def test_bench_vmc_smoke():
    frame = bench_vmc(n_steps=1, n_warmup=1, **TINY)
    assert list(frame.columns) == VMC_COLUMNS
    assert list(frame["optimizer"]) == ["minsr", "adam"]
    assert (frame["batch"] == 8).all()
    # MLP 4 -> 8 (+ LayerNorm scale and shift) -> 2: 4*8 + 8 + 2*8 + 8*2 + 2
    assert (frame["params"] == 4 * 8 + 8 + 2 * 8 + 8 * 2 + 2).all()
    for seconds in frame["seconds_per_step"]:
        assert math.isfinite(seconds) and seconds > 0
    assert set(frame.attrs["step_seconds"]) == {"minsr", "adam"}


def test_vmc_bench_config_maps_netket_sampler():
    config = vmc_bench_config("adam")
    assert (config.lx, config.ly, config.bc, config.g, config.states) == (4, 4, "periodic", 3.0, 1)
    assert (config.net, config.width, config.depth, config.symmetries) == ("mlp", 128, 4, False)
    assert (config.batch, config.mcmc_chains, config.mcmc_warmup, config.mcmc_thinning) == (512, 16, 640, 16)
    assert config.minsr is False and vmc_bench_config("minsr").minsr is True
    assert vmc_bench_config("minsr").diag_shift == 1e-4


def test_count_parameters_mlp():
    import jax

    from nirbench.hamiltonians import make_hamiltonian
    from nirbench.models import build_nqs

    nqs = build_nqs(make_hamiltonian("tfi", 4, 4, "periodic", g=3.0), "mlp", 1, width=8, depth=2,
                    symmetries=False, key=jax.random.PRNGKey(0))  # fmt: skip
    # (16*8+8) + (8*8+8) + 2 LayerNorms (2*8) + output (8*2+2); for width 128, depth 4: 52994 (as NetKet)
    assert count_parameters(nqs) == 258


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_steps": 0},
        {"n_warmup": -1},
        {"optimizers": ("sgd",)},
        {"optimizers": ()},
        {"batch": 10, "n_chains": 4},
    ],
)
def test_bench_vmc_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        bench_vmc(**{**TINY, **kwargs})


def test_cli_bench_vmc(tmp_path):
    from nirbench.cli import main

    out = tmp_path / "vmc.csv"
    argv = ["bench", "vmc", "--steps", "1", "--warmup", "1", "--optimizers", "adam", "--lx", "2", "--ly", "2",
            "--width", "8", "--depth", "1", "--batch", "8", "--chains", "4", "--discard-sweeps", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == VMC_COLUMNS
    assert frame["optimizer"].tolist() == ["adam"] and frame["seconds_per_step"].iloc[0] > 0


def test_nir_samples_a_target_that_is_not_an_nqs():
    """A sampler's ``log_prob_fn`` may read any pytree: ``nirbench bench sampling``'s symmetric case
    samples a table of exact eigenvectors (it failed when the NIR kernel sized its chunks by the
    target's networks), and the table's ``|Psi|^2`` is what the weights use."""
    _, target = _eigenstate_target(2, 2, 2, 1.0)
    sampler = NIRSampler(16, 2, 4, embed_dim=4, n_heads=1, n_layers=1, train_steps=1)
    state = sampler.init(jax.random.key(0), 2, 4)
    batch, _, stats = sampler.sample(table_log_prob, target, state, jax.random.key(1))
    assert batch.configs.shape == (16, 2, 4) and stats["ess"] > 0
    assert np.isfinite(np.asarray(table_log_prob(target, batch.configs))).all()  # never a zero of Psi
