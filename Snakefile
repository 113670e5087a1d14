# nirbench: regenerate every figure and table of "Neural importance resampling: a practical
# sampling strategy for neural quantum states" (Ledinauskas & Anisimovas, 2026).
#
#   snakemake --profile workflow/profiles/default                              # default scale
#   snakemake --profile workflow/profiles/default --configfile config/smoke.yaml   # CI scale
#   snakemake --profile workflow/profiles/slurm --configfile config/paper.yaml     # paper scale
#
# Targets: all (default), fig2, fig3, fig4, table1, references, varbench; accuracy (not in all). See workflow/rules/common.smk
# for the layout of results/ and figures/.

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/vmc.smk"
include: "workflow/rules/jsd.smk"
include: "workflow/rules/dmrg.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/varbench.smk"
include: "workflow/rules/accuracy.smk"


onstart:
    record_start()


rule all:
    default_target: True
    input:
        final_targets(),
        f"{RESULTS}/provenance.json",
        f"{RESULTS}/varbench_runs.csv",
