# Loss and accuracy around every trained model: 2D grids and 1D slices along random (filter-normalized)
# and Hessian (v_max, v_min) directions, train and test. Tiled: a killed job resumes at the last tile.
# With surfaces.parts = P > 1 the tiles are dealt out to P jobs (surface_part; on a cluster, P GPUs at once) and
# the light job of rule surfaces merges them into the same surfaces.npz, bitwise; with P = 1 rule surfaces
# computes every tile itself.


rule surface_part:
    input:
        unpack(job_costs_input),
        model="results/{experiment}/model.pt",
        eigenvectors="results/{experiment}/hessian/eigenvectors.pt",
    output:
        record="results/{experiment}/surfaces/parts/part{part}.json",
    log:
        "logs/surfaces/{experiment}.part{part}.log",
    benchmark:
        "results/{experiment}/surfaces/parts/part{part}.benchmark.tsv"
    wildcard_constraints:
        part=r"\d+",
    priority: PRIORITY["surfaces"]
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=runtime_of("surface_part", 480),
        mem_mb=8000,
        gpu=PLAN.stage_gpus("surfaces"),
    params:
        settings=PLAN.with_device("surfaces"),
        out_dir=lambda wildcards, output: Path(output.record).parent.parent,
    shell:
        "python -m lossgeom --threads {threads} surfaces --model {input.model:q} --eigenvectors {input.eigenvectors:q} "
        "--settings {params.settings:q} --out-dir {params.out_dir:q} --part {wildcards.part} > {log:q} 2>&1"


rule surfaces:
    input:
        unpack(surfaces_input),
    output:
        grids="results/{experiment}/surfaces/surfaces.npz",
        meta="results/{experiment}/surfaces/surfaces.json",
    log:
        "logs/surfaces/{experiment}.log",
    benchmark:
        "results/{experiment}/surfaces/benchmark.tsv"
    priority: PRIORITY["surfaces"]
    conda:
        "../../envs/lossgeom.yaml"
    threads: 1 if PLAN.surface_parts > 1 else CONFIG["threads"]
    resources:
        runtime=runtime_of("surfaces", 10 if PLAN.surface_parts > 1 else 480),
        mem_mb=4000 if PLAN.surface_parts > 1 else 8000,
        gpu=0 if PLAN.surface_parts > 1 else PLAN.stage_gpus("surfaces"),
    params:
        command=surfaces_command,
    shell:
        "python -m lossgeom --threads {threads} {params.command} > {log:q} 2>&1"
