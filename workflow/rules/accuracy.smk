# The accuracy benchmarks (config block `accuracy`, docs/accuracy.md): `snakemake accuracy`.
# Each case is an ordinary VMC run (rules run_config and vmc); this stage tabulates them against
# their targets and draws their training curves. Not part of `all`.


rule accuracy:
    input:
        f"{RESULTS}/accuracy.csv",
        figures("accuracy_training"),


rule collect_accuracy:
    """One row per case (relative error, target, met) -> results/accuracy.csv, and every step of
    every case -> results/accuracy_training.csv."""
    input:
        summaries=run_files(accuracy_runs().values(), "summary.csv"),
        configs=run_files(accuracy_runs().values(), "run.yaml"),
        steps=run_files(accuracy_runs().values(), "steps.csv"),
    output:
        table=f"{RESULTS}/accuracy.csv",
        training=f"{RESULTS}/accuracy_training.csv",
    params:
        cases=list(accuracy_runs()),
        targets=[spec.get("target") for spec in config.get("accuracy", {}).values()],
    log:
        f"{RESULTS}/logs/collect/accuracy.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/accuracy.py"


rule plot_accuracy:
    input:
        f"{RESULTS}/accuracy_training.csv",
    output:
        png=f"{FIGURES}/accuracy_training.png",
        pdf=f"{FIGURES}/accuracy_training.pdf",
    log:
        f"{RESULTS}/logs/figures/accuracy_training.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/accuracy_training.py"
