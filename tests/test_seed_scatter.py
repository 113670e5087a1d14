"""benchmarks/seed_scatter.py: a run's error from its exact energy where it has one, settings' mean and scatter."""

import importlib.util
import pathlib

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).parents[1]
SPEC = importlib.util.spec_from_file_location("seed_scatter", ROOT / "benchmarks" / "seed_scatter.py")
seed_scatter = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(seed_scatter)


def write_summary(path, seed, energy, exact=None):
    """A two-level summary against the reference -60, -40 (trace -100)."""
    row = {"seed": seed, "states": 2, "iterations": 10, "wall_seconds": 120.0, "energy": energy,
           "relative_error": abs(energy + 100.0) / 100.0, "e_0": -59.9, "e_1": energy + 59.9,
           "reference_energy": -100.0, "reference_e_0": -60.0, "reference_e_1": -40.0}  # fmt: skip
    if exact is not None:
        row.update({"exact_energy": exact, "exact_e_0": -59.95, "exact_e_1": exact + 59.95})
    pd.DataFrame([row]).to_csv(path, index=False)
    return str(path)


def test_the_exact_energy_decides_and_settings_get_mean_and_scatter(tmp_path):
    runs = [
        ("a", write_summary(tmp_path / "a0.csv", 0, -99.99, exact=-99.98)),  # sampled 1e-4, exact 2e-4
        ("a", write_summary(tmp_path / "a1.csv", 1, -99.99, exact=-99.96)),  # exact 4e-4
        ("b", write_summary(tmp_path / "b0.csv", 0, -99.9)),  # no enumeration: sampled 1e-3
    ]
    table = seed_scatter.scatter_table(runs)
    per_run = table[table["seed"] != "all"].set_index("summary")
    np.testing.assert_allclose(per_run["relative_error"], [2e-4, 4e-4, 1e-3], rtol=1e-9)
    assert list(per_run["measure"]) == ["exact", "exact", "sampled"]
    np.testing.assert_allclose(per_run["sampled_relative_error"].iloc[0], 1e-4, rtol=1e-9)
    np.testing.assert_allclose(per_run["level_0_error"], [0.05, 0.05, 0.1], rtol=1e-9)
    means = table[table["seed"] == "all"].set_index("setting")
    np.testing.assert_allclose(means.loc["a", "relative_error"], 3e-4, rtol=1e-9)
    np.testing.assert_allclose(means.loc["a", "scatter"], np.std([2e-4, 4e-4], ddof=1), rtol=1e-9)
    assert means.loc["a", "runs"] == 2 and means.loc["b", "runs"] == 1 and np.isnan(means.loc["b", "scatter"])


def test_a_run_needs_setting_and_path(tmp_path):
    with pytest.raises(SystemExit):
        seed_scatter.main(["--runs", "no-equals-sign.csv"])
