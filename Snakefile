# Loss-landscape geometry with Hessian directions (Böttcher & Wheeler 2024): the whole replication.
# Run:   uv run snakemake --cores all            (default config.yaml: embedded data, CPU, minutes)
#        snakemake --cores all --use-conda       (conda users)
# Config: config.yaml by default, another set with --configfile configs/<set>.yaml (which replaces it;
#         --config key=value edits either)
# Profile: profiles/default is loaded automatically (rerun incomplete jobs, print failed logs).
from snakemake.utils import min_version

min_version("9.27")  # the version the workflow is tested with (uv.lock, envs/)


# Snakemake's `configfile:` directive would merge config.yaml UNDER a --configfile, so that a tiny set
# inherits the default experiments; load it only when no config file was given.
if not workflow.overwrite_configfiles:
    workflow.configfile("config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/costs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/hessian.smk"
include: "workflow/rules/surfaces.smk"
include: "workflow/rules/checks.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/sweeps.smk"


rule all:
    default_target: True
    input:
        # a config of sweeps alone (experiments: {}, e.g. configs/phases.yaml) has no experiment tables or Table 1
        rules.training_summary.output if PLAN.experiments else [],
        rules.hessian_summary.output if PLAN.experiments else [],
        rules.checks_table.output.table,
        expand(rules.surfaces.output.meta, experiment=PLAN.experiments),
        rules.figures.input,
        expand("results/sweeps/{sweep}/runs.csv", sweep=list(SWEEPS)),
        expand("results/sweeps/{sweep}/trajectory.csv", sweep=PLAN.with_snapshots),
