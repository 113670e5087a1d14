"""Seconds per VMC iteration at several git revisions, measured in one run (issue 16's ratios).

    python benchmarks/revision_speed.py --revisions 248719e f0cddd9 HEAD \
        --out results/benchmarks/revision_speed.csv

Each revision is checked out as a detached worktree under ``runs/revisions/`` (ignored by git) and
every case runs in a fresh Python process with that worktree's ``src`` first on the path, one
revision after the other for the same case, on one core
(``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``). A case builds the
run from its options, makes ``--skip`` untimed iterations (compilation), then times
``--iterations`` more (``VMCRun.step``, wall clock); ``--repeats`` passes over all cases and
revisions, interleaved, show the machine's drift. One CSV row per (case, pass, revision): mean and
median seconds per iteration, the mean's ratio to the first revision's in the same pass, mean proposals drawn per
iteration (NIR's adaptive loop draws more when the efficiency is lower, so a changed trajectory
changes the time too), the NQS updates made, and the machine (`cpu`: ratios compare within one
machine only). A case whose options a revision does not know is
reported as ``unsupported`` instead of timed.

Cases (flat options, valid at every revision since 248719e unless noted):

* ``tfi4x4_k3_248719e``: 4x4 periodic TFI, g = 3, K = 3, NIR, MLP 64 x 3, batch 512, as in
  ``benchmarks/accuracy/tfi4x4_g3_k3_nir.yaml`` at commit 248719e (the reference of issue 16);
* ``tfi4x4_k3_248719e_patch4``: the same with ``proposal_patch: 4`` (a row of 4 spins per proposal
  token, 12 positions per tuple instead of 48); not known at 248719e;
* ``j1j2_4x4``: ``config/recipes/j1j2_nir.yaml`` on the 4x4 periodic lattice, J2 = 0.5
  (the symmetric ResCNN, 16 network calls per configuration);
* ``tfi4x4_k3_recipe``: ``config/recipes/tfi_multistate_nir.yaml`` (weighted proposal training,
  smoothed gate, trust region) on the same system as the first case; not known at 248719e;
* ``tfi6x6_k3_recipe``: the same recipe on 6x6 open TFI, g = 1, K = 3 (108 tokens, figure 2's
  large lattice);
* ``tfi4x4_k3_recipe_untempered``, ``tfi6x6_k3_recipe_untempered``: the two recipe cases without
  ``proposal_train_ess`` (not known before it; it acts only in calls that end below their ESS
  target, which the timed early iterations do not).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from nirbench.options import read_options_file
from nirbench.profile import TFI4X4_K3_248719E
from nirbench.profiling import cpu_description
from nirbench.threads import thread_limits

RECIPES = Path(__file__).resolve().parents[1] / "config" / "recipes"
TFI_4X4 = {"model": "tfi", "lx": 4, "ly": 4, "bc": "periodic", "g": 3.0, "states": 3}
TFI_6X6 = {"model": "tfi", "lx": 6, "ly": 6, "bc": "open", "g": 1.0, "states": 3}
J1J2_4X4 = {"model": "j1j2", "lx": 4, "ly": 4, "bc": "periodic", "j2": 0.5, "states": 1}
CASES = {
    "tfi4x4_k3_248719e": TFI4X4_K3_248719E,
    # the same with the proposal reading a row of 4 spins as one token (proposal_patch; not at 248719e)
    "tfi4x4_k3_248719e_patch4": {**TFI4X4_K3_248719E, "proposal_patch": 4},
    # the recipes as they are now, flattened (older revisions read flat options only)
    "j1j2_4x4": {**read_options_file(RECIPES / "j1j2_nir.yaml"), **J1J2_4X4},
    "tfi4x4_k3_recipe": {**read_options_file(RECIPES / "tfi_multistate_nir.yaml"), **TFI_4X4},
    "tfi6x6_k3_recipe": {**read_options_file(RECIPES / "tfi_multistate_nir.yaml"), **TFI_6X6},
}  # fmt: skip
# the recipes without the tempered training (an option revisions before it do not know; it acts
# only in calls that end below their ESS target, which the timed early iterations do not)
for _size in ("4x4", "6x6"):
    CASES[f"tfi{_size}_k3_recipe_untempered"] = {
        k: v for k, v in CASES[f"tfi{_size}_k3_recipe"].items() if k != "proposal_train_ess"
    }

#: what a child process runs: build the case at the revision on sys.path, time its iterations
CHILD = r"""
import json, sys, time
import numpy as np
import nirbench
from nirbench.vmc import VMCConfig, VMCRun
options, skip, iterations = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
try:
    run = VMCRun(VMCConfig(**options))
except (TypeError, ValueError) as error:
    print(json.dumps({"status": "unsupported", "detail": str(error)}))
    sys.exit(0)
seconds, proposed, updates = [], [], 0
for i in range(skip + iterations):
    start = time.perf_counter()
    row = run.step()
    if i >= skip:
        seconds.append(time.perf_counter() - start)
        proposed.append(row["n_proposed"])
        updates += int(row["nqs_updated"])
print(json.dumps({
    "status": "timed", "module": nirbench.__file__, "mean_seconds": float(np.mean(seconds)),
    "median_seconds": float(np.median(seconds)), "min_seconds": float(np.min(seconds)),
    "mean_proposed": float(np.nanmean(np.asarray(proposed, dtype=float))), "nqs_updates": updates,
}))
"""


def worktree(revision: str, root: Path) -> tuple[str, Path]:
    """The full commit of ``revision`` and a detached worktree of it under ``root``."""
    commit = subprocess.run(
        ["git", "rev-parse", revision], check=True, capture_output=True, text=True
    ).stdout.strip()
    path = root / commit[:12]
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], check=True, capture_output=True)
    return commit, path


def time_case(path: Path, options: dict, skip: int, iterations: int) -> dict:
    """Run :data:`CHILD` for ``options`` with the worktree ``path`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(path / "src"), **thread_limits(1)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(options), str(skip), str(iterations)],
        env=env, cwd=path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"case failed at {path}:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if report["status"] == "timed" and not report["module"].startswith(str(path)):
        raise RuntimeError(f"imported {report['module']} instead of the worktree {path}")
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", nargs="+", default=["248719e", "HEAD"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--skip", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="passes over all cases and revisions, interleaved")
    parser.add_argument("--out", default="results/benchmarks/revision_speed.csv")
    args = parser.parse_args(argv)
    root = Path("runs/revisions").resolve()
    root.mkdir(parents=True, exist_ok=True)
    trees = [(revision, *worktree(revision, root)) for revision in args.revisions]
    rows = []
    for repeat in range(args.repeats):
        for case in args.cases:
            for revision, commit, path in trees:
                report = time_case(path, CASES[case], args.skip, args.iterations)
                report.pop("module", None)
                rows.append({"case": case, "repeat": repeat, "revision": revision, "commit": commit[:12], **report})
                print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    # each pass's ratio to the first revision timed in the same pass
    first = frame.groupby(["case", "repeat"])["mean_seconds"].transform(
        lambda s: s.dropna().iloc[0] if s.notna().any() else s
    )
    frame["ratio_to_first"] = frame["mean_seconds"] / first
    frame["iterations"], frame["skip"] = args.iterations, args.skip
    frame["cpu"] = cpu_description()  # ratios compare within one machine only
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
