"""Shared plotting conventions of the figure scripts (imported by them; plots only, no physics).

Every figure script has the same shape: ``plot(input_csv, png, pdf, **params)``, called from
Snakemake's ``script:`` directive (``snakemake`` object) or from the command line
(``python fig.py IN.csv OUT.png OUT.pdf``), so it can be tried on synthetic CSVs.
"""


import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

# Okabe-Ito colours (colour-blind safe); one per sampler / method / level.
SAMPLER_COLORS = {"nir": "#0072B2", "mcmc": "#D55E00", "exact": "#009E73"}
SAMPLER_LABELS = {"nir": "NIR", "mcmc": "MCMC", "exact": "exact sampling"}
LEVEL_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
LATTICE_MARKERS = ["o", "s", "D", "^", "v", "P"]
LINESTYLES = ["-", "--", ":", "-."]  # one per seed within a sampler (cycled)

RC = {
    "figure.dpi": 150,
    "savefig.dpi": 200,
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.direction": "in",
    "ytick.direction": "in",
    "xtick.top": True,
    "ytick.right": True,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "pdf.fonttype": 42,
}
plt.rcParams.update(RC)

G_CRITICAL = 3.0444  # infinite square lattice (Bloete & Deng 2002)


def sampler_label(sampler: str) -> str:
    return SAMPLER_LABELS.get(sampler, str(sampler))


def sampler_color(sampler: str) -> str:
    return SAMPLER_COLORS.get(sampler, "0.3")


def lattice_label(lx, ly) -> str:
    return rf"${int(lx)}\times{int(ly)}$"


def mark_critical_g(ax, label=True) -> None:
    """Dotted line at the 2D TFI critical field of the infinite lattice."""
    ax.axvline(G_CRITICAL, color="0.5", linestyle=":", linewidth=0.8, zorder=0)
    if label:
        ax.annotate(
            r"$g_c^{\infty}$",
            xy=(G_CRITICAL, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -10),
            textcoords="offset points",
            fontsize=7,
            color="0.4",
        )


def positive(values):
    """Values for a log axis: |x|, with zeros (exact agreement) as NaN so they are not drawn."""
    values = np.abs(np.asarray(values, dtype=float))
    values[values == 0] = np.nan
    return values


def decade_log_axis(ax, axis: str = "y") -> None:
    """Log scale whose limits are whole decades, so there are always labelled major ticks."""
    from matplotlib.ticker import LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    lines = [line.get_ydata() if axis == "y" else line.get_xdata() for line in ax.get_lines()]
    collections = [c.get_offsets()[:, 1 if axis == "y" else 0] for c in ax.collections if len(c.get_offsets())]
    data = np.concatenate([np.asarray(v, dtype=float).ravel() for v in lines + collections] or [np.array([])])
    data = data[np.isfinite(data) & (data > 0)]
    if data.size:
        lo, hi = np.floor(np.log10(data.min())), np.ceil(np.log10(data.max()))
        if hi <= lo:
            hi = lo + 1
        getattr(ax, f"set_{axis}lim")(10**lo, 10**hi)
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, numticks=12))
    target.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 0.1, numticks=12))
    target.set_minor_formatter(NullFormatter())


def training_axis(steps):
    """The x column of a training curve and its smoothing window (about 50 windows per run).

    The x axis counts NQS updates (``nqs_step``) where the runs log them, else iterations (``step``).
    """
    xcol = "nqs_step" if "nqs_step" in steps and steps["nqs_step"].notna().any() else "step"
    return xcol, max(1, int(steps[xcol].max()) // 50)


def training_runs(steps):
    """The training runs of ``steps``, one per (sampler, seed), in plotting order.

    Samplers in the order nir, mcmc, exact (others are skipped), seeds ascending within each.
    Yields ``(sampler, i, run, color, linestyle, label)``: ``i`` is the run's index within its
    sampler, ``run`` its rows sorted by ``step`` (iteration order), ``color`` the sampler's colour,
    ``linestyle`` ``LINESTYLES[i]`` (cycled), ``label`` the sampler's label plus ", seed N" when
    ``steps`` holds more than one seed.
    """
    several_seeds = steps["seed"].nunique() > 1
    for sampler in [s for s in ("nir", "mcmc", "exact") if s in set(steps["sampler"])]:
        color = sampler_color(sampler)
        for i, (seed, run) in enumerate(steps[steps["sampler"] == sampler].groupby("seed")):
            label = sampler_label(sampler) + (f", seed {seed}" if several_seeds else "")
            yield sampler, i, run.sort_values("step"), color, LINESTYLES[i % len(LINESTYLES)], label


def rolling(values, window: int):
    """Centred rolling median for noisy training curves (NaN-aware)."""
    import pandas as pd

    if window <= 1:
        return np.asarray(values, dtype=float)
    return pd.Series(values, dtype=float).rolling(window, center=True, min_periods=1).median().to_numpy()


def empty_figure(png: str, pdf: str, message: str) -> None:
    """An explicit placeholder when an input CSV has no rows (e.g. an experiment disabled)."""
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    save(fig, png, pdf)


def save(fig, png: str, pdf: str) -> None:
    for path in (png, pdf):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def run(plot, param_names=()):
    """Call ``plot(csv, png, pdf, **params)`` from Snakemake or from the command line."""
    smk = sys.modules["__main__"].__dict__.get("snakemake")
    if smk is not None:
        params = {name: getattr(smk.params, name) for name in param_names if hasattr(smk.params, name)}
        with open(smk.log[0], "w") as log:
            sys.stdout = sys.stderr = log
            plot(smk.input[0], smk.output.png, smk.output.pdf, **params)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("csv")
    parser.add_argument("png")
    parser.add_argument("pdf")
    for name in param_names:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float)
    args = vars(parser.parse_args())
    csv, png, pdf = args.pop("csv"), args.pop("png"), args.pop("pdf")
    plot(csv, png, pdf, **{k: v for k, v in args.items() if v is not None})
