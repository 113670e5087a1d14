# Figure 3: Jensen-Shannon divergence between the sampled and the exact |Psi|^2 during training.
# The JSD is measured inside the VMC runs (jsd_every > 0 in their preset); this stage gathers it.


rule collect_fig3:
    """JSD and energy error of the fig3 runs (one row per run and step) -> results/fig3_jsd.csv."""
    input:
        steps=run_files(fig3_runs(), "steps.csv") if enabled("fig3") else [],
        summaries=run_files(fig3_runs(), "summary.csv") if enabled("fig3") else [],
        configs=run_files(fig3_runs(), "run.yaml") if enabled("fig3") else [],
    output:
        report(TIDY_CSV["fig3"], caption="../report/runs_table.rst", category="Tables", subcategory="Collected runs"),
    params:
        mode="steps",
        experiment="fig3",
    log:
        f"{RESULTS}/logs/collect/fig3_jsd.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/collect.py"
