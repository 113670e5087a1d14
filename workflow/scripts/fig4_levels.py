"""Figure 4 (left): the K lowest energy levels vs g, multi-state NQS beside DMRG (and ED).

Input: results/fig4_levels.csv (one row per method, g, state[, chi, seed]: method in
nqs / ed / dmrg / dmrg_extrapolated, energy, energy_per_site, ...); param ``chi_shown``: the
DMRG bond dimension drawn (paper: 100).
Left: E_k/N vs g — DMRG at chi_shown as lines, ED as crosses, NQS as filled markers (the
exact levels of the trained state where the Hilbert space was enumerated, else the estimates).
Right: the gaps E_k - E_0 (units of J), which show the gap closing and reopening near g_c.
"""


import pandas as pd
import style
from style import plt


def _line_source(levels: pd.DataFrame, chi_shown) -> tuple[pd.DataFrame, str]:
    dmrg = levels[levels["method"] == "dmrg"]
    if len(dmrg):
        chis = sorted(dmrg["chi"].dropna().astype(int).unique())
        chi = int(chi_shown) if chi_shown is not None and int(chi_shown) in chis else chis[-1]
        return dmrg[dmrg["chi"].astype(int) == chi], rf"DMRG $\chi = {chi}$"
    ed = levels[levels["method"] == "ed"]
    if len(ed):
        return ed, "ED"
    return levels.iloc[0:0], ""


def per_g(frame: pd.DataFrame, state: int, column: str) -> pd.Series:
    """``column`` of one level vs g (mean over seeds)."""
    return frame[frame["state"] == state].groupby("g")[column].mean().sort_index()


def gap_of(frame: pd.DataFrame, state: int, ground: int) -> pd.Series:
    """E_state - E_ground vs g (total energies; mean over seeds)."""
    table = frame.groupby(["g", "state"])["energy"].mean().unstack("state")
    if state not in table or ground not in table:
        return pd.Series(dtype=float)
    return (table[state] - table[ground]).dropna().sort_index()


def plot(csv: str, png: str, pdf: str, chi_shown=None) -> None:
    levels = pd.read_csv(csv)
    if levels.empty:
        style.empty_figure(png, pdf, "fig4: no levels")
        return
    states = sorted(levels["state"].unique())
    first = levels.iloc[0]
    lines, line_label = _line_source(levels, chi_shown)
    ed = levels[levels["method"] == "ed"]
    nqs = levels[levels["method"] == "nqs"]
    if "exact_energy" in nqs:  # the exact levels of the trained state where they were enumerated
        energy = nqs["exact_energy"].where(nqs["exact_energy"].notna(), nqs["energy"])
        nqs = nqs.assign(energy=energy, energy_per_site=energy / (nqs["lx"] * nqs["ly"]))

    fig, (left, right) = plt.subplots(1, 2, figsize=(7.6, 3.4))
    for state in states:
        color = style.LEVEL_COLORS[state % len(style.LEVEL_COLORS)]
        if len(lines):
            e = per_g(lines, state, "energy_per_site")
            left.plot(e.index, e.values, color=color, linewidth=1.0)
            gap = gap_of(lines, state, states[0])
            if state != states[0]:
                right.plot(gap.index, gap.values, color=color, linewidth=1.0)
        if len(ed):
            e = per_g(ed, state, "energy_per_site")
            left.plot(e.index, e.values, "x", color="k", markersize=4, label="ED" if state == states[0] else None,
                      zorder=4)
            if state != states[0]:
                gap = gap_of(ed, state, states[0])
                right.plot(gap.index, gap.values, "x", color="k", markersize=4, zorder=4)
        if len(nqs):
            e = per_g(nqs, state, "energy_per_site")
            left.plot(e.index, e.values, "o", color=color, mfc=color, markersize=4, alpha=0.85,
                      label=f"NQS $E_{state}$")
            if state != states[0]:
                gap = gap_of(nqs, state, states[0])
                right.plot(gap.index, gap.values, "o", color=color, markersize=4, alpha=0.85,
                           label=rf"$E_{state} - E_0$")
    for ax in (left, right):
        ax.set_xlabel(r"transverse field $g$")
        style.mark_critical_g(ax)
    left.set_ylabel(r"$E_k / N$ ($J$)")
    right.set_ylabel(r"gap $E_k - E_0$ ($J$)")
    right.set_ylim(bottom=min(0, right.get_ylim()[0]))
    handles, labels = left.get_legend_handles_labels()
    if len(lines):  # one neutral entry for the lines of every level
        handles.insert(0, plt.Line2D([], [], color="0.3", linewidth=1.0))
        labels.insert(0, line_label)
    left.legend(handles, labels, loc="lower left")
    if right.has_data():
        right.legend(loc="upper left")
    samplers = " / ".join(style.SAMPLER_LABELS.get(name, name) for name in sorted(set(nqs.get("sampler", []))))
    fig.suptitle(
        f"TFI {style.lattice_label(first['lx'], first['ly'])} ({first['bc']}): the {len(states)} lowest levels "
        f"(markers: NQS + {samplers}; lines: {line_label or 'none'})"
    )
    fig.tight_layout()
    style.save(fig, png, pdf)


if __name__ == "__main__" or "snakemake" in globals():
    style.run(plot, param_names=("chi_shown",))
