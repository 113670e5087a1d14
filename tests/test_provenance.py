"""workflow/scripts/provenance.py: which jobs a Snakemake invocation ran (a partial rerun is marked)."""

import importlib.util
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("provenance", ROOT / "workflow" / "scripts" / "provenance.py")
provenance = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(provenance)


def _benchmark(path: pathlib.Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\tmax_rss\n12.5\t300\n")
    os.utime(path, (mtime, mtime))


def test_a_partial_rerun_lists_only_its_own_jobs(tmp_path):
    benchmarks, start_file = tmp_path / "benchmarks", tmp_path / "start.txt"
    start_file.write_text("1000.0\n")
    _benchmark(benchmarks / "vmc" / "fig2" / "a.tsv", 500.0)  # an earlier invocation's job
    _benchmark(benchmarks / "vmc" / "fig3" / "b.tsv", 1500.0)
    _benchmark(benchmarks / "claims" / "c.tsv", 1600.0)
    ran = provenance.jobs_this_invocation(str(benchmarks), str(start_file))
    assert ran == {"per_rule": {"claims": 1, "vmc": 1}, "complete": False}
    assert provenance.job_times(str(benchmarks))["per_rule"]["vmc"]["jobs"] == 2  # every job's time stays

    os.utime(benchmarks / "vmc" / "fig2" / "a.tsv", (1200.0, 1200.0))
    assert provenance.jobs_this_invocation(str(benchmarks), str(start_file))["complete"] is True
    assert provenance.jobs_this_invocation(str(benchmarks), str(tmp_path / "missing.txt")) == {
        "per_rule": None, "complete": None}  # fmt: skip
