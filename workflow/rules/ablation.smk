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


rule table1_ablation:
    """Every table-1 proposal size trained from scratch against one fixed NQS, the final state of
    the largest proposal's run, with the same budget (nirbench ablate; nirbench.ablation): the
    efficiency as a function of size alone -> results/table1_ablation{,_calls}.csv."""
    input:
        run=run_files([table1_fixed_nqs_run()], "run.yaml") if enabled("table1") else [],
        summary=run_files([table1_fixed_nqs_run()], "summary.csv") if enabled("table1") else [],
    output:
        sizes=TABLE1_ABLATION["sizes"],
        calls=TABLE1_ABLATION["calls"],
    params:
        env=threads_env,
        flags=table1_ablation_flags() if enabled("table1") else "",
    log:
        f"{RESULTS}/logs/table1_ablation.log",
    benchmark:
        ABLATION_BENCHMARK
    threads: config["resources"]["vmc"]["threads"]
    priority: ablation_priority
    resources:
        mem_mb=config["resources"]["vmc"]["mem_mb"],
        runtime=config["resources"]["vmc"]["runtime"],
        gpu=config["resources"]["vmc"]["gpu"],
    conda:
        ENV
    shell:
        f"{{params.env}} nirbench ablate --checkpoint {RUN_CHECKPOINTS} "
        "{params.flags} --out {output.sizes} --calls-out {output.calls} > {log} 2>&1"
