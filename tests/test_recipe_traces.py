"""benchmarks/recipe_traces.py: time to the target, updating share and longest hold of a run."""

import importlib.util
import pathlib

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).parents[1]
SPEC = importlib.util.spec_from_file_location("recipe_traces", ROOT / "benchmarks" / "recipe_traces.py")
recipe_traces = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(recipe_traces)


def test_a_run_within_the_target_after_its_rolling_mean_gets_there(tmp_path):
    """Trace -90 for 4 iterations, then -100 (the reference): with a window of 2 the mean of two
    iterations first lies within 1e-3 at the sixth iteration, after 6 x 30 s = 3 minutes."""
    updated = [True, False, False, True, False, True, True, True]
    steps = pd.DataFrame({
        "energy": [-90.0] * 4 + [-100.0] * 4, "seconds": [30.0] * 8, "nqs_updated": updated,
    })  # fmt: skip
    path = tmp_path / "run.csv"
    steps.to_csv(path, index=False)
    summary = {"energy": [-99.9], "energy_sigma": [0.1], "relative_error": [1e-3], "e_0": [-60.0],
               "e_1": [-39.9], "e_0_sigma": [0.01], "e_1_sigma": [0.01]}  # fmt: skip
    pd.DataFrame(summary).to_csv(tmp_path / "run_summary.csv", index=False)
    row, trace = recipe_traces.run_row("a", str(path), -100.0, 1e-3, 2)
    assert row["within_target_after_minutes"] == 3.0
    assert row["updating"] == 5 / 8 and row["longest_hold"] == 2 and row["iterations"] == 8
    assert row["minutes"] == 4.0
    assert row["final_levels"] == "-60.000 -39.900"
    np.testing.assert_allclose(trace["error"].iloc[3:5], [0.1, 0.05])
    # the passage (default 1e-2) at the sixth iteration, three of the six held; at 6e-2 the fifth
    assert (row["within_passage_after_minutes"], row["held_before_passage"]) == (3.0, 3)
    row, _ = recipe_traces.run_row("a", str(path), -100.0, 1e-3, 2, passage=0.06)
    assert (row["within_passage_after_minutes"], row["held_before_passage"]) == (2.5, 3)


def test_a_run_that_never_gets_there_has_no_time(tmp_path):
    steps = pd.DataFrame({"energy": [-90.0] * 5, "seconds": [1.0] * 5, "nqs_updated": [True] * 5})
    path = tmp_path / "run.csv"
    steps.to_csv(path, index=False)
    row, _ = recipe_traces.run_row("b", str(path), -100.0, 1e-3, 2)
    assert np.isnan(row["within_target_after_minutes"]) and row["longest_hold"] == 0
    assert np.isnan(row["within_passage_after_minutes"]) and row["held_before_passage"] == 0
    assert "final_energy" not in row


def test_a_frozen_metropolis_run_reports_its_acceptance_and_the_nir_measurement(tmp_path):
    """A Metropolis run (column ``acceptance``) gets its mean acceptance over the last 100 iterations;
    ``STEPS_eval_nir.csv`` beside it (the state measured again by NIR) gives its own error against the
    reference, while the run's frozen-chain estimate stays in ``final_*``."""
    acceptance = [0.5] * 20 + [0.0] * 90 + [0.01] * 10
    steps = pd.DataFrame({"energy": [-99.0] * 120, "seconds": [1.0] * 120, "nqs_updated": [True] * 120,
                          "acceptance": acceptance})  # fmt: skip
    path = tmp_path / "mcmc.csv"
    steps.to_csv(path, index=False)
    pd.DataFrame({"energy": [-99.95], "energy_sigma": [np.nan], "relative_error": [5e-4]}).to_csv(
        tmp_path / "mcmc_summary.csv", index=False
    )
    pd.DataFrame({"energy": [-99.8], "energy_sigma": [0.01]}).to_csv(tmp_path / "mcmc_eval_nir.csv", index=False)
    row, _ = recipe_traces.run_row("m", str(path), -100.0, 1e-3, 2)
    # a mean of 100 floats: the summation order (pandas against numpy, SIMD width) may move the last bit
    np.testing.assert_allclose(row["acceptance_last_100"], np.mean(acceptance[-100:]), rtol=1e-12)
    assert np.isnan(row["final_sigma"]) and row["final_relative_error"] == 5e-4
    np.testing.assert_allclose([row["nir_energy"], row["nir_sigma"], row["nir_relative_error"]], [-99.8, 0.01, 2e-3])
