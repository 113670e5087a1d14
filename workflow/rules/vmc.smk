# VMC training: one RUN.yaml per run (written from the config), one `nirbench vmc` job per run,
# and the collection of the fig2 runs into tidy CSVs.


rule run_config:
    """Write the fully resolved `nirbench vmc` configuration of one run. It is rewritten when the
    config changes what it contains (a params change), which then reruns the run. A shell rule:
    `run:` jobs would each re-parse the whole workflow in a subprocess."""
    output:
        f"{RUN_DIR}/run.yaml",
    params:
        text=lambda w: run_yaml_text(run_settings(Run.from_wildcards(w))),
    log:
        f"{RESULTS}/logs/run_config/{RUN}.log",
    threads: 1
    priority: vmc_priority
    localrule: True
    conda:
        ENV
    shell:
        "printf '%s' {params.text:q} > {output}.tmp && mv {output}.tmp {output} && echo wrote {output} > {log}"


rule vmc:
    """Train one (multi-state) NQS. Checkpoints live outside the outputs, in a folder named by
    the hash of run.yaml, so a killed job resumes where it stopped and a changed configuration
    starts afresh."""
    input:
        run=f"{RUN_DIR}/run.yaml",
        reference=lambda w: reference_file(System.from_wildcards(w)) or [],
    output:
        steps=f"{RUN_DIR}/steps.csv",
        summary=f"{RUN_DIR}/summary.csv",
    params:
        env=threads_env,
        jax_cache=f"JAX_COMPILATION_CACHE_DIR={RESULTS}/jax_cache" if config["jax_cache"] else "",
    log:
        f"{RESULTS}/logs/vmc/{RUN}.log",
    benchmark:
        RUN_BENCHMARK
    threads: config["resources"]["vmc"]["threads"]
    priority: vmc_priority
    resources:
        mem_mb=config["resources"]["vmc"]["mem_mb"],
        runtime=config["resources"]["vmc"]["runtime"],
        gpu=config["resources"]["vmc"]["gpu"],
    conda:
        ENV
    shell:
        "{params.env} export {params.jax_cache} "
        # a run stops (after a checkpoint) when the Snakemake that started it is killed
        "NIRBENCH_STOP_WITH_PID=$PPID; "
        "nirbench vmc --config {input.run} --out {output.steps} --summary {output.summary} "
        f"--checkpoint-dir {RUN_CHECKPOINTS} --resume "
        "> {log} 2>&1"


rule collect_fig2_runs:
    """Final energies of every fig2 run (one row per run) -> results/fig2_runs.csv."""
    input:
        summaries=run_files(fig2_runs(), "summary.csv") if enabled("fig2") else [],
        configs=run_files(fig2_runs(), "run.yaml") if enabled("fig2") else [],
    output:
        report(TIDY_CSV["fig2"], caption="../report/runs_table.rst", category="Tables", subcategory="Collected runs"),
    params:
        mode="summaries",
        experiment="fig2",
    log:
        f"{RESULTS}/logs/collect/fig2_runs.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/collect.py"


rule collect_fig2_training:
    """Training curves of the fig2 training system (one row per run and step)
    -> results/fig2_training.csv."""
    input:
        steps=run_files(fig2_training_runs(), "steps.csv") if enabled("fig2") else [],
        summaries=run_files(fig2_training_runs(), "summary.csv") if enabled("fig2") else [],
        configs=run_files(fig2_training_runs(), "run.yaml") if enabled("fig2") else [],
    output:
        report(f"{RESULTS}/fig2_training.csv", caption="../report/runs_table.rst", category="Tables", subcategory="Collected runs"),
    params:
        mode="steps",
        experiment="fig2",
    log:
        f"{RESULTS}/logs/collect/fig2_training.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/collect.py"
