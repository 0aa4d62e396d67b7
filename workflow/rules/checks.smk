# Theory-vs-measurement checks: each writes rows (check, case, quantity, theory, measured, tolerance,
# verdict) to results/checks/<check>.csv; results/checks/summary.csv gathers them all.


rule check_synthetic:
    output:
        rows="results/checks/synthetic.csv",
        samples="results/checks/synthetic_samples.npz",
    log:
        "logs/checks/synthetic.log",
    benchmark:
        "results/checks/synthetic.benchmark.tsv"
    priority: PRIORITY["check_synthetic"]
    conda:
        "../../envs/lossgeom.yaml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        settings=PLAN.block_json("checks", "synthetic"),
    shell:
        "python -m lossgeom --threads {threads} check-synthetic --settings {params.settings:q} --out {output.rows:q} "
        "--samples-out {output.samples:q} > {log:q} 2>&1"


rule check_model:
    input:
        unpack(job_costs_input),
        model="results/{experiment}/model.pt",
        hessian="results/{experiment}/hessian/summary.json",
        trace_samples="results/{experiment}/hessian/trace_samples.csv",  # reused as the first Hutchinson probes
    output:
        rows="results/checks/model_{experiment}.csv",
        trace="results/{experiment}/checks/trace_vs_samples.csv",
        sign="results/{experiment}/checks/sign_question.json",
        bias="results/{experiment}/checks/bias_vs_step.csv",
    log:
        "logs/checks/model_{experiment}.log",
    benchmark:
        "results/{experiment}/checks/benchmark.tsv"
    priority: PRIORITY["check_model"]
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=runtime_of("check_model", 240),
        mem_mb=8000,
        gpu=PLAN.stage_gpus("checks", "models"),
    params:
        settings=PLAN.with_device("checks", "models"),
    shell:
        "python -m lossgeom --threads {threads} check-model --name {wildcards.experiment:q} --model {input.model:q} "
        "--hessian {input.hessian:q} --settings {params.settings:q} --out {output.rows:q} "
        "--trace-out {output.trace:q} --sign-out {output.sign:q} --bias-out {output.bias:q} > {log:q} 2>&1"


# Curvatures of each model's narrowest 2D surface grid (finite differences, quadratic fit, graph shape
# operator) at and away from the trained point vs exact ones from Hessian-vector products.


rule check_curvature:
    input:
        unpack(job_costs_input),
        model="results/{experiment}/model.pt",
        eigenvectors="results/{experiment}/hessian/eigenvectors.pt",
        surfaces="results/{experiment}/surfaces/surfaces.npz",
        meta="results/{experiment}/surfaces/surfaces.json",
    output:
        rows="results/checks/curvature_{experiment}.csv",
        meta="results/{experiment}/checks/surface_curvature.json",
    log:
        "logs/checks/curvature_{experiment}.log",
    benchmark:
        "results/{experiment}/checks/curvature.benchmark.tsv"
    priority: PRIORITY["check_curvature"]
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=runtime_of("check_curvature", 120),
        mem_mb=8000,
        gpu=PLAN.stage_gpus("surfaces"),
    shell:
        "python -m lossgeom --threads {threads} check-curvature --name {wildcards.experiment:q} --model {input.model:q} "
        "--eigenvectors {input.eigenvectors:q} --surfaces {input.surfaces:q} --surfaces-meta {input.meta:q} "
        "--out {output.rows:q} --meta-out {output.meta:q} > {log:q} 2>&1"


# A sweep's checks that judge one of its tables (the kinds in lossgeom.planning.checks): the local phenomena along
# training from trajectory.csv (Sagun et al.; Fort & Ganguli), bulk and outliers across data and width, and the
# Goldilocks zone of subspace training (Fort & Ganguli; Fort & Scherlis; Li et al.) from runs.csv.
rule check_sweep:
    input:
        lambda wildcards: PLAN.check_table(wildcards.kind, wildcards.sweep),
    output:
        "results/checks/{kind}_{sweep}.csv",
    log:
        "logs/checks/{kind}_{sweep}.log",
    benchmark:
        "results/checks/{kind}_{sweep}.benchmark.tsv"
    wildcard_constraints:
        kind=one_of(TABLE_CHECKS),
        sweep=one_of([s for kind in TABLE_CHECKS for s in PLAN.with_check(kind)]),
    conda:
        "../../envs/lossgeom.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    shell:
        "python -m lossgeom check-sweep --kind {wildcards.kind} --sweep {wildcards.sweep:q} --table {input:q} "
        "--out {output:q} > {log:q} 2>&1"


