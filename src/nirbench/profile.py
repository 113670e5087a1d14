"""``nirbench bench profile``: where the time of a VMC iteration goes, phase by phase.

For each case (a recipe file and a system, or flat options: :data:`PROFILE_CASES`) the benchmark
builds the run, takes ``skip`` untimed iterations (compilation, the first fast changes), times
``iterations`` iterations as a normal run does, then ``iterations`` more with
:func:`nirbench.profiling.profiling` on, and writes one row per case and phase: seconds per
iteration and fraction of the profiled iteration. The phases are exclusive (their sum is the
profiled iteration):

* ``proposal sampling``: NIR's autoregressive draws and ``log |Psi|^2`` of every proposed tuple
  (one compiled call per round: timed together);
* ``proposal training``; ``sampling, other`` (resampling, the adaptive loop; Metropolis or exact
  sampling for those samplers);
* ``local energies``, ``gradient and minSR``, ``trust region``;
* ``host``: the rest of the iteration (Python, transfers, statistics).

Rows ``iteration (profiled)`` and ``iteration (unprofiled)`` give the totals; the ratio says how
much the profile's waits cost. Every row names the machine (``cpu``,
:func:`nirbench.profiling.cpu_description`): profiles compare only within one machine.
:func:`plot_profile` draws the stacked bars.
"""

from __future__ import annotations

import time

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nirbench.options import VMCConfig, read_options_file
from nirbench.profiling import cpu_description, profiling
from nirbench.vmc import VMCRun

#: issue 16's reference: 4x4 periodic TFI, g = 3, K = 3, NIR, MLP 64 x 3, batch 512, as in
#: ``benchmarks/accuracy/tfi4x4_g3_k3_nir.yaml`` at commit 248719e (flat options, valid at every
#: revision since; ``benchmarks/revision_speed.py`` times it across revisions)
TFI4X4_K3_248719E = {
    "model": "tfi", "lx": 4, "ly": 4, "bc": "periodic", "g": 3.0, "states": 3,
    "net": "mlp", "width": 64, "depth": 3, "batch": 512, "optimizer": "sgd", "diag_shift": 1e-4,
    "sampler": "nir", "steps": 400, "lr": 0.08, "lr_final": 0.003,
    "lr_warmup": 30, "proposal_dim": 32, "proposal_layers": 2, "proposal_heads": 4,
    "proposal_lr": 0.003, "proposal_train_steps": 2,
}  # fmt: skip
#: the cases of issue 16: name -> (recipe file or None, options on top of it)
PROFILE_CASES = {
    "tfi4x4_k3": ("config/recipes/tfi_multistate_nir.yaml", {"lx": 4, "ly": 4, "bc": "periodic", "g": 3.0, "states": 3}),
    "tfi6x6_k3": ("config/recipes/tfi_multistate_nir.yaml", {"lx": 6, "ly": 6, "bc": "open", "g": 1.0, "states": 3}),
    "j1j2_4x4": ("config/recipes/j1j2_nir.yaml", {"lx": 4, "ly": 4, "bc": "periodic", "j2": 0.5, "states": 1}),
    "tfi4x4_k3_248719e": (None, TFI4X4_K3_248719E),
}  # fmt: skip
PHASES = [
    "proposal sampling", "proposal training", "sampling, other",
    "local energies", "gradient and minSR", "trust region", "host",
]  # fmt: skip
COLUMNS = ["case", "tokens", "phase", "seconds_per_iteration", "fraction", "iterations", "cpu"]


def exclusive_phases(raw: dict, total: float) -> dict:
    """Exclusive phase seconds from the nested ones :func:`nirbench.profiling.timed` collected.

    ``raw``: seconds per phase over the profiled iterations (``sampling`` contains ``proposal
    sampling`` and ``proposal training``); ``total``: their wall time. Returns ``{phase: seconds}``
    over :data:`PHASES` whose sum is ``total``.
    """
    proposing, training = raw.get("proposal sampling", 0.0), raw.get("proposal training", 0.0)
    phases = {
        "proposal sampling": proposing,
        "proposal training": training,
        "sampling, other": raw.get("sampling", 0.0) - proposing - training,
        "local energies": raw.get("local energies", 0.0),
        "gradient and minSR": raw.get("gradient and minSR", 0.0),
        "trust region": raw.get("trust region", 0.0),
    }
    phases["host"] = total - sum(phases.values())
    return phases


def case_options(recipe: str | None, system: dict, seed: int = 0) -> dict:
    """Flat run options of a case: the recipe file's (none if ``None``), then ``system``, then the
    seed, no JSD and no time limit."""
    options = {**(read_options_file(recipe) if recipe else {}), **system, "seed": seed, "jsd_every": 0, "max_minutes": None}
    options.setdefault("model", "j1j2" if "j2" in system else "tfi")
    return options


def profile_case(name: str, recipe: str | None, system: dict, iterations: int, skip: int, seed: int = 0) -> pd.DataFrame:
    """The rows of one case (see the module docstring); options as :func:`case_options`."""
    run = VMCRun(VMCConfig.from_dict(case_options(recipe, system, seed)))
    for _ in range(skip):
        run.step()
    start = time.perf_counter()
    for _ in range(iterations):
        run.step()
    unprofiled = (time.perf_counter() - start) / iterations
    with profiling() as raw:
        start = time.perf_counter()
        for _ in range(iterations):
            run.step()
        total = time.perf_counter() - start
    phases = exclusive_phases(dict(raw), total)
    profiled = total / iterations
    tokens = run.config.states * run.config.lx * run.config.ly
    rows = [
        {"case": name, "tokens": tokens, "phase": phase, "seconds_per_iteration": seconds / iterations,
         "fraction": seconds / iterations / profiled, "iterations": iterations}
        for phase, seconds in phases.items()
    ]  # fmt: skip
    for label, seconds in (("iteration (profiled)", profiled), ("iteration (unprofiled)", unprofiled)):
        rows.append({"case": name, "tokens": tokens, "phase": label, "seconds_per_iteration": seconds,
                     "fraction": np.nan, "iterations": iterations})  # fmt: skip
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["cpu"] = cpu_description()
    return frame


def bench_profile(cases, iterations: int = 10, skip: int = 5, seed: int = 0) -> pd.DataFrame:
    """Profile every case name of ``cases`` (keys of :data:`PROFILE_CASES`)."""
    frames = []
    for name in cases:
        recipe, system = PROFILE_CASES[name]
        frames.append(profile_case(name, recipe, system, iterations, skip, seed))
        print(frames[-1].to_string(index=False), flush=True)
    return pd.concat(frames, ignore_index=True)


def plot_profile(frame: pd.DataFrame, path: str) -> None:
    """Stacked horizontal bars: seconds per iteration of each phase, one bar per case."""
    phases = frame[frame["phase"].isin(PHASES)]
    table = phases.pivot(index="case", columns="phase", values="seconds_per_iteration").reindex(columns=PHASES)
    fig = Figure(figsize=(7.5, 0.7 * len(table) + 1.6))
    ax = fig.add_subplot()
    left = np.zeros(len(table))
    colors = matplotlib.colormaps["tab10"].colors
    for i, phase in enumerate(PHASES):
        values = table[phase].fillna(0.0).to_numpy()
        ax.barh(table.index, values, left=left, color=colors[i % len(colors)], label=phase)
        left += values
    ax.set_xlabel("seconds per iteration (one core)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8, frameon=False)
    ax.set_title("Where a VMC iteration's time goes (nirbench bench profile)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
