"""Figure 3: Jensen-Shannon divergence between the sampled and the exact |Psi|^2 during training.

Input: results/fig3_jsd.csv (one row per run and step: step, jsd, energy_error, sampler, seed,
reference_energy, lx, ly, g, states, ..., jsd_exact; jsd and jsd_exact are empty on steps where it was not measured).
Top: JSD of the empirical distribution of the samples (NIR and MCMC, drawn by the frozen sampler
as training used it at that step) to the exact |Psi|^2 of the current NQS (log scale), and, dotted
grey, ``jsd_exact``: the JSD of as many exact draws, the finite-sample floor a perfect sampler
would reach. Open markers, thin: the same over unordered tuples (``jsd_unordered``; floor
``jsd_unordered_exact``, dash-dotted), the distribution every VMC estimate depends on. The shaded
second half of the run is the window the claim averages (workflow/scripts/claims.py). Bottom:
relative error of the trace energy (training estimates, which on this nearly degenerate spectrum
read lower than the state is), and, stars at the last step, the exact trace of each run's final
NQS (``exact_energy``), which the claim's convergence rule holds to the dashed target.
"""


import pandas as pd
import style
from claims import FIG3_TARGET, exact_trace_errors, jsd_window
from style import plt


def plot(csv: str, png: str, pdf: str) -> None:
    steps = pd.read_csv(csv)
    if steps.empty or "jsd" not in steps or steps["jsd"].notna().sum() == 0:
        style.empty_figure(png, pdf, "fig3: no JSD measurements")
        return
    has_reference = "energy_error" in steps and steps["energy_error"].notna().any()
    xcol, window = style.training_axis(steps)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.8, 4.6), sharex=True, height_ratios=[2, 1])
    floor_labelled = exact_labelled = False
    for _sampler, _i, run, color, ls, label in style.training_runs(steps):
        jsd = run.dropna(subset=["jsd"])
        top.plot(jsd[xcol], style.positive(jsd["jsd"]), marker="o", color=color, linestyle=ls, markersize=2.5,
                 label=label)
        if "jsd_unordered" in jsd and jsd["jsd_unordered"].notna().any():
            top.plot(jsd[xcol], style.positive(jsd["jsd_unordered"]), marker="o", markerfacecolor="none",
                     color=color, linestyle=ls, linewidth=0.7, markersize=3, alpha=0.7, label=f"{label}, unordered")
        if "jsd_exact" in jsd and jsd["jsd_exact"].notna().any():
            top.plot(jsd[xcol], style.positive(jsd["jsd_exact"]), color="0.45", linestyle=":", linewidth=1.0,
                     label=None if floor_labelled else "as many exact draws (floor)")
            if "jsd_unordered_exact" in jsd and jsd["jsd_unordered_exact"].notna().any():
                top.plot(jsd[xcol], style.positive(jsd["jsd_unordered_exact"]), color="0.45", linestyle="-.",
                         linewidth=0.8, label=None if floor_labelled else "floor, unordered")
            floor_labelled = True
        if has_reference:
            y = style.positive(run["energy_error"] / run["reference_energy"].abs())
            bottom.plot(run[xcol], y, color=color, alpha=0.25, linewidth=0.5, linestyle=ls)
            bottom.plot(run[xcol], style.rolling(y, window), color=color, linestyle=ls)
            if "exact_energy" in run and run["exact_energy"].notna().any():
                last = run.iloc[[-1]]
                bottom.plot(last[xcol], exact_trace_errors(last), marker="*", markersize=8, color=color, linestyle="none",
                            markeredgecolor="black", markeredgewidth=0.5,
                            label=None if exact_labelled else "exact trace, final NQS")
                exact_labelled = True
    measured = steps.dropna(subset=["jsd"])
    window = jsd_window(measured)
    top.axvspan(window[xcol].min(), window[xcol].max(), color="0.92", zorder=0, label="window of the claim")
    first = steps.iloc[0]
    style.decade_log_axis(top)
    top.set_ylabel(r"JSD(samples $\|$ exact $|\Psi|^2$)")
    top.legend(loc="best", fontsize="x-small", ncol=2)
    top.set_title(
        f"TFI {style.lattice_label(first['lx'], first['ly'])} ({first['bc']}), $g = {first['g']:g}$, "
        f"K = {int(first['states'])}: sampling quality during training"
    )
    if has_reference:
        style.decade_log_axis(bottom)
        bottom.set_ylabel(r"$|E_\mathrm{tr} - E_\mathrm{ref}|/|E_\mathrm{ref}|$")
        bottom.axhline(FIG3_TARGET, color="0.3", linestyle="--", linewidth=0.8, label="convergence target")
        bottom.legend(loc="upper right", fontsize="x-small", ncol=2)
    else:
        bottom.text(0.5, 0.5, "no reference energy", transform=bottom.transAxes, ha="center", va="center")
    bottom.set_xlabel("NQS update step")
    fig.tight_layout()
    style.save(fig, png, pdf)


if __name__ == "__main__" or "snakemake" in globals():
    style.run(plot)
