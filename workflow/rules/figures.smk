# Figures and the table: plotting only, from the tidy CSVs (a colour change never reruns physics).
# Named targets: `snakemake fig2`, `fig3`, `fig4`, `table1`, `references`.


rule fig2:
    input:
        experiment_targets("fig2"),


rule fig3:
    input:
        experiment_targets("fig3"),


rule fig4:
    input:
        experiment_targets("fig4"),


rule table1:
    input:
        experiment_targets("table1"),


rule references:
    """Only the ED / DMRG / extrapolation references the enabled experiments need."""
    input:
        reference_targets(),


rule plot_fig2_energy_vs_g:
    input:
        TIDY_CSV["fig2"],
    output:
        png=report(f"{FIGURES}/fig2_energy_vs_g.png", caption="../report/fig2_energy_vs_g.rst", category="Figures"),
        pdf=f"{FIGURES}/fig2_energy_vs_g.pdf",
    log:
        f"{RESULTS}/logs/figures/fig2_energy_vs_g.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig2_energy_vs_g.py"


rule plot_fig2_training:
    input:
        f"{RESULTS}/fig2_training.csv",
    output:
        png=report(f"{FIGURES}/fig2_training.png", caption="../report/fig2_training.rst", category="Figures"),
        pdf=f"{FIGURES}/fig2_training.pdf",
    log:
        f"{RESULTS}/logs/figures/fig2_training.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig2_training.py"


rule plot_fig3_jsd:
    input:
        TIDY_CSV["fig3"],
    output:
        png=report(f"{FIGURES}/fig3_jsd.png", caption="../report/fig3_jsd.rst", category="Figures"),
        pdf=f"{FIGURES}/fig3_jsd.pdf",
    log:
        f"{RESULTS}/logs/figures/fig3_jsd.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig3_jsd.py"


rule plot_fig4_levels:
    input:
        TIDY_CSV["fig4"],
    output:
        png=report(f"{FIGURES}/fig4_levels.png", caption="../report/fig4_levels.rst", category="Figures"),
        pdf=f"{FIGURES}/fig4_levels.pdf",
    params:
        chi_shown=EXPERIMENTS["fig4"]["dmrg_chi_shown"],
    log:
        f"{RESULTS}/logs/figures/fig4_levels.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig4_levels.py"


rule plot_fig4_error:
    input:
        TIDY_CSV["fig4"],
    output:
        png=report(f"{FIGURES}/fig4_error.png", caption="../report/fig4_error.rst", category="Figures"),
        pdf=f"{FIGURES}/fig4_error.pdf",
    params:
        chi_shown=EXPERIMENTS["fig4"]["dmrg_chi_shown"],
    log:
        f"{RESULTS}/logs/figures/fig4_error.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/fig4_error.py"


rule make_table1:
    """Table 1 as CSV and Markdown: per proposal size, the full runs (mean over seeds of E/N and
    ESS/n_proposed) beside the fixed-NQS ablation (efficiency and energy at equal training), and
    the ablation's figure (efficiency against training call and against size)."""
    input:
        runs=f"{RESULTS}/table1_runs.csv",
        ablation=TABLE1_ABLATION["sizes"],
        ablation_calls=TABLE1_ABLATION["calls"],
    output:
        csv=report(TIDY_CSV["table1"], caption="../report/table1.rst", category="Tables"),
        md=report(f"{RESULTS}/table1.md", caption="../report/table1.rst", category="Tables"),
        png=report(f"{FIGURES}/table1_ablation.png", caption="../report/table1_ablation.rst", category="Figures"),
        pdf=f"{FIGURES}/table1_ablation.pdf",
    log:
        f"{RESULTS}/logs/figures/table1.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/table1.py"


rule claims:
    """What each figure and table shows against the paper's claim, with a verdict
    (workflow/scripts/claims.py states the rules) -> results/claims.{csv,md}."""
    input:
        **claims_inputs(),
    output:
        csv=report(f"{RESULTS}/claims.csv", caption="../report/claims.rst", category="Tables"),
        md=report(f"{RESULTS}/claims.md", caption="../report/claims.rst", category="Tables"),
    log:
        f"{RESULTS}/logs/figures/claims.log",
    threads: 1
    localrule: True
    conda:
        ENV
    script:
        "../scripts/claims.py"
