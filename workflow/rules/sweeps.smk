# Generated runs (the config's `sweeps:`): each sweep expands into one run per point of its grid, under
# results/sweeps/<sweep>/<run>/. A run's jobs are the paper's train (and, with `hessian: true`, hessian)
# rules on other paths; the paper's per-model stages (surfaces, checks, figures) are not generated for them.
# A sweep with `snapshots` saves every run's weights along training (results/sweeps/<sweep>/<run>/snapshots/,
# one folder written by the training job) and, with `hessian: true`, computes each snapshot's Hessian under
# <run>/trajectory/step=<k>/, tabulated in results/sweeps/<sweep>/trajectory.csv.
# On a cluster, the short jobs of all sweeps form the group "sweeps", so that the profile's
# group-components batch many runs into one submission instead of one SLURM job per run.


use rule train as sweep_train with:
    input:
        unpack(lambda wildcards: data_input(SWEEPS[wildcards.sweep].runs[wildcards.run])),
    output:
        model="results/sweeps/{sweep}/{run}/model.pt",
        metrics="results/sweeps/{sweep}/{run}/metrics.csv",
        summary="results/sweeps/{sweep}/{run}/train.json",
    log:
        "logs/sweeps/{sweep}/{run}/train.log",
    benchmark:
        "results/sweeps/{sweep}/{run}/train.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of([s for s in SWEEPS if s not in PLAN.with_snapshots + PLAN.batched]),
    group:
        "sweeps"
    resources:
        runtime=lambda wildcards: PLAN.sweep_runtime(wildcards.sweep, "train"),
        mem_mb=4000,
        gpu=lambda wildcards: PLAN.spec_gpus(SWEEPS[wildcards.sweep].runs[wildcards.run]),
    params:
        name=lambda wildcards: f"{wildcards.sweep}/{wildcards.run}",
        spec=lambda wildcards: PLAN.spec_json(SWEEPS[wildcards.sweep].runs[wildcards.run]),
        out_dir=lambda wildcards, output: Path(output.model).parent,


use rule sweep_train as sweep_train_with_snapshots with:
    output:
        model="results/sweeps/{sweep}/{run}/model.pt",
        metrics="results/sweeps/{sweep}/{run}/metrics.csv",
        summary="results/sweeps/{sweep}/{run}/train.json",
        snapshots=directory("results/sweeps/{sweep}/{run}/snapshots"),
    wildcard_constraints:
        sweep=one_of([s for s in PLAN.with_snapshots if s not in PLAN.batched]),


use rule hessian as sweep_hessian with:
    input:
        model="results/sweeps/{sweep}/{run}/model.pt",
    output:
        summary="results/sweeps/{sweep}/{run}/hessian/summary.json",
        eigenvectors="results/sweeps/{sweep}/{run}/hessian/eigenvectors.pt",
        trace_samples="results/sweeps/{sweep}/{run}/hessian/trace_samples.csv",
        density="results/sweeps/{sweep}/{run}/hessian/density.csv",
        nodes="results/sweeps/{sweep}/{run}/hessian/slq_nodes.csv",
    log:
        "logs/sweeps/{sweep}/{run}/hessian.log",
    benchmark:
        "results/sweeps/{sweep}/{run}/hessian/benchmark.tsv"
    wildcard_constraints:
        sweep=one_of([s for s in PLAN.with_stage("hessian") if s not in PLAN.with_snapshots + PLAN.batched]),  # a trajectory's end is its final model
    group:
        "sweeps"
    resources:
        runtime=lambda wildcards: PLAN.sweep_runtime(wildcards.sweep, "hessian"),
        mem_mb=8000,
        gpu=lambda wildcards: PLAN.sweep_gpus(wildcards.sweep, ["hessian"]),
    params:
        model=lambda wildcards, input: input.model,
        settings=lambda wildcards: SWEEPS[wildcards.sweep].settings_json["hessian"],
        out_dir=lambda wildcards, output: Path(output.summary).parent,


rule sweep_local:
    input:
        model="results/sweeps/{sweep}/{run}/model.pt",
        hessian="results/sweeps/{sweep}/{run}/hessian/summary.json",
        eigenvectors="results/sweeps/{sweep}/{run}/hessian/eigenvectors.pt",
    output:
        "results/sweeps/{sweep}/{run}/local.json",
    log:
        "logs/sweeps/{sweep}/{run}/local.log",
    benchmark:
        "results/sweeps/{sweep}/{run}/local.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of([s for s in PLAN.with_stage("local") if s not in PLAN.with_snapshots + PLAN.batched]),
    group:
        "sweeps"
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=60,
        mem_mb=lambda wildcards: PLAN.measure_mem_mb(wildcards.sweep, [wildcards.run]),
        gpu=lambda wildcards: PLAN.sweep_gpus(wildcards.sweep, ["local"]),
    params:
        settings=lambda wildcards: SWEEPS[wildcards.sweep].settings_json["local"],
    shell:
        "python -m lossgeom --threads {threads} local-geometry --model {input.model:q} --hessian {input.hessian:q} "
        "--eigenvectors {input.eigenvectors:q} --settings {params.settings:q} --out {output:q} > {log:q} 2>&1"


