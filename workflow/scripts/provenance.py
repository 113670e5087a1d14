"""Provenance of a pipeline run -> results/provenance.json.

Records: the resolved config and the config files it came from; the git commit (and whether the
working tree had uncommitted changes); Python, platform and package versions
(importlib.metadata); the wall time of this Snakemake invocation (from the start stamp written
by `onstart`); the compute time of every job (from the benchmark files: seconds and peak memory,
summed per rule); which of those jobs ran in this invocation (a benchmark file written after the
start stamp), so that a partial rerun (one figure regenerated) is not read as a whole run; and the
size and SHA-256 of every final output.
"""


import glob
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata

from nirbench.io import write_text_atomically

PACKAGES = [
    "nirbench", "jax", "jaxlib", "equinox", "optax", "physics-tenpy", "numpy", "scipy", "pandas",
    "matplotlib", "pyyaml", "tqdm", "snakemake", "snakemake-executor-plugin-slurm",
]


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()

    # "dirty": tracked files other than the pipeline's own outputs (results/, figures/) changed
    outputs = [":(exclude)results", ":(exclude)figures"]
    try:
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *outputs)
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changed)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def _start_stamp(start_file: str) -> float | None:
    """The time stamp `onstart` wrote, or ``None`` when it is missing or unreadable."""
    try:
        with open(start_file) as handle:
            return float(handle.read().strip())
    except (OSError, ValueError):
        return None


def _benchmark_files(benchmark_dir: str) -> list[tuple[str, str]]:
    """``(rule, path)`` of every Snakemake benchmark file, sorted by path (the rule is the first folder)."""
    paths = sorted(glob.glob(os.path.join(benchmark_dir, "**", "*.tsv"), recursive=True))
    return [(os.path.relpath(path, benchmark_dir).split(os.sep)[0], path) for path in paths]


def wall_time(start_file: str) -> dict:
    now = time.time()
    start = _start_stamp(start_file)
    if start is None:
        return {"started": None, "finished": _iso(now), "wall_seconds": None}
    return {"started": _iso(start), "finished": _iso(now), "wall_seconds": round(now - start, 1)}


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat(timespec="seconds")


def job_times(benchmark_dir: str) -> dict:
    """Sum the Snakemake benchmark files per rule: jobs, seconds, peak resident memory."""
    per_rule = {}
    for rule, path in _benchmark_files(benchmark_dir):
        with open(path) as handle:
            rows = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
        if len(rows) < 2:
            continue
        header, values = rows[0], rows[1]
        record = dict(zip(header, values))
        entry = per_rule.setdefault(rule, {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += _float(record.get("s"))
        entry["max_rss_mb"] = max(entry["max_rss_mb"], _float(record.get("max_rss")))
    total = sum(entry["seconds"] for entry in per_rule.values())
    return {"total_seconds": round(total, 1), "per_rule": per_rule}


def jobs_this_invocation(benchmark_dir: str, start_file: str) -> dict:
    """The jobs of this Snakemake invocation: per rule, how many benchmark files were written after
    the start stamp; ``complete`` when every job with a benchmark file ran in this invocation (a
    from-scratch run), false for a partial rerun; ``None`` without a start stamp."""
    start = _start_stamp(start_file)
    if start is None:
        return {"per_rule": None, "complete": None}
    files = _benchmark_files(benchmark_dir)
    per_rule = {}
    for rule, path in files:
        if os.path.getmtime(path) >= start:
            per_rule[rule] = per_rule.get(rule, 0) + 1
    return {"per_rule": dict(sorted(per_rule.items())), "complete": sum(per_rule.values()) == len(files)}


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def file_record(path: str) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": path, "bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def provenance(outputs, out: str, config: dict, configfiles, start_file: str, benchmark_dir: str) -> dict:
    record = {
        "pipeline": "nirbench",
        **wall_time(start_file),
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": {"processor": platform.machine(), "cpus": os.cpu_count()},
        "packages": package_versions(),
        "configfiles": list(configfiles),
        "config": config,
        "jobs": job_times(benchmark_dir),
        "jobs_this_invocation": jobs_this_invocation(benchmark_dir, start_file),
        "outputs": [file_record(path) for path in outputs],
    }
    write_text_atomically(json.dumps(record, indent=2, default=str) + "\n", out)
    return record


if "snakemake" in globals():
    smk = snakemake  # noqa: F821
    with open(smk.log[0], "w") as log:
        result = provenance(
            list(smk.input), smk.output[0], dict(smk.config), smk.params.configfiles, smk.params.start_file,
            smk.params.benchmarks,
        )
        log.write(f"wall_seconds={result['wall_seconds']} job_seconds={result['jobs']['total_seconds']}\n")
