# Figures: one parameterized notebook per figure (notebooks/<F>.ipynb), executed by papermill. The notebook is
# a declared input, so editing it reruns that figure only; the executed copy is kept beside the figure.
# Each figure is also a named target: `snakemake F5` (or `snakemake results/figures/F5.pdf`).


PAIR_SWEEPS = [sweep for sweep in CONNECTIVITY_SWEEPS if sweep not in TAXONOMY_SWEEPS]


# figure -> (its input files, the experiments it shows or None); a figure without experiments to show is left out
FIGURES = {
    "F1": (["results/synthetic/landscapes.npz"], None),
    "F2": (["results/checks/synthetic_samples.npz"], None),
    "F3": (["results/synthetic/saddle_probability.csv", "results/checks/synthetic.csv"], None),
    "F4": (per_experiment("results/{experiment}/checks/trace_vs_samples.csv", EXPERIMENTS), EXPERIMENTS),
    "F5": (per_experiment("results/{experiment}/surfaces/surfaces.npz", CLASSIFIERS)
           + per_experiment("results/{experiment}/hessian/summary.json", CLASSIFIERS), CLASSIFIERS),
    "F6": (per_experiment("results/{experiment}/surfaces/surfaces.npz", REGRESSORS)
           + per_experiment("results/{experiment}/hessian/summary.json", REGRESSORS), REGRESSORS),
    "F7": (per_experiment("results/{experiment}/hessian/density.csv", EXPERIMENTS)
           + per_experiment("results/{experiment}/hessian/summary.json", EXPERIMENTS), EXPERIMENTS),
    "F8": (per_experiment("results/{experiment}/checks/bias_vs_step.csv", EXPERIMENTS)
           + per_experiment("results/{experiment}/hessian/summary.json", EXPERIMENTS), EXPERIMENTS),
    "F9": ([f"results/sweeps/{sweep}/trajectory.csv" for sweep in LOCAL_TRAJECTORIES], LOCAL_TRAJECTORIES),
    "F10": ([f"results/sweeps/{sweep}/runs.csv" for sweep in GOLDILOCKS_SWEEPS], GOLDILOCKS_SWEEPS),
    "F11": ([f"results/sweeps/{sweep}/runs.csv" for sweep in SPECTRA_SWEEPS], SPECTRA_SWEEPS),
    "F12": ([f"results/sweeps/{sweep}/saddle/saddle.json" for sweep in SADDLE_SWEEPS]
            + [f"results/checks/saddle_{sweep}.csv" for sweep in SADDLE_SWEEPS], SADDLE_SWEEPS),
    # the phase diagrams' many cells are F15's, not F13's
    "F13": ([f"results/sweeps/{sweep}/connectivity/{name}" for sweep in PAIR_SWEEPS
             for name in ("summary.json", "paths.csv", "simplex_slice.npz")], PAIR_SWEEPS),
    "F14": ([f"results/sweeps/{sweep}/{name}" for sweep in TREND_SWEEPS for name in
             ("runs.csv",) + (("trajectory.csv",) if sweep in SNAPSHOT_STEPS else ())], TREND_SWEEPS),
    "F15": ([f"results/sweeps/{sweep}/taxonomy/cells.csv" for sweep in TAXONOMY_SWEEPS]
            + [f"results/checks/taxonomy_{sweep}.csv" for sweep in TAXONOMY_SWEEPS], TAXONOMY_SWEEPS),
}
FIGURES = {name: spec for name, spec in FIGURES.items() if spec[1] is None or spec[1]}
SHOWN_AS = {"F9": "sweeps", "F10": "sweeps", "F11": "sweeps", "F12": "sweeps", "F13": "sweeps", "F14": "sweeps",
            "F15": "sweeps"}  # the notebook parameter naming what a figure shows (default: experiments)


for figure, (data, experiments) in FIGURES.items():

    rule:
        name:
            figure
        input:
            notebook=str(NOTEBOOKS / f"{figure}.ipynb"),
            data=data,
        output:
            pdf=f"results/figures/{figure}.pdf",
            png=report(f"results/figures/{figure}.png", caption=f"../report/{figure}.rst", category="Figures"),
            notebook=f"results/figures/{figure}.ipynb",
        params:
            parameters=notebook_parameters(figure, experiments, SHOWN_AS.get(figure, "experiments")),
        log:
            f"logs/figures/{figure}.log",
        benchmark:
            f"results/figures/{figure}.benchmark.tsv"
        threads: 1
        resources:
            runtime=20,
            mem_mb=4000,
        conda:
            "../../envs/lossgeom.yaml"
        shell:
            "papermill {input.notebook:q} {output.notebook:q} -y {params.parameters:q} --no-progress-bar "
            "--log-output > {log:q} 2>&1"


rule T1:
    input:
        notebook=str(NOTEBOOKS / "T1.ipynb"),
        training=rules.training_summary.output,
        hessian=rules.hessian_summary.output,
        checks=rules.checks_table.output.table,
        signs=rules.checks_table.output.signs,
        traces=per_experiment("results/{experiment}/checks/trace_vs_samples.csv", EXPERIMENTS),
    output:
        csv="results/figures/T1.csv",
        html=report("results/figures/T1.html", caption="../report/T1.rst", category="Tables"),
        checks=report("results/figures/T1_checks.html", caption="../report/T1_checks.rst", category="Tables"),
        notebook="results/figures/T1.ipynb",
    params:
        parameters=lambda wildcards, output: json.dumps({
            "results": "results", "experiments": EXPERIMENTS, "output_csv": output.csv,
            "output_html": output.html, "output_checks_html": output.checks}),
    log:
        "logs/figures/T1.log",
    benchmark:
        "results/figures/T1.benchmark.tsv"
    threads: 1
    resources:
        runtime=20,
        mem_mb=4000,
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -y {params.parameters:q} --no-progress-bar "
        "--log-output > {log:q} 2>&1"


rule figures:
    input:
        expand("results/figures/{figure}.pdf", figure=list(FIGURES)),
        rules.T1.output,