# The Hessian (and local geometry) of every snapshot of a run, and of its final model, in one job per run
# (lossgeom.stages.run_trajectory): a job per snapshot cost a process start each, more than the small models'
# compute. The points are written under <run>/trajectory/step=<k>/; points.json, written last, lists them.
# Not in the group "sweeps": there, on the real-SLURM test with GPU requests, the group's job step asked for
# more GPUs than its allocation ("srun: Step requested gres=gpu:2 is more than the job's gres=gpu:1"), and
# every job of the group failed.
rule sweep_run_trajectory:
    input:
        snapshots="results/sweeps/{sweep}/{run}/snapshots",
        model="results/sweeps/{sweep}/{run}/model.pt",
    output:
        "results/sweeps/{sweep}/{run}/trajectory/points.json",
    log:
        "logs/sweeps/{sweep}/{run}/trajectory.log",
    benchmark:
        "results/sweeps/{sweep}/{run}/trajectory.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of([s for s in PLAN.with_snapshots if s in PLAN.with_stage("hessian") and s not in PLAN.batched]),
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=lambda wildcards: 60 * len(SWEEPS[wildcards.sweep].snapshots),
        mem_mb=lambda wildcards: PLAN.measure_mem_mb(wildcards.sweep, [wildcards.run]),
        gpu=lambda wildcards: PLAN.sweep_gpus(wildcards.sweep),
    params:
        hessian=lambda wildcards: SWEEPS[wildcards.sweep].settings_json["hessian"],
        local=lambda wildcards: PLAN.measure_options(wildcards.sweep, ["local"]),
        out_dir=lambda wildcards, output: Path(output[0]).parent,
    shell:
        "python -m lossgeom --threads {threads} run-trajectory --snapshots {input.snapshots:q} "
        "--final-model {input.model:q} --hessian-settings {params.hessian:q} {params.local} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"


# A sweep with `batch: n` gives its runs to jobs n at a time (lossgeom.stages.sweep_batch): each job trains its runs
# in turn and measures each as the per-run jobs above would, into the same files. One rule per batch, generated.
# Not in the group "sweeps": a batch is a job of some size already, and may ask for a GPU (see above).
for sweep in PLAN.batched:
    for index, batch in enumerate(SWEEPS[sweep].batches):

        rule:
            name:
                f"sweep_batch_{sweep}_{index}"
            input:  # keys by run: two runs' data files under one key would keep only the last
                **{
                    f"{key}_{position}": path
                    for position, run_id in enumerate(batch)
                    for key, path in data_input(SWEEPS[sweep].runs[run_id]).items()
                },
            output:
                batch_outputs(sweep, index),
            log:
                f"logs/sweeps/{sweep}/batch{index}.log",
            benchmark:
                f"results/sweeps/{sweep}/batch{index}.benchmark.tsv"
            conda:
                "../../envs/lossgeom.yaml"
            threads: CONFIG["threads"]
            resources:
                runtime=PLAN.batch_runtime(sweep, index),
                mem_mb=PLAN.batch_mem_mb(sweep, index),
                gpu=PLAN.batch_gpus(sweep, index),
            params:
                runs=PLAN.batch_runs_json(sweep, index),
                measure=PLAN.measure_options(sweep),
            shell:
                "python -m lossgeom --threads {threads} sweep-batch --runs {params.runs:q} {params.measure} > {log:q} 2>&1"


rule sweep_trajectory:
    input:
        snapshots=lambda wildcards: PLAN.each_run(wildcards.sweep, "snapshots"),
        points=lambda wildcards: (
            PLAN.each_run(wildcards.sweep, "trajectory/points.json")
            if SWEEPS[wildcards.sweep].hessian is not None
            else []
        ),
    output:
        "results/sweeps/{sweep}/trajectory.csv",
    log:
        "logs/sweeps/{sweep}/trajectory.log",
    benchmark:
        "results/sweeps/{sweep}/trajectory.benchmark.tsv"
    wildcard_constraints:
        sweep=one_of(PLAN.with_snapshots),
    conda:
        "../../envs/lossgeom.yaml"
    params:
        grid=lambda wildcards: json.dumps(SWEEPS[wildcards.sweep].grid),
        runs=lambda wildcards: json.dumps(PLAN.run_folders(wildcards.sweep)),
    shell:
        "python -m lossgeom sweep-trajectory --grid {params.grid:q} --runs {params.runs:q} --out {output:q} > {log:q} 2>&1"


rule sweep_table:
    input:
        runs=lambda wildcards: PLAN.each_run(wildcards.sweep, "train.json"),
        measured=lambda wildcards: PLAN.run_measurements(wildcards.sweep),
    output:
        "results/sweeps/{sweep}/runs.csv",
    log:
        "logs/sweeps/{sweep}/table.log",
    benchmark:
        "results/sweeps/{sweep}/runs.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    params:
        grid=lambda wildcards: json.dumps(SWEEPS[wildcards.sweep].grid),
        runs=lambda wildcards: json.dumps(PLAN.run_folders(wildcards.sweep)),
    shell:
        "python -m lossgeom sweep-table --grid {params.grid:q} --runs {params.runs:q} --out {output:q} > {log:q} 2>&1"
