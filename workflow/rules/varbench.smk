# The varbench export (Wu et al., Science 386, 296 (2024)): one Markdown table per Hamiltonian in
# varbench's layout, {results}/varbench/<TFIsing|J1J2>/<lattice>_<N>_<O|P>_<coupling>.md, from the
# run summaries, and {results}/varbench_runs.csv saying for every run whether it was exported and
# why (K = 1 runs that completed with NIR's evaluation gate passed; see workflow/scripts/varbench.py).


rule varbench:
    """Every run's summary -> varbench tables (K = 1, converged runs) and the export index."""
    input:
        summaries=run_files(all_runs(), "summary.csv"),
        configs=run_files(all_runs(), "run.yaml"),
    output:
        dir=report(
            directory(f"{RESULTS}/varbench"),
            patterns=["{hamiltonian}/{name}.md"],
            caption="../report/varbench_table.rst",
            category="varbench",
        ),
        index=report(f"{RESULTS}/varbench_runs.csv", caption="../report/varbench.rst", category="varbench"),
    log:
        f"{RESULTS}/logs/varbench.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/varbench.py"
