"""Figure 2 (right): energy error during training, NIR vs MCMC, on one system (paper: 8x8, g = 0.1).

Input: results/fig2_training.csv (one row per run and step: step, energy, energy_error,
efficiency, acceptance, sampler, seed, reference_energy, lx, ly, g, states, ...).
Top: relative error |E_tr - E_ref| / |E_ref| of the trace energy (log scale; thin = every step,
thick = rolling median), one line per seed. Bottom: the sampler's health — NIR efficiency
ESS / n_proposed and MCMC acceptance rate.
"""


import pandas as pd
import style
from style import plt


def plot(csv: str, png: str, pdf: str) -> None:
    steps = pd.read_csv(csv)
    if steps.empty:
        style.empty_figure(png, pdf, "fig2 training: no runs")
        return
    has_reference = "energy_error" in steps and steps["energy_error"].notna().any()
    n_sites = int(steps["lx"].iloc[0] * steps["ly"].iloc[0])
    xcol, window = style.training_axis(steps)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.8, 4.8), sharex=True, height_ratios=[2.2, 1])
    for sampler, i, run, color, ls, label in style.training_runs(steps):
        if has_reference:
            y = style.positive(run["energy_error"] / run["reference_energy"].abs())
        else:
            y = run["energy"].to_numpy() / n_sites
        top.plot(run[xcol], y, color=color, alpha=0.25, linewidth=0.5, linestyle=ls)
        top.plot(run[xcol], style.rolling(y, window), color=color, linestyle=ls, label=label)
        if sampler == "nir" and "efficiency" in run:
            bottom.plot(run[xcol], style.rolling(run["efficiency"], window), color=color, linestyle=ls,
                        label=r"NIR: ESS$/n_\mathrm{proposed}$" if i == 0 else None)
        if sampler == "mcmc" and "acceptance" in run:
            bottom.plot(run[xcol], style.rolling(run["acceptance"], window), color=color, linestyle=ls,
                        label="MCMC: acceptance rate" if i == 0 else None)
    if has_reference:
        style.decade_log_axis(top)
        top.set_ylabel(r"$|E_\mathrm{tr} - E_\mathrm{ref}| \,/\, |E_\mathrm{ref}|$")
    else:
        top.set_ylabel(r"$E_\mathrm{tr}/N$ ($J$)")
    top.legend(loc="upper right", ncol=1 if steps["seed"].nunique() <= 2 else 2)
    first = steps.iloc[0]
    top.set_title(
        f"TFI {style.lattice_label(first['lx'], first['ly'])} ({first['bc']}), $g = {first['g']:g}$, "
        f"K = {int(first['states'])}: training"
    )
    if bottom.has_data():
        style.decade_log_axis(bottom)
    bottom.set_ylabel("efficiency /\nacceptance")
    bottom.set_xlabel("NQS update step")
    if bottom.has_data():
        bottom.legend(loc="lower right")
    fig.tight_layout()
    style.save(fig, png, pdf)


if __name__ == "__main__" or "snakemake" in globals():
    style.run(plot)
