"""Figure 4 (right): relative error of the NQS levels against the reference energies.

Input: results/fig4_levels.csv (columns method, g, state, chi, relative_error,
exact_relative_error, reference_method, ...); param ``chi_shown``. The reference of each (g,
state) is ED where available, else the DMRG extrapolation to infinite bond dimension. Markers:
|E_k^NQS - E_k^ref| / |E_k^ref| per level (log scale), with E_k^NQS the exact level of the
trained state where the Hilbert space was enumerated (filled markers), else the sampled
estimate (open markers); bars: the spread over seeds. Dashed lines: the same for DMRG at
chi_shown, for scale; dotted: the target 1e-4 of the claims.
"""


import pandas as pd
import style
from claims import LEVEL_TARGET, level_errors
from style import plt

REFERENCE_LABELS = {"ed": "exact diagonalisation", "dmrg_extrapolated": r"DMRG extrapolated to $\chi\to\infty$"}


def plot(csv: str, png: str, pdf: str, chi_shown=None) -> None:
    levels = pd.read_csv(csv)
    if levels.empty or levels["relative_error"].notna().sum() == 0:
        style.empty_figure(png, pdf, "fig4: no reference energies")
        return
    states = sorted(levels["state"].unique())
    first = levels.iloc[0]
    nqs = levels[levels["method"] == "nqs"]
    dmrg = levels[levels["method"] == "dmrg"]
    chi = None
    if len(dmrg):
        chis = sorted(dmrg["chi"].dropna().astype(int).unique())
        chi = int(chi_shown) if chi_shown is not None and int(chi_shown) in chis else chis[-1]
        dmrg = dmrg[dmrg["chi"].astype(int) == chi]

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    offsets = {state: (i - (len(states) - 1) / 2) * 0.02 for i, state in enumerate(states)}
    for state in states:
        color = style.LEVEL_COLORS[state % len(style.LEVEL_COLORS)]
        level = nqs[nqs["state"] == state]
        if len(level):
            errors, _, exact = level_errors(level)
            grouped = level.assign(err=style.positive(errors), exact=exact).groupby("g")
            mean, lo, hi = grouped["err"].mean(), grouped["err"].min(), grouped["err"].max()
            is_exact = grouped["exact"].all()
            x = mean.index + offsets[state]
            ax.errorbar(x, mean.values, yerr=[mean - lo, hi - mean], fmt="-", color=color, capsize=2)
            if is_exact.any():
                ax.plot(x[is_exact.values], mean[is_exact].values, "o", color=color, label=f"NQS $E_{state}$")
            if not is_exact.all():
                ax.plot(x[~is_exact.values], mean[~is_exact].values, "o", color=color, mfc="white",
                        label=f"NQS $E_{state}$ (sampled)")
        ref_dmrg = dmrg[dmrg["state"] == state].sort_values("g")
        if len(ref_dmrg):
            err = style.positive(ref_dmrg["relative_error"])
            if pd.notna(err).any():
                ax.plot(ref_dmrg["g"], err, "--", color=color, linewidth=0.8, alpha=0.7,
                        label=rf"DMRG $\chi={chi}$" if state == states[0] else None)
    ax.axhline(LEVEL_TARGET, color="0.5", linestyle=":", linewidth=0.8, label=f"target {LEVEL_TARGET:g}")
    style.mark_critical_g(ax)
    style.decade_log_axis(ax)
    ax.set_xlabel(r"transverse field $g$")
    ax.set_ylabel(r"$|E_k - E_k^\mathrm{ref}| \,/\, |E_k^\mathrm{ref}|$")
    methods = sorted(set(levels["reference_method"].dropna()))
    reference = " / ".join(REFERENCE_LABELS.get(m, m) for m in methods)
    ax.set_title(
        f"TFI {style.lattice_label(first['lx'], first['ly'])} ({first['bc']}): error vs {reference}", fontsize=8
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(states) + 1, fontsize=7)
    fig.tight_layout()
    style.save(fig, png, pdf)


if __name__ == "__main__" or "snakemake" in globals():
    style.run(plot, param_names=("chi_shown",))
