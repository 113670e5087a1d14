"""Figure 2 (left): final variational energy of NIR vs MCMC over the transverse field g.

Input: results/fig2_runs.csv (one row per run: model, lx, ly, g, states, sampler, seed, energy,
energy_sigma, reference_energy, relative_error, ...). One column per lattice; top row the trace
energy per site E/N (mean over seeds, bars = seed min..max) with the reference (ED or
extrapolated DMRG), bottom row the relative error |E - E_ref| / |E_ref| on a log scale (small
dots = single seeds, markers = seed mean, bars = seed min..max). Where the Hilbert space was
enumerated (4x4), each run's energy is the exact energy of its trained state, as in the claims
(``claims.with_exact_energies``).
"""


import pandas as pd
import style
from claims import with_exact_energies
from style import plt


def seed_stats(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    grouped = frame.groupby("g")[column]
    return pd.DataFrame({"mean": grouped.mean(), "lo": grouped.min(), "hi": grouped.max(), "n": grouped.count()})


def plot(csv: str, png: str, pdf: str) -> None:
    runs = pd.read_csv(csv)
    if runs.empty:
        style.empty_figure(png, pdf, "fig2: no runs")
        return
    runs, _ = with_exact_energies(runs)
    runs["n_sites"] = runs["lx"] * runs["ly"]
    runs["energy_per_site"] = runs["energy"] / runs["n_sites"]
    if "reference_energy" in runs:
        runs["reference_per_site"] = runs["reference_energy"] / runs["n_sites"]
        runs["abs_rel_error"] = style.positive((runs["energy"] - runs["reference_energy"]) / runs["reference_energy"].abs())
    lattices = runs[["lx", "ly"]].drop_duplicates().sort_values(["lx", "ly"]).itertuples(index=False)
    lattices = list(lattices)
    samplers = [s for s in ("nir", "mcmc", "exact") if s in set(runs["sampler"])]
    states = int(runs["states"].iloc[0])

    fig, axes = plt.subplots(2, len(lattices), figsize=(2.6 * len(lattices) + 0.6, 4.6), sharex=True, squeeze=False)
    g_span = runs["g"].max() - runs["g"].min() or 1.0
    log_axes = []
    for column, (lx, ly) in enumerate(lattices):
        lattice = runs[(runs["lx"] == lx) & (runs["ly"] == ly)]
        top, bottom = axes[0, column], axes[1, column]
        top.set_title(f"{style.lattice_label(lx, ly)}, {lattice['bc'].iloc[0]} boundaries")
        ref = lattice.dropna(subset=["reference_energy"]) if "reference_energy" in lattice else lattice.iloc[0:0]
        if len(ref):
            ref = ref.groupby("g")["reference_per_site"].first()
            top.plot(ref.index, ref.values, color="k", linewidth=0.9, label="reference", zorder=1)
        for i, sampler in enumerate(samplers):
            runs_s = lattice[lattice["sampler"] == sampler]
            offset = (i - (len(samplers) - 1) / 2) * 0.012 * g_span
            color = style.sampler_color(sampler)
            e = seed_stats(runs_s, "energy_per_site")
            top.errorbar(
                e.index + offset, e["mean"], yerr=[e["mean"] - e["lo"], e["hi"] - e["mean"]],
                fmt="o", color=color, mfc="white" if sampler == "mcmc" else color, capsize=2,
                label=style.sampler_label(sampler), zorder=3,
            )
            if "abs_rel_error" in runs_s and runs_s["abs_rel_error"].notna().any():
                bottom.scatter(runs_s["g"] + offset, runs_s["abs_rel_error"], s=6, color=color, alpha=0.35, zorder=2,
                               linewidths=0)
                r = seed_stats(runs_s.dropna(subset=["abs_rel_error"]), "abs_rel_error")
                bottom.errorbar(
                    r.index + offset, r["mean"], yerr=[r["mean"] - r["lo"], r["hi"] - r["mean"]],
                    fmt="o-", color=color, mfc="white" if sampler == "mcmc" else color, capsize=2,
                    label=style.sampler_label(sampler), zorder=3,
                )
        if not (bottom.has_data()):
            bottom.text(0.5, 0.5, "no reference energy", transform=bottom.transAxes, ha="center", va="center",
                        color="0.4")
            bottom.set_yticks([])
        else:
            style.decade_log_axis(bottom)
            log_axes.append(bottom)
        for ax in (top, bottom):
            style.mark_critical_g(ax, label=ax is top)
        bottom.set_xlabel(r"transverse field $g$")
    if log_axes:  # one error scale for every lattice, so the panels compare at a glance
        low = min(ax.get_ylim()[0] for ax in log_axes)
        high = max(ax.get_ylim()[1] for ax in log_axes)
        for ax in log_axes:
            ax.set_ylim(low, high)
    axes[0, 0].set_ylabel(rf"$E_\mathrm{{tr}}/N$ ($J$), trace of {states} levels")
    axes[1, 0].set_ylabel(r"$|E_\mathrm{tr} - E_\mathrm{ref}| \,/\, |E_\mathrm{ref}|$")
    axes[0, 0].legend(loc="best")
    seeds = runs.groupby(["lx", "ly", "g", "sampler"])["seed"].nunique()
    n_seeds = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    fig.suptitle(
        f"TFI, K = {states} lowest states: final variational energy, NIR vs MCMC\n"
        f"markers: mean over {n_seeds} seed(s), bars: seed range; reference: ED or extrapolated DMRG",
        fontsize=9,
    )
    fig.tight_layout()
    style.save(fig, png, pdf)


if __name__ == "__main__" or "snakemake" in globals():
    style.run(plot)
