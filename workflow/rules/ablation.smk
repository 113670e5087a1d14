# Table 1: the proposal-network size ablation on the J1-J2 model (one NIR run per size and seed;
# the size is spelled in the preset suffix, e.g. preset~j1j2-d16l2).


rule collect_table1:
    """Final energies and sampling efficiencies of the table-1 runs -> results/table1_runs.csv."""
    input:
        summaries=run_files(table1_runs(), "summary.csv") if enabled("table1") else [],
        configs=run_files(table1_runs(), "run.yaml") if enabled("table1") else [],
    output:
        report(f"{RESULTS}/table1_runs.csv", caption="../report/runs_table.rst", category="Tables", subcategory="Collected runs"),
    params:
        mode="summaries",
        experiment="table1",
    log:
        f"{RESULTS}/logs/collect/table1_runs.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/collect.py"
