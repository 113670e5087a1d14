"""workflow/scripts/compare_runs.py, which the SLURM self-test uses to compare its outputs."""

import importlib.util
import pathlib

import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("compare_runs", ROOT / "workflow" / "scripts" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(compare_runs)


def write(root, name, frame):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def make_run(root, energy=-1.5, seconds=1.0, extra_checkpoint="abc"):
    results = root / "results"
    write(results, "fig2_runs.csv", pd.DataFrame({
        "energy": [energy, float("nan")], "wall_seconds": [seconds, seconds], "sampler": ["nir", None],
        "run_dir": [f"{results}/vmc/a", f"{results}/vmc/b"],
    }))
    write(results, "vmc/a/steps.csv", pd.DataFrame({"step": [0, 1], "energy": [-1.0, -1.2], "seconds": [seconds] * 2}))
    write(results, f"vmc/a/checkpoints/{extra_checkpoint}/rows.csv", pd.DataFrame({"x": [1]}))
    write(results, "logs/x.csv", pd.DataFrame({"x": [seconds]}))
    return str(results)


def test_equal_runs_with_other_timings_and_folders(tmp_path):
    ref = make_run(tmp_path / "local", seconds=1.0, extra_checkpoint="aaa")
    new = make_run(tmp_path / "slurm", seconds=9.0, extra_checkpoint="bbb")
    assert compare_runs.compare(ref, new) == []


def test_a_changed_value_and_a_missing_file_are_found(tmp_path):
    ref = make_run(tmp_path / "local")
    new = make_run(tmp_path / "slurm", energy=-1.5000000001)
    (pathlib.Path(new) / "vmc/a/steps.csv").unlink()
    problems = compare_runs.compare(ref, new)
    assert any("fig2_runs.csv: column energy differs" in p for p in problems)
    assert any("vmc/a/steps.csv: missing" in p for p in problems)
