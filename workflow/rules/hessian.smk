# Curvature of every trained model: the largest and most negative Hessian eigenpairs (with residuals),
# the Hutchinson trace and the SLQ spectral density. Runs on the configured device (GPU when there is one).


rule hessian:
    input:
        unpack(job_costs_input),
        model="results/{experiment}/model.pt",
    output:
        summary="results/{experiment}/hessian/summary.json",
        eigenvectors="results/{experiment}/hessian/eigenvectors.pt",
        trace_samples="results/{experiment}/hessian/trace_samples.csv",
        density="results/{experiment}/hessian/density.csv",
        nodes="results/{experiment}/hessian/slq_nodes.csv",
    log:
        "logs/hessian/{experiment}.log",
    benchmark:
        "results/{experiment}/hessian/benchmark.tsv"
    priority: PRIORITY["hessian"]
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=runtime_of("hessian", 240),
        mem_mb=8000,
        gpu=PLAN.stage_gpus("hessian"),
    params:
        model=lambda wildcards, input: input.model,  # a snapshot's Hessian names a file inside its folder
        settings=PLAN.with_device("hessian"),
        out_dir=lambda wildcards, output: Path(output.summary).parent,
    shell:
        "python -m lossgeom --threads {threads} hessian --model {params.model:q} --settings {params.settings:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"


rule hessian_summary:
    input:
        expand("results/{experiment}/hessian/summary.json", experiment=PLAN.experiments),
    output:
        "results/hessian_summary.csv",
    log:
        "logs/hessian_summary.log",
    benchmark:
        "results/hessian_summary.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom summarize-hessian {input:q} --out {output:q} > {log:q} 2>&1"
