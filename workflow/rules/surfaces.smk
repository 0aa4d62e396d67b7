# Loss and accuracy around every trained model: 2D grids and 1D slices along random (filter-normalized)
# and Hessian (v_max, v_min) directions, train and test. Tiled: a killed job resumes at the last tile.
# With surfaces.parts = P > 1 the tiles are dealt out to P jobs (surface_part; on a cluster, P GPUs at once) and
# the light rule surfaces merges them into the same surfaces.npz, bitwise.

SURFACE_PARTS = config["surfaces"].get("parts", 1)


rule surface_part:
    input:
        unpack(job_costs_input),
        model="results/{experiment}/model.pt",
        eigenvectors="results/{experiment}/hessian/eigenvectors.pt",
    output:
        record="results/{experiment}/surfaces/parts/part{part}.json",
    params:
        settings=with_device("surfaces"),
        out_dir=lambda wildcards, output: Path(output.record).parent.parent,
    wildcard_constraints:
        part=r"\d+",
    priority: PRIORITY["surfaces"]
    log:
        "logs/surfaces/{experiment}.part{part}.log",
    benchmark:
        "results/{experiment}/surfaces/parts/part{part}.benchmark.tsv"
    threads: config["threads"]
    resources:
        runtime=runtime_of("surface_part", 480),
        mem_mb=8000,
        gpu=stage_gpus("surfaces"),
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom --threads {threads} surfaces --model {input.model:q} --eigenvectors {input.eigenvectors:q} "
        "--settings {params.settings:q} --out-dir {params.out_dir:q} --part {wildcards.part} > {log:q} 2>&1"


if SURFACE_PARTS > 1:

    rule surfaces:
        input:
            records=expand("results/{{experiment}}/surfaces/parts/part{part}.json", part=range(SURFACE_PARTS)),
        output:
            grids="results/{experiment}/surfaces/surfaces.npz",
            meta="results/{experiment}/surfaces/surfaces.json",
        params:
            out_dir=lambda wildcards, output: Path(output.grids).parent,
        priority: PRIORITY["surfaces"]
        log:
            "logs/surfaces/{experiment}.log",
        benchmark:
            "results/{experiment}/surfaces/benchmark.tsv"
        resources:
            runtime=10,
            mem_mb=4000,
        conda:
            "../../envs/lossgeom.yaml"
        shell:
            "python -m lossgeom merge-surfaces {input.records:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"

else:

    rule surfaces:
        input:
            unpack(job_costs_input),
            model="results/{experiment}/model.pt",
            eigenvectors="results/{experiment}/hessian/eigenvectors.pt",
        output:
            grids="results/{experiment}/surfaces/surfaces.npz",
            meta="results/{experiment}/surfaces/surfaces.json",
        params:
            settings=with_device("surfaces"),
            out_dir=lambda wildcards, output: Path(output.grids).parent,
        priority: PRIORITY["surfaces"]
        log:
            "logs/surfaces/{experiment}.log",
        benchmark:
            "results/{experiment}/surfaces/benchmark.tsv"
        threads: config["threads"]
        resources:
            runtime=runtime_of("surfaces", 480),
            mem_mb=8000,
            gpu=stage_gpus("surfaces"),
        conda:
            "../../envs/lossgeom.yaml"
        shell:
            "python -m lossgeom --threads {threads} surfaces --model {input.model:q} --eigenvectors {input.eigenvectors:q} "
            "--settings {params.settings:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
