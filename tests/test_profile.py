"""The iteration profile (nirbench.profiling, nirbench.profile): phases add up, timing is opt-in."""

import math
import os
import pathlib

import pandas as pd
import pytest

import nirbench.profile
from nirbench.cli import main
from nirbench.options import VMCConfig
from nirbench.profile import (
    COLUMNS,
    PHASES,
    PROFILE_CASES,
    case_options,
    exclusive_phases,
    plot_profile,
    profile_case,
)
from nirbench.profiling import cpu_description, is_profiling, profiling, timed


def test_timed_adds_only_while_profiling():
    assert timed("x", lambda a: a + 1, 1) == 2 and not is_profiling()
    with profiling() as raw:
        assert is_profiling()
        timed("x", lambda: None)
        timed("x", lambda: None)
    assert set(raw) == {"x"} and raw["x"] >= 0 and not is_profiling()


def test_exclusive_phases_sum_to_the_iteration():
    raw = {"sampling": 5.0, "proposal sampling": 3.0, "proposal training": 0.5, "local energies": 2.0,
           "gradient and minSR": 1.5, "trust region": 0.25}
    phases = exclusive_phases(raw, total=10.0)
    assert phases["proposal sampling"] == 3.0 and phases["sampling, other"] == 1.5
    assert sum(phases.values()) == pytest.approx(10.0) and phases["host"] == pytest.approx(1.25)
    assert set(phases) == set(PHASES)


TINY_RECIPE = """
model: tfi
width: 4
depth: 1
batch: 16
steps: 50
optimizer: sgd
lr: 0.01
proposal_dim: 4
proposal_layers: 1
proposal_heads: 1
trust_region: 0.5
proposal_training: proposals
"""


def test_a_small_nir_case_is_profiled_and_drawn(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    system = {"lx": 2, "ly": 2, "bc": "open", "g": 1.0, "states": 2}
    frame = profile_case("tiny", str(recipe), system, iterations=2, skip=1)
    assert list(frame.columns) == COLUMNS
    assert (frame["cpu"] == cpu_description()).all()
    phases = frame[frame["phase"].isin(PHASES)]
    assert phases["fraction"].sum() == pytest.approx(1.0)
    seconds = phases.set_index("phase")["seconds_per_iteration"]
    assert seconds["proposal sampling"] > 0 and seconds["local energies"] > 0
    assert (seconds.drop("host") >= 0).all()  # only the host remainder, a difference, may dip below zero
    total = frame.set_index("phase")["seconds_per_iteration"]
    assert math.isfinite(total["iteration (unprofiled)"]) and total["iteration (profiled)"] > 0
    plot_profile(frame, tmp_path / "profile.png")
    assert (tmp_path / "profile.png").stat().st_size > 0


def test_cpu_description_names_model_cores_and_widest_vector_extension(tmp_path):
    """Timing CSVs say which machine made them: model name, cores, the widest vector extension."""
    xeon = tmp_path / "xeon"
    xeon.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse2 avx avx2 avx512f\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse2 avx avx2 avx512f\n")
    epyc = tmp_path / "epyc"
    epyc.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n")
    cores = f"{os.cpu_count()} cores"
    assert cpu_description(str(xeon)) == f"Intel(R) Xeon(R) Processor, {cores}, avx512"
    assert cpu_description(str(epyc)) == f"AMD EPYC, {cores}, avx2"
    assert cpu_description(str(tmp_path / "absent")).endswith(cores)  # no cpuinfo: platform's name


def test_thread_limits_name_every_pool_with_the_count():
    """One place for the thread limits of a compute process (the pipeline's jobs, the benchmarks)."""
    from nirbench.threads import thread_limits

    limits = thread_limits(3)
    assert limits["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=3"
    assert {limits[name] for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")} == {"3"}
    with pytest.raises(ValueError, match="threads must be >= 1"):
        thread_limits(0)


def test_every_profile_case_gives_valid_options(monkeypatch):
    """The recipe cases read their file (paths relative to the repository root), the reference case
    is flat options; each builds a config, with the seed and no time limit."""
    monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[1])
    for name, (recipe, system) in PROFILE_CASES.items():
        options = case_options(recipe, system, seed=3)
        config = VMCConfig.from_dict(options)
        assert (config.seed, config.max_minutes, config.jsd_every) == (3, None, 0), name
        assert config.sampler == "nir", name
    reference = VMCConfig.from_dict(case_options(*PROFILE_CASES["tfi4x4_k3_248719e"]))
    assert (reference.states, reference.lx, reference.batch, reference.proposal_dim) == (3, 4, 512, 32)


def test_the_profile_figure_is_named_after_its_csv(tmp_path, monkeypatch):
    """``nirbench bench profile --out X.csv`` draws ``figures/benchmarks/X.png`` unless ``--figure``
    names another: a profile written elsewhere does not overwrite the default profile's figure."""
    frame = pd.DataFrame([{"case": "c", "tokens": 4, "phase": phase, "seconds_per_iteration": 1.0, "fraction": 0.1,
                           "iterations": 1, "cpu": "x"} for phase in PHASES], columns=COLUMNS)  # fmt: skip
    monkeypatch.setattr(nirbench.profile, "bench_profile", lambda *args: frame)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "profile", "--cases", "tfi4x4_k3", "--out", "elsewhere/mine.csv"]) == 0
    assert (tmp_path / "figures/benchmarks/mine.png").stat().st_size > 0
    assert not (tmp_path / "figures/benchmarks/profile.png").exists()
    assert main(["bench", "profile", "--cases", "tfi4x4_k3", "--out", "a.csv", "--figure", "b/own.png"]) == 0
    assert (tmp_path / "b/own.png").exists() and not (tmp_path / "figures/benchmarks/a.png").exists()
