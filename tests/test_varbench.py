"""The varbench export (workflow/scripts/varbench.py): V-score, file names, table rows."""

import importlib.util
import math
import pathlib

import numpy as np
import pandas as pd
import pytest

from nirbench.exact import lowest_levels
from nirbench.hamiltonians import make_hamiltonian

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("varbench_export", ROOT / "workflow" / "scripts" / "varbench.py")
varbench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(varbench)

SUMMARY_COLUMNS = [
    "model", "lx", "ly", "bc", "g", "j2", "states", "net", "sampler", "seed", "steps", "energy",
    "energy_sigma", "variance", "v_score", "eval_gate", "status",
]


def read_table(path):
    """Parse a varbench Markdown table the way varbench's scripts/reader.py does."""
    lines = [line.strip() for line in pathlib.Path(path).read_text().splitlines() if line.strip()]

    def split(line):
        return [cell.strip() for cell in line.strip("|").split("|")]

    header = split(lines[0])
    assert "---" in lines[1]
    return [dict(zip(header, split(line))) for line in lines[2:]]


@pytest.mark.parametrize("model,g,j2", [("tfi", 1.0, None), ("j1j2", None, 0.5)])
def test_v_score_is_zero_on_an_exact_eigenstate(model, g, j2):
    # the local energies (H psi)(s) / psi(s) of an eigenstate are all E: variance 0, V = 0
    hamiltonian = make_hamiltonian(model, 3, 2, "open", g=g, j2=j2)
    energies, basis, vectors = lowest_levels(hamiltonian, 1, return_vectors=True)
    psi = vectors[:, 0]
    h_psi = hamiltonian.to_sparse(basis) @ psi
    support = np.abs(psi) > 1e-8
    weights = psi[support] ** 2 / np.sum(psi[support] ** 2)
    local = h_psi[support] / psi[support]
    energy = float(np.sum(weights * local))
    variance = float(np.sum(weights * (local - energy) ** 2))
    assert energy == pytest.approx(energies[0], abs=1e-10)
    assert variance < 1e-16
    assert varbench.v_score(energy, variance, 6) < 1e-16
    assert varbench.v_score(energy, 0.0, 6) == 0.0


def test_v_score_formula():
    assert varbench.v_score(-2.0, 0.5, 4) == pytest.approx(0.5)
    assert varbench.v_score(-2.0, 0.5, 4, e_inf=1.0) == pytest.approx(4 * 0.5 / 9)
    assert math.isnan(varbench.v_score(0.0, 1.0, 4))


def test_names_follow_varbench():
    assert varbench.varbench_path("tfi", 6, 6, "open", 1.0) == "TFIsing/square_36_O_1.md"
    assert varbench.varbench_path("j1j2", 4, 4, "periodic", 0.5) == "J1J2/square_16_P_0.5.md"
    assert varbench.varbench_path("tfi", 3, 2, "open", 0.01) == "TFIsing/rectangular-2x3_6_O_0.01.md"
    assert varbench.varbench_path("tfi", 12, 12, "open", 3.0) == "TFIsing/square_144_O_3.md"


def write_run(root, name, **values):
    row = {column: values.get(column, "") for column in SUMMARY_COLUMNS}
    path = root / name / "summary.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame([row]).to_csv(path, index=False)
    return str(path)


