"""The accuracy stage (workflow/scripts/accuracy.py): cases against their targets."""

import importlib.util
import pathlib
import sys

import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))  # accuracy.py imports its sibling collect.py
SPEC = importlib.util.spec_from_file_location("accuracy_stage", ROOT / "workflow" / "scripts" / "accuracy.py")
accuracy = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(accuracy)


def write_run(directory, energy, reference, steps=3, exact=None):
    directory.mkdir(parents=True)
    summary = {"model": "tfi", "lx": 4, "ly": 4, "bc": "periodic", "g": 3.0, "j2": None, "states": 3, "net": "mlp",
               "sampler": "nir", "seed": 0, "steps": steps, "iterations": steps, "energy": energy,
               "energy_sigma": 1e-3, "reference_energy": reference,
               "relative_error": abs(energy - reference) / abs(reference), "mean_efficiency": 0.5,
               "wall_seconds": 120.0, "status": "completed", "converged": True}  # fmt: skip
    if exact is not None:
        summary["exact_energy"] = exact
    pd.DataFrame([summary]).to_csv(directory / "summary.csv", index=False)
    pd.DataFrame({"step": range(steps), "nqs_step": range(1, steps + 1), "energy": [energy] * steps,
                  "energy_error": [energy - reference] * steps}).to_csv(directory / "steps.csv", index=False)  # fmt: skip
    (directory / "run.yaml").write_text("width: 64\n")
    return directory


def test_cases_are_judged_against_their_targets(tmp_path):
    runs = [write_run(tmp_path / "a", -100.005, -100.0), write_run(tmp_path / "b", -99.0, -100.0, steps=2)]
    files = lambda name: [str(run / name) for run in runs]
    table = accuracy.table(files("summary.csv"), files("run.yaml"), ["met_case", "missed_case"], [1e-4, 1e-3])
    assert list(table["case"]) == ["met_case", "missed_case"]
    assert list(table["met"]) == [True, False]
    assert table["lattice"].iloc[0] == "4x4" and table["wall_minutes"].iloc[0] == 2.0
    steps = accuracy.training(files("steps.csv"), files("summary.csv"), files("run.yaml"), ["a", "b"], [1e-4, None])
    assert list(steps["case"]) == ["a"] * 3 + ["b"] * 2 and steps["target"].iloc[0] == 1e-4
    no_target = accuracy.table(files("summary.csv")[:1], files("run.yaml")[:1], ["c"], [None])
    assert no_target["met"].iloc[0] == ""


def test_the_exact_error_decides_where_the_run_enumerated_its_states(tmp_path):
    """A sampled trace below the target but an exact one above it is not met, and the reverse is;
    a run without exact energies is judged by its sampled error (the two runs' columns differ)."""
    runs = [
        write_run(tmp_path / "lucky", -100.001, -100.0, exact=-99.98),  # sampled 1e-5, exact 2e-4
        write_run(tmp_path / "unlucky", -99.97, -100.0, exact=-99.999),  # sampled 3e-4, exact 1e-5
        write_run(tmp_path / "sampled", -99.9995, -100.0),  # no exact energy: sampled 5e-6
    ]
    files = lambda name: [str(run / name) for run in runs]
    table = accuracy.table(files("summary.csv"), files("run.yaml"), ["lucky", "unlucky", "sampled"], [1e-4] * 3)
    assert list(table["met"]) == [False, True, True]
    assert table["exact_relative_error"].iloc[0] == pytest.approx(2e-4)
    assert table["exact_relative_error"].iloc[1] == pytest.approx(1e-5)
    assert pd.isna(table["exact_relative_error"].iloc[2]) and table["relative_error"].iloc[2] == pytest.approx(5e-6)
