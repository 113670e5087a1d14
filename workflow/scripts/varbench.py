"""Export VMC results in the form of the varbench data set (Wu et al., Science 386, 296 (2024)).

varbench (github.com/varbench/varbench) keeps one Markdown table per Hamiltonian,
``<Hamiltonian>/<lattice>_<N>_<boundary>_<coupling>.md``, with the columns
``Energy | Sigma | Energy Variance | DOF | Einf | Method | Reference``: the energy of the whole
system, its statistical error, ``<H^2> - <H>^2``, the number of spins, the zero of energy
(0 for the TFI and J1-J2 models) and the method. The V-score is ``DOF * Var / (E - Einf)^2``.

What this script writes (``results/varbench/`` and ``results/varbench_runs.csv``):

- ``TFIsing/<lattice>_<N>_<O|P>_<g>.md`` and ``J1J2/<lattice>_<N>_<O|P>_<J2>.md``, one row per
  exported run. ``<lattice>`` is ``square`` when ``lx == ly``, else ``rectangular-<short>x<long>``
  (varbench's lattice.md); couplings are spelled like varbench's files (``3``, ``0.5``).
- Units: varbench writes both models with Pauli matrices. Our TFI (``-sum Z Z - g sum X``) has
  the spectrum of varbench's ``g sum X + sum Z Z`` on a bipartite lattice (a unitary flips the
  signs), so TFI numbers are copied; TFI runs on a non-bipartite lattice (periodic with an odd
  length) are skipped. Our J1-J2 uses ``S = sigma / 2``, so energies and errors are multiplied
  by 4 and variances by 16 (the V-score does not change).
- Which runs: only ``K = 1`` runs. For ``K > 1`` the sampled variance is that of the trace of the
  K x K local-energy matrix, not of any single state, so no level has a defined variance and the
  run is skipped. Only "converged" runs: a ``converged`` column decides where the summary has
  one; otherwise ``status == completed`` and ``eval_gate`` true (NIR's efficiency reached
  ``alpha_eff`` at the final evaluation). Summaries written before ``eval_gate`` existed are
  exported with the note ``eval_gate not recorded``. ``completed`` only means the run did all
  its steps, not that it is close to the ground state; the V-score says how close.
- ``varbench_runs.csv``: every run considered, exported or not, with the reason, its V-score and
  the file it went to.

Standalone: ``python varbench.py --summaries a/summary.csv ... --configs a/run.yaml ...
--out-dir results/varbench --index results/varbench_runs.csv``.
"""


import argparse
import math
import os
import sys

import pandas as pd
import yaml

from nirbench.io import write_csv_atomically, write_text_atomically

HAMILTONIAN_DIRS = {"tfi": "TFIsing", "j1j2": "J1J2"}
#: factor from our units to varbench's (Pauli matrices): energy, variance
UNITS = {"tfi": (1.0, 1.0), "j1j2": (4.0, 16.0)}
COLUMNS = ["Energy", "Sigma", "Energy Variance", "DOF", "Einf", "Method", "Reference"]
E_INF = 0.0


def v_score(energy: float, variance: float, dof: int, e_inf: float = E_INF) -> float:
    """``DOF * Var / (E - Einf)^2`` (Wu et al. 2024); ``nan`` when ``E = Einf``."""
    return dof * variance / (energy - e_inf) ** 2 if energy != e_inf else math.nan


def coupling_text(value: float) -> str:
    """varbench's spelling of a coupling: 3.0 -> '3', 0.5 -> '0.5'."""
    return repr(float(value)).removesuffix(".0")


def lattice_name(lx: int, ly: int, bc: str) -> str:
    """``square_16_P``, ``rectangular-2x3_6_O`` (varbench's lattice.md)."""
    kind = "square" if lx == ly else f"rectangular-{min(lx, ly)}x{max(lx, ly)}"
    return f"{kind}_{lx * ly}_{ {'open': 'O', 'periodic': 'P'}[bc]}"


def varbench_path(model: str, lx: int, ly: int, bc: str, coupling: float) -> str:
    """The file of a Hamiltonian, relative to the varbench root: ``J1J2/square_16_P_0.5.md``."""
    return f"{HAMILTONIAN_DIRS[model]}/{lattice_name(lx, ly, bc)}_{coupling_text(coupling)}.md"


def _truthy(value) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def method_text(run: dict) -> str:
    """A short description of the run: network, sampler, steps, seed."""
    if run.get("net") == "rescnn":
        net = f"ResCNN {run.get('channels', '?')} ch. x {run.get('blocks', '?')} blocks"
    else:
        net = f"MLP {run.get('depth', '?')} x {run.get('width', '?')}"
    sampler = str(run.get("sampler", "?"))
    if sampler == "nir":
        sampler = (
            f"NIR (Transformer {run.get('proposal_dim', '?')}/{run.get('proposal_layers', '?')}/"
            f"{run.get('proposal_heads', '?')})"
        )
    elif sampler == "mcmc":
        sampler = "MCMC"
    return f"NQS {net}, {sampler}, minSR, {run.get('steps', '?')} steps, seed {run.get('seed', '?')} (nirbench)"


