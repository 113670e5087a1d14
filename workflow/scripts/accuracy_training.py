"""The accuracy benchmarks' training curves (rule plot_accuracy): one panel per case, the relative
error of the trace energy against the reference by NQS update, with the case's target dashed.

Input: results/accuracy_training.csv (workflow/scripts/accuracy.py: every step of every case, with
``case``, the run columns and ``target``).
"""

import pandas as pd
import style
from style import plt


def plot(csv: str, png: str, pdf: str) -> None:
    training = pd.read_csv(csv)
    if training.empty:
        style.empty_figure(png, pdf, "accuracy: no runs")
        return
    cases = list(dict.fromkeys(training["case"]))
    columns = min(len(cases), 3)
    rows = -(-len(cases) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(cases):]:
        ax.set_visible(False)
    for ax, case in zip(axes.flat, cases):
        run = training[training["case"] == case].sort_values("step")
        y = style.positive(run["energy_error"] / run["reference_energy"].abs())
        window = max(1, int(run["nqs_step"].max()) // 50)
        sampler = run["sampler"].iloc[0]
        color = style.sampler_color(sampler)
        ax.plot(run["nqs_step"], y, color=color, alpha=0.25, linewidth=0.5)
        ax.plot(run["nqs_step"], style.rolling(y, window), color=color, label=style.sampler_label(sampler))
        target = run["target"].iloc[0] if "target" in run else None
        if target is not None and pd.notna(target):
            ax.axhline(target, color="0.3", linestyle="--", linewidth=0.8, label="target")
        style.decade_log_axis(ax)
        ax.legend(loc="upper right")
        ax.set_xlabel("NQS update step")
        first = run.iloc[0]
        system = f"g = {first['g']:g}" if first["model"] == "tfi" else f"J2 = {first['j2']:g}"
        quantity = r"E_\mathrm{tr}" if first["states"] > 1 else "E"
        model = {"tfi": "TFI", "j1j2": "J1-J2"}[first["model"]]
        ax.set_title(f"{model} {style.lattice_label(first['lx'], first['ly'])} ({first['bc']}), {system}, "
                     f"K = {int(first['states'])}", fontsize="medium")
        ax.set_ylabel(rf"$|{quantity} - E_\mathrm{{ref}}| / |E_\mathrm{{ref}}|$")
    fig.tight_layout()
    style.save(fig, png, pdf)


if __name__ == "__main__" or "snakemake" in globals():
    style.run(plot)
