# Loss and accuracy around every trained model: 2D grids and 1D slices along random (filter-normalized)
# and Hessian (v_max, v_min) directions, train and test. Tiled: a killed job resumes at the last tile.


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