# The paper's claim on a real network early in training (issue 14 g): at the snapshot of a trajectory sweep with the
# most negative lambda_min / lambda_max before the end, the saddle in Hessian directions, hidden in random ones.
rule check_saddle:
    input:
        "results/sweeps/{sweep}/trajectory.csv",
    output:
        rows="results/checks/saddle_{sweep}.csv",
        grids="results/sweeps/{sweep}/saddle/grids.npz",
        record="results/sweeps/{sweep}/saddle/saddle.json",
    log:
        "logs/checks/saddle_{sweep}.log",
    benchmark:
        "results/checks/saddle_{sweep}.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of(PLAN.with_check("saddle")),
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=60,
        mem_mb=8000,
        gpu=PLAN.stage_gpus("saddle"),
    params:
        settings=PLAN.with_device("saddle"),
        sweep_dir=lambda wildcards: f"results/sweeps/{wildcards.sweep}",
    shell:
        "python -m lossgeom --threads {threads} early-saddle --sweep {wildcards.sweep:q} --trajectory {input:q} "
        "--sweep-dir {params.sweep_dir:q} --settings {params.settings:q} --rows {output.rows:q} "
        "--grids {output.grids:q} --record {output.record:q} > {log:q} 2>&1"


# Learning rate, width and L2 move the curvature alike (Fort & Jastrzebski): rows across the trend sweeps.
rule check_trends:
    input:
        expand("results/sweeps/{sweep}/runs.csv", sweep=PLAN.with_check("trends")),
    output:
        "results/checks/trends.csv",
    log:
        "logs/checks/trends.log",
    benchmark:
        "results/checks/trends.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        tables=" ".join(shlex.quote(f"{sweep}=results/sweeps/{sweep}/runs.csv") for sweep in PLAN.with_check("trends")),
    shell:
        "python -m lossgeom check-trends --tables {params.tables} --out {output:q} > {log:q} 2>&1"


# How a sweep's seeds connect (issue 15): lines, Bezier curves and simplices between them, CKA, and large -> small
# batch continuation (lossgeom.stages.connectivity).
rule check_connectivity:
    input:
        models=lambda wildcards: PLAN.each_run(wildcards.sweep, "model.pt"),
    output:
        rows="results/checks/connectivity_{sweep}.csv",
        summary="results/sweeps/{sweep}/connectivity/summary.json",
        paths="results/sweeps/{sweep}/connectivity/paths.csv",
        slices="results/sweeps/{sweep}/connectivity/simplex_slice.npz",
    log:
        "logs/checks/connectivity_{sweep}.log",
    benchmark:
        "results/checks/connectivity_{sweep}.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of([s for s in PLAN.with_stage("connectivity") if s not in PLAN.split_connectivity]),
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=lambda wildcards: PLAN.sweep_runtime(wildcards.sweep, "connectivity"),
        mem_mb=8000,
        gpu=lambda wildcards: PLAN.sweep_gpus(wildcards.sweep, ["connectivity"]),
    params:
        runs=lambda wildcards: json.dumps(PLAN.connectivity_runs(wildcards.sweep)),
        settings=lambda wildcards: SWEEPS[wildcards.sweep].settings_json["connectivity"],
        out_dir=lambda wildcards, output: Path(output.summary).parent,
    shell:
        "python -m lossgeom --threads {threads} connectivity --sweep {wildcards.sweep:q} --runs {params.runs:q} "
        "--settings {params.settings:q} --out-dir {params.out_dir:q} --rows {output.rows:q} > {log:q} 2>&1"


