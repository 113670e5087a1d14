# Provenance of a pipeline run: the resolved config, package versions, git commit, wall time
# of the Snakemake invocation and the compute time of every job (from the benchmark files).


rule provenance:
    input:
        final_targets(),
    output:
        report(f"{RESULTS}/provenance.json", caption="../report/provenance.rst", category="Provenance"),
    params:
        start_file=START_FILE,
        benchmarks=f"{RESULTS}/benchmarks",
        configfiles=[str(path) for path in workflow.configfiles],
    log:
        f"{RESULTS}/logs/provenance.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/provenance.py"
