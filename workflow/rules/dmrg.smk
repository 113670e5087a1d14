# Reference energies: sparse exact diagonalisation, DMRG bond-dimension scans and their
# extrapolation to infinite bond dimension; and the figure-4 collection (NQS levels beside them).


rule ed:
    """The K lowest levels by sparse exact diagonalisation."""
    output:
        f"{RESULTS}/ed/{SYSTEM}/levels.csv",
    params:
        env=threads_env,
        coupling=lambda w: "--{} {}".format(*w.coupling.split("~")),
    log:
        f"{RESULTS}/logs/ed/{SYSTEM}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ed/{SYSTEM}.tsv"
    threads: config["resources"]["ed"]["threads"]
    priority: ed_priority
    resources:
        mem_mb=config["resources"]["ed"]["mem_mb"],
        runtime=config["resources"]["ed"]["runtime"],
    conda:
        ENV
    shell:
        "{params.env} nirbench ed --model {wildcards.model} --lx {wildcards.lx} --ly {wildcards.ly} --bc {wildcards.bc} "
        "{params.coupling} --states {wildcards.K} --out {output} > {log} 2>&1"


rule dmrg:
    """TFI DMRG (TeNPy) at every bond dimension of the scan: the K lowest states."""
    output:
        f"{DMRG_DIR}/scan.csv",
    params:
        env=threads_env,
        chi=lambda w: w.chis.replace("-", " "),
        max_sweeps=config["references"]["dmrg_max_sweeps"],
        max_e_err=config["references"]["dmrg_max_e_err"],
    log:
        f"{RESULTS}/logs/dmrg/tfi/L~{{lx}}x{{ly}}/bc~{{bc}}/g~{{g}}/K~{{K}}/chi~{{chis}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dmrg/tfi/L~{{lx}}x{{ly}}/bc~{{bc}}/g~{{g}}/K~{{K}}/chi~{{chis}}.tsv"
    threads: config["resources"]["dmrg"]["threads"]
    priority: dmrg_priority
    resources:
        mem_mb=config["resources"]["dmrg"]["mem_mb"],
        runtime=config["resources"]["dmrg"]["runtime"],
    conda:
        ENV
    shell:
        "{params.env} nirbench dmrg --model tfi --lx {wildcards.lx} --ly {wildcards.ly} --bc {wildcards.bc} "
        "--g {wildcards.g} --states {wildcards.K} --chi {params.chi} --max-sweeps {params.max_sweeps} "
        "--max-e-err {params.max_e_err} --threads {threads} --out {output} > {log} 2>&1"


rule extrapolate:
    """Fit E(chi) = a + b (chi + c)^d per state; a is the chi -> infinity estimate."""
    input:
        f"{DMRG_DIR}/scan.csv",
    output:
        f"{DMRG_DIR}/extrapolated.csv",
    log:
        f"{RESULTS}/logs/extrapolate/tfi/L~{{lx}}x{{ly}}/bc~{{bc}}/g~{{g}}/K~{{K}}/chi~{{chis}}.log",
    threads: 1
    priority: dmrg_priority
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "OMP_NUM_THREADS={threads} OPENBLAS_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
        "nirbench extrapolate --in {input} --out {output} > {log} 2>&1"


rule collect_fig4:
    """The K lowest levels vs g from the NQS, DMRG (every chi and extrapolated) and ED, with the
    relative error of each against the reference (ED where available, else DMRG extrapolated)
    -> results/fig4_levels.csv."""
    input:
        summaries=run_files(fig4_runs(), "summary.csv") if enabled("fig4") else [],
        configs=run_files(fig4_runs(), "run.yaml") if enabled("fig4") else [],
        ed=[ed_file(s) for s in fig4_systems() if has_ed(s)] if enabled("fig4") else [],
        dmrg=[dmrg_file(s) for s in fig4_systems()] if enabled("fig4") else [],
        extrapolated=[extrapolated_file(s) for s in fig4_systems()] if enabled("fig4") else [],
    output:
        report(TIDY_CSV["fig4"], caption="../report/runs_table.rst", category="Tables", subcategory="Collected runs"),
    params:
        mode="levels",
        experiment="fig4",
    log:
        f"{RESULTS}/logs/collect/fig4_levels.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/collect.py"