# A sweep with many conditions (connectivity: {parts: n}, e.g. configs/taxonomy.yaml's 169 cells) in n jobs of whole
# conditions each, then one job that merges their outputs into what check_connectivity writes.
rule connectivity_part:
    input:
        models=lambda wildcards: [
            run["model"] for run in PLAN.connectivity_runs(wildcards.sweep, int(wildcards.part)).values()
        ],
    output:
        summary="results/sweeps/{sweep}/connectivity/part{part}/summary.json",
        paths="results/sweeps/{sweep}/connectivity/part{part}/paths.csv",
        slices="results/sweeps/{sweep}/connectivity/part{part}/simplex_slice.npz",
    log:
        "logs/checks/connectivity_{sweep}/part{part}.log",
    benchmark:
        "results/sweeps/{sweep}/connectivity/part{part}/benchmark.tsv"
    wildcard_constraints:
        sweep=one_of(PLAN.split_connectivity),
        part=r"\d+",
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=lambda wildcards: PLAN.sweep_runtime(wildcards.sweep, "connectivity"),
        mem_mb=8000,
        gpu=lambda wildcards: PLAN.sweep_gpus(wildcards.sweep, ["connectivity"]),
    params:
        runs=lambda wildcards: json.dumps(PLAN.connectivity_runs(wildcards.sweep, int(wildcards.part))),
        settings=lambda wildcards: SWEEPS[wildcards.sweep].settings_json["connectivity"],
        out_dir=lambda wildcards, output: Path(output.summary).parent,
    shell:
        "python -m lossgeom --threads {threads} connectivity --sweep {wildcards.sweep:q} --runs {params.runs:q} "
        "--settings {params.settings:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule merge_connectivity:
    input:
        parts=lambda wildcards: [
            f"results/sweeps/{wildcards.sweep}/connectivity/part{i}/summary.json"
            for i in range(len(SWEEPS[wildcards.sweep].connectivity_parts))
        ],
    output:
        rows="results/checks/connectivity_{sweep}.csv",
        summary="results/sweeps/{sweep}/connectivity/summary.json",
        paths="results/sweeps/{sweep}/connectivity/paths.csv",
        slices="results/sweeps/{sweep}/connectivity/simplex_slice.npz",
    log:
        "logs/checks/connectivity_{sweep}.log",
    benchmark:
        "results/checks/connectivity_{sweep}.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of(PLAN.split_connectivity),
    conda:
        "../../envs/lossgeom.yaml"
    resources:
        runtime=10,
    params:
        folders=lambda wildcards, input: [str(Path(p).parent) for p in input.parts],
        order=lambda wildcards: json.dumps(list(SWEEPS[wildcards.sweep].runs)),
        out_dir=lambda wildcards, output: Path(output.summary).parent,
    shell:
        "python -m lossgeom connectivity-merge --sweep {wildcards.sweep:q} --parts {params.folders:q} "
        "--order {params.order:q} --out-dir {params.out_dir:q} --rows {output.rows:q} > {log:q} 2>&1"


# Yang et al.'s phase diagram of a width x batch-size (or label-noise) sweep: the cell table with phases, and its rows
# (lossgeom.stages.taxonomy).
rule check_taxonomy:
    input:
        runs="results/sweeps/{sweep}/runs.csv",
        connectivity="results/sweeps/{sweep}/connectivity/summary.json",
    output:
        rows="results/checks/taxonomy_{sweep}.csv",
        cells="results/sweeps/{sweep}/taxonomy/cells.csv",
        meta="results/sweeps/{sweep}/taxonomy/cells.json",
    log:
        "logs/checks/taxonomy_{sweep}.log",
    benchmark:
        "results/checks/taxonomy_{sweep}.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of(PLAN.with_check("taxonomy")),
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom taxonomy --sweep {wildcards.sweep:q} --runs-table {input.runs:q} "
        "--connectivity {input.connectivity:q} --cells {output.cells:q} --rows {output.rows:q} > {log:q} 2>&1"


rule checks_table:
    input:
        tables=PLAN.check_tables(),
        signs=expand("results/{experiment}/checks/sign_question.json", experiment=PLAN.experiments),
    output:
        table="results/checks/summary.csv",
        signs="results/checks/sign_question.csv",
    log:
        "logs/checks/summary.log",
    benchmark:
        "results/checks/summary.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom checks-table {input.tables:q} --signs {input.signs:q} --out {output.table:q} "
        "--sign-out {output.signs:q} > {log:q} 2>&1"


# Data of the synthetic-saddle figures (F1 surfaces, F3 saddle probability): theory computed in numpy.


rule synthetic_landscapes:
    output:
        grids="results/synthetic/landscapes.npz",
        meta="results/synthetic/landscapes.json",
    log:
        "logs/synthetic/landscapes.log",
    benchmark:
        "results/synthetic/landscapes.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    threads: 1
    resources:
        runtime=30,
        mem_mb=2000,
    params:
        settings=PLAN.block_json("figures", "landscapes"),
    shell:
        "python -m lossgeom synthetic-landscapes --settings {params.settings:q} --out {output.grids:q} > {log:q} 2>&1"


rule saddle_probability:
    output:
        "results/synthetic/saddle_probability.csv",
    log:
        "logs/synthetic/saddle_probability.log",
    benchmark:
        "results/synthetic/saddle_probability.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        settings=PLAN.block_json("figures", "saddle_probability"),
    shell:
        "python -m lossgeom --threads {threads} saddle-probability --settings {params.settings:q} --out {output:q} > {log:q} 2>&1"