def decide(run: dict) -> tuple[bool, str]:
    """Whether a run is exported, and why (not)."""
    model, lx, ly, bc = run["model"], int(run["lx"]), int(run["ly"]), run["bc"]
    if model not in HAMILTONIAN_DIRS:
        return False, f"model {model!r} has no varbench folder"
    if int(run["states"]) != 1:
        return False, (
            f"K = {int(run['states'])}: the sampled variance is that of the trace of the K x K local-energy "
            "matrix, no single level has one"
        )
    if model == "tfi" and bc == "periodic" and (lx % 2 or ly % 2):
        return False, "TFI on a non-bipartite lattice (periodic, odd length): not varbench's antiferromagnet"
    for column in ("energy", "variance"):
        value = run.get(column)
        if value is None or not math.isfinite(float(value)):
            return False, f"no finite {column}"
    converged = _truthy(run.get("converged"))
    if converged is not None:
        return (True, "converged") if converged else (False, "not converged (converged column)")
    if run.get("status") != "completed":
        return False, f"status {run.get('status')!r}, not completed"
    gate = _truthy(run.get("eval_gate"))
    if gate is False:
        return False, "eval_gate false: NIR's efficiency stayed below alpha_eff in the final evaluation"
    if gate is None:
        return True, "completed; eval_gate not recorded (summary predates it)"
    return True, "completed, eval_gate true"


def read_runs(summaries, configs) -> list[dict]:
    configs = list(configs) or [None] * len(summaries)
    if len(configs) != len(summaries):
        raise ValueError("need one run.yaml per summary.csv")
    runs = []
    for summary, config in zip(summaries, configs):
        frame = pd.read_csv(summary)
        if len(frame) != 1:
            raise ValueError(f"{summary}: expected one summary row, found {len(frame)}")
        run = {k: (None if pd.isna(v) else v) for k, v in frame.iloc[0].to_dict().items()}
        if config:
            with open(config) as handle:
                for key, value in (yaml.safe_load(handle) or {}).items():
                    run.setdefault(key, value)
        run["run_dir"] = os.path.dirname(summary)
        runs.append(run)
    return runs


def _number(value: float) -> str:
    return repr(float(value))


def table_row(run: dict) -> dict:
    """One varbench row (strings) of an exported run, in varbench's units."""
    model = run["model"]
    e_factor, var_factor = UNITS[model]
    sigma = run.get("energy_sigma")
    return {
        "Energy": _number(float(run["energy"]) * e_factor),
        "Sigma": "" if sigma is None or not math.isfinite(float(sigma)) else _number(float(sigma) * e_factor),
        "Energy Variance": _number(float(run["variance"]) * var_factor),
        "DOF": str(int(run["lx"]) * int(run["ly"])),
        "Einf": "0",
        "Method": method_text(run),
        "Reference": f"nirbench `{run['run_dir']}`",
    }


def markdown_table(rows: list[dict]) -> str:
    """A GitHub Markdown table padded like varbench's files."""
    cells = [COLUMNS] + [[row[c] for c in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " |" for line in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines) + "\n"


def export(summaries, configs, out_dir: str, index: str) -> pd.DataFrame:
    """Write one varbench file per Hamiltonian with an exported run, and the index of all runs."""
    runs = sorted(read_runs(summaries, configs), key=lambda r: r["run_dir"])
    files: dict[str, list[dict]] = {}
    records = []
    for run in runs:
        exported, reason = decide(run)
        model = run["model"]
        coupling = run.get("g") if model == "tfi" else run.get("j2")
        path = varbench_path(model, int(run["lx"]), int(run["ly"]), run["bc"], coupling) if model in HAMILTONIAN_DIRS else ""
        dof = int(run["lx"]) * int(run["ly"])
        energy, variance = run.get("energy"), run.get("variance")
        score = v_score(float(energy), float(variance), dof) if energy is not None and variance is not None else math.nan
        if exported:
            files.setdefault(path, []).append(table_row(run))
        records.append({
            "run_dir": run["run_dir"], "model": model, "lx": run["lx"], "ly": run["ly"], "bc": run["bc"],
            "coupling": coupling, "states": run["states"], "sampler": run.get("sampler"), "seed": run.get("seed"),
            "energy": energy, "variance": variance, "dof": dof, "v_score": score,
            "v_score_summary": run.get("v_score"), "status": run.get("status"), "eval_gate": run.get("eval_gate"),
            "exported": exported, "reason": reason, "varbench_file": path if exported else "",
        })
    os.makedirs(out_dir, exist_ok=True)
    for path, rows in sorted(files.items()):
        write_text_atomically(markdown_table(rows), os.path.join(out_dir, path))
    frame = pd.DataFrame(records)
    write_csv_atomically(frame, index)
    print(f"varbench: {int(frame['exported'].sum()) if len(frame) else 0} of {len(frame)} runs exported "
          f"into {len(files)} files under {out_dir}")
    for record in records:
        print(f"  {'exported' if record['exported'] else 'skipped '} {record['run_dir']}: {record['reason']}")
    return frame


if "snakemake" in globals():
    smk = snakemake  # noqa: F821
    with open(smk.log[0], "w") as log:
        sys.stdout = log
        export(list(smk.input.summaries), list(smk.input.configs), smk.output.dir, smk.output.index)
elif __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summaries", nargs="+", required=True)
    parser.add_argument("--configs", nargs="*", default=[])
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--index", required=True)
    args = parser.parse_args()
    export(args.summaries, args.configs, args.out_dir, args.index)
