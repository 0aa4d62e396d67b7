# Figures: one parameterized notebook per figure (notebooks/<F>.ipynb), executed by papermill. The notebook is
# a declared input, so editing it reruns that figure only; the executed copy is kept beside the figure.
# Each figure is also a named target: `snakemake F5` (or `snakemake results/figures/F5.pdf`).
# A notebook reads only the paths its `inputs` parameter names (by role), and the rule declares every one of them.
from lossgeom.planning.figures import figure_roles, flatten, table_inputs  # noqa: E402

FIGURES = figure_roles(PLAN)  # figure -> (its inputs by role, what it shows or None, the notebook parameter)
TABLE_INPUTS = table_inputs(PLAN)  # Table 1's inputs by role


for figure, (inputs, shown, shown_as) in FIGURES.items():

    rule:
        name:
            figure
        input:
            notebook=str(NOTEBOOKS / f"{figure}.ipynb"),
            data=flatten(inputs),
        output:
            pdf=f"results/figures/{figure}.pdf",
            png=report(f"results/figures/{figure}.png", caption=f"../report/{figure}.rst", category="Figures"),
            notebook=f"results/figures/{figure}.ipynb",
        log:
            f"logs/figures/{figure}.log",
        benchmark:
            f"results/figures/{figure}.benchmark.tsv"
        conda:
            "../../envs/lossgeom.yaml"
        threads: 1
        resources:
            runtime=20,
            mem_mb=4000,
        params:
            parameters=notebook_parameters(figure, shown, shown_as, inputs),
        shell:
            "papermill {input.notebook:q} {output.notebook:q} -y {params.parameters:q} --no-progress-bar "
            "--log-output > {log:q} 2>&1"


rule T1:
    input:
        notebook=str(NOTEBOOKS / "T1.ipynb"),
        data=flatten(TABLE_INPUTS),
    output:
        csv="results/figures/T1.csv",
        html=report("results/figures/T1.html", caption="../report/T1.rst", category="Tables"),
        checks=report("results/figures/T1_checks.html", caption="../report/T1_checks.rst", category="Tables"),
        notebook="results/figures/T1.ipynb",
    log:
        "logs/figures/T1.log",
    benchmark:
        "results/figures/T1.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    threads: 1
    resources:
        runtime=20,
        mem_mb=4000,
    params:
        parameters=lambda wildcards, output: notebook_parameters(
            "T1",
            PLAN.experiments,
            "experiments",
            TABLE_INPUTS,
            output_csv=output.csv,
            output_html=output.html,
            output_checks_html=output.checks,
        ),
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -y {params.parameters:q} --no-progress-bar "
        "--log-output > {log:q} 2>&1"


rule figures:
    input:
        expand("results/figures/{figure}.pdf", figure=list(FIGURES)),
        rules.T1.output if PLAN.experiments else [],