def test_export_of_a_synthetic_summary(tmp_path):
    # a sampled smoke-scale run (J1-J2 4x4, K = 1; its energy, variance and v_score as nirbench wrote them)
    j1j2 = {
        "model": "j1j2", "lx": 4, "ly": 4, "bc": "periodic", "j2": 0.5, "states": 1, "net": "rescnn",
        "sampler": "nir", "seed": 0, "steps": 10, "energy": -5.142190009365203,
        "energy_sigma": 0.28397569481726304, "variance": 6.957005949211102, "v_score": 4.209651238918964,
        "eval_gate": True, "status": "completed",
    }
    summaries = [
        write_run(tmp_path, "a", **j1j2),
        write_run(tmp_path, "b", **{**j1j2, "eval_gate": False}),
        write_run(tmp_path, "c", **{**j1j2, "status": "stalled"}),
        write_run(tmp_path, "d", model="tfi", lx=3, ly=2, bc="open", g=0.5, states=3, net="mlp", sampler="mcmc",
                  seed=0, steps=10, energy=-3.8, energy_sigma=0.3, variance=8.8, v_score=6 * 8.8 / 3.8**2, eval_gate=True,
                  status="completed"),
        write_run(tmp_path, "e", model="tfi", lx=3, ly=2, bc="open", g=1.0, states=1, net="mlp", sampler="mcmc",
                  seed=1, steps=10, energy=-7.25, energy_sigma=0.01, variance=0.04, v_score=6 * 0.04 / 7.25**2,
                  eval_gate="", status="completed"),
    ]
    out = tmp_path / "varbench"
    index = varbench.export(summaries, [], str(out), str(tmp_path / "varbench_runs.csv"))

    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.md"))
    assert files == ["J1J2/square_16_P_0.5.md", "TFIsing/rectangular-2x3_6_O_1.md"]

    (row,) = read_table(out / "J1J2" / "square_16_P_0.5.md")
    assert list(row) == varbench.COLUMNS
    # varbench writes J1-J2 with Pauli matrices: 4x our S = sigma/2 energies, 16x the variance
    assert float(row["Energy"]) == pytest.approx(4 * j1j2["energy"], rel=1e-14)
    assert float(row["Sigma"]) == pytest.approx(4 * j1j2["energy_sigma"], rel=1e-14)
    assert float(row["Energy Variance"]) == pytest.approx(16 * j1j2["variance"], rel=1e-14)
    assert row["DOF"] == "16" and row["Einf"] == "0"
    assert "NIR" in row["Method"] and "ResCNN" in row["Method"]
    # the V-score of the exported row is the run's own v_score column
    v = varbench.v_score(float(row["Energy"]), float(row["Energy Variance"]), int(row["DOF"]), float(row["Einf"]))
    assert v == pytest.approx(j1j2["v_score"], rel=1e-12)

    (tfi_row,) = read_table(out / "TFIsing" / "rectangular-2x3_6_O_1.md")
    assert float(tfi_row["Energy"]) == -7.25 and float(tfi_row["Energy Variance"]) == 0.04
    assert tfi_row["DOF"] == "6"

    reasons = dict(zip(index["run_dir"].map(lambda d: pathlib.Path(d).name), index["reason"]))
    assert index["exported"].tolist() == [True, False, False, False, True]
    assert "eval_gate false" in reasons["b"]
    assert "stalled" in reasons["c"]
    assert reasons["d"].startswith("K = 3")
    assert "not recorded" in reasons["e"]
    assert index["v_score"].to_numpy() == pytest.approx(index["v_score_summary"].astype(float).to_numpy())


def test_committed_default_scale_run_against_its_own_columns(tmp_path):
    # a committed table-1 run (its summary predates the v_score column): V from its own columns
    run = ROOT / "results/vmc/preset~j1j2-d8l1/j1j2/L~4x4/bc~periodic/j2~0.5/K~1/sampler~nir/seed~0"
    if not (run / "summary.csv").exists():
        pytest.skip("the default-scale results are not in this checkout")
    summary = pd.read_csv(run / "summary.csv").iloc[0]
    out = tmp_path / "varbench"
    varbench.export([str(run / "summary.csv")], [str(run / "run.yaml")], str(out), str(tmp_path / "i.csv"))
    (row,) = read_table(out / "J1J2" / "square_16_P_0.5.md")
    n = int(summary["lx"] * summary["ly"])
    expected = n * summary["variance"] / summary["energy"] ** 2
    got = varbench.v_score(float(row["Energy"]), float(row["Energy Variance"]), int(row["DOF"]))
    assert got == pytest.approx(expected, rel=1e-12)
    assert "Transformer 8/1/2" in row["Method"]
