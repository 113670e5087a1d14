"""workflow/scripts/table1.py: the full runs and the fixed-NQS ablation in one table, on synthetic rows."""

import importlib.util
import pathlib
import sys

import numpy as np
import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))  # table1.py imports its sibling style.py
SPEC = importlib.util.spec_from_file_location("table1", ROOT / "workflow" / "scripts" / "table1.py")
table1 = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(table1)


def runs():
    """Full runs of the smallest and the largest size only (full_runs: extremes), one seed each."""
    return pd.DataFrame([
        {"model": "j1j2", "lx": 4, "ly": 4, "j2": 0.5, "proposal_dim": dim, "proposal_layers": layers, "seed": 0,
         "energy": energy, "energy_sigma": 0.004, "variance": 0.3, "mean_efficiency": eff, "mean_ess": 500.0,
         "reference_energy": -8.4579, "steps": 100, "wall_seconds": 600.0, "proposal_params": n_param,
         "converged": False, "status": "time_limit"}
        for dim, layers, energy, eff, n_param in ((8, 1, -8.40, 0.13, 1058), (16, 2, -8.43, 0.18, 6930))
    ])  # fmt: skip


def ablation():
    rows = []
    for dim, layers, n_param, eff in ((8, 1, 1058, 0.19), (8, 2, 1930, 0.25), (16, 1, 3650, 0.31), (16, 2, 6930, 0.33)):
        rows.append({"d_embd": dim, "n_layer": layers, "n_param": n_param, "efficiency": eff, "efficiency_sigma": 0.01,
                     "energy_per_site": -0.5276, "energy_per_site_sigma": 3e-4, "nqs_step": 100, "calls": 60,
                     "train_steps": 4, "train_seconds": 80.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_every_size_has_its_ablation_row_and_only_run_sizes_have_run_columns():
    table = table1.with_ablation(table1.aggregate(runs()), ablation())
    assert list(zip(table["d_embd"], table["n_layer"])) == [(8, 1), (8, 2), (16, 1), (16, 2)]
    assert table["fixed_nqs_efficiency"].tolist() == [0.19, 0.25, 0.31, 0.33]
    assert table["n_param"].tolist() == [1058, 1930, 3650, 6930]
    assert table["energy_per_site"].notna().tolist() == [True, False, False, True]
    text = table1.markdown(table)
    ablation_part, runs_part = text.split("## One VMC run per size")
    assert ablation_part.count("\n| 8 |") + ablation_part.count("\n| 16 |") == 4
    assert "0.310 ± 0.010" in ablation_part and "after 100 NQS updates" in ablation_part
    assert runs_part.count("\n| 8 |") + runs_part.count("\n| 16 |") == 2


def test_without_an_ablation_the_table_is_the_runs_alone(tmp_path):
    table = table1.with_ablation(table1.aggregate(runs()), pd.DataFrame())
    assert len(table) == 2 and table["fixed_nqs_efficiency"].isna().all()
    assert "fixed NQS" not in table1.markdown(table)
    png, pdf = tmp_path / "a.png", tmp_path / "a.pdf"
    table1.plot_ablation(table, pd.DataFrame(), str(png), str(pdf))  # a placeholder, not a crash
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0


def test_the_figure_is_written_from_the_calls(tmp_path):
    table = table1.with_ablation(table1.aggregate(runs()), ablation())
    calls = pd.DataFrame([
        {"d_embd": d, "n_layer": l, "call": c, "efficiency": 0.05 + 0.004 * c * np.log(d * l), "n_proposed": 2560}
        for d, l in ((8, 1), (8, 2), (16, 1), (16, 2)) for c in range(1, 61)
    ])  # fmt: skip
    png, pdf = tmp_path / "a.png", tmp_path / "a.pdf"
    table1.plot_ablation(table, calls, str(png), str(pdf))
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 0


def test_the_exact_energy_of_each_state_stands_beside_its_estimate():
    frame = runs().assign(exact_energy=[-8.41, -8.44])
    table = table1.aggregate(frame)
    np.testing.assert_allclose(table["exact_energy_per_site"], [-8.41 / 16, -8.44 / 16])
    np.testing.assert_allclose(table["exact_relative_error"], [(8.4579 - 8.41) / 8.4579, (8.4579 - 8.44) / 8.4579])
    text = table1.markdown(table)
    assert "exact E/N of the state" in text and "-0.52750" in text
    assert "exact E/N" not in table1.markdown(table1.aggregate(runs()))  # no enumeration: no column
