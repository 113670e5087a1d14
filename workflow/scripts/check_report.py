"""Check a `snakemake --report` HTML file: every figure and table of a pipeline run is in it.

    python workflow/scripts/check_report.py REPORT.html --results-dir results/smoke --figures-dir figures/smoke

Expected: every pipeline figure (PNG) under the figures folder, table1.{csv,md}, the collected CSVs
(fig2_runs, fig2_training, fig3_jsd, fig4_levels, table1_runs) and varbench_runs.csv where they
exist, provenance.json, and every varbench table. Each must be embedded with exactly the bytes of
the file on disk and carry a caption that names the config (``results_dir = ...``). Exit 1 with
one line per problem otherwise. Only reads files; computes nothing.
"""

import argparse
import base64
import glob
import json
import os
import re
import sys

TABLES = [
    "table1.csv", "table1.md", "fig2_runs.csv", "fig2_training.csv", "fig3_jsd.csv", "fig4_levels.csv",
    "table1_runs.csv", "varbench_runs.csv", "provenance.json",
]


def embedded(report: str) -> dict:
    with open(report, encoding="utf-8") as handle:
        text = handle.read()
    match = re.search(r"var results = (\{.*?\});\n", text, re.DOTALL)
    if not match:
        raise SystemExit(f"{report}: no results object (not a Snakemake HTML report?)")
    return json.loads(match.group(1))


def expected_files(results_dir: str, figures_dir: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(figures_dir, "*.png")))  # the pipeline's figures (not benchmarks/)
    files += [os.path.join(results_dir, name) for name in TABLES if os.path.exists(os.path.join(results_dir, name))]
    files += sorted(glob.glob(os.path.join(results_dir, "varbench", "*", "*.md")))
    return [os.path.normpath(path) for path in files]


def check(report: str, results_dir: str, figures_dir: str) -> list[str]:
    results = {os.path.normpath(key): value for key, value in embedded(report).items()}
    problems = []
    expected = expected_files(results_dir, figures_dir)
    if not any(path.endswith(".png") for path in expected):
        problems.append(f"no figures under {figures_dir}")
    for path in expected:
        entry = results.get(path)
        if entry is None:
            problems.append(f"{path}: not in the report")
            continue
        uri = entry.get("data_uri") or ""
        payload = base64.b64decode(uri.split("base64,", 1)[1]) if "base64," in uri else b""
        with open(path, "rb") as handle:
            if payload != handle.read():
                problems.append(f"{path}: the embedded copy differs from the file")
        if "results_dir = " not in (entry.get("caption") or ""):
            problems.append(f"{path}: caption missing or does not name the config")
    print(f"{report}: {len(expected) - len(problems)} of {len(expected)} files embedded with captions")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report")
    parser.add_argument("--results-dir", required=True)
    parser.add_argument("--figures-dir", required=True)
    args = parser.parse_args(argv)
    problems = check(args.report, args.results_dir, args.figures_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
