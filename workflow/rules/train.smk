# Training: one job per experiment. Resumable: a killed job, started again, continues from
# results/<experiment>/checkpoint/last.pt (not a declared output, so Snakemake keeps it).


rule train:
    input:
        unpack(lambda wildcards: data_input(CONFIG["experiments"][wildcards.experiment])),
        unpack(job_costs_input),
    output:
        model="results/{experiment}/model.pt",
        metrics="results/{experiment}/metrics.csv",
        summary="results/{experiment}/train.json",
    log:
        "logs/train/{experiment}.log",
    benchmark:
        "results/{experiment}/train.benchmark.tsv"
    priority: PRIORITY["train"]
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=runtime_of("train", 720),
        mem_mb=4000,
        gpu=lambda wildcards: PLAN.spec_gpus(CONFIG["experiments"][wildcards.experiment]),
    params:
        name=lambda wildcards: wildcards.experiment,
        spec=lambda wildcards: PLAN.spec_json(CONFIG["experiments"][wildcards.experiment]),
        out_dir=lambda wildcards, output: Path(output.model).parent,
    shell:
        "python -m lossgeom --threads {threads} train --name {params.name:q} --spec {params.spec:q} "
        "--out-dir {params.out_dir:q} > {log:q} 2>&1"


rule training_summary:
    input:
        expand("results/{experiment}/train.json", experiment=PLAN.experiments),
    output:
        "results/training_summary.csv",
    log:
        "logs/training_summary.log",
    benchmark:
        "results/training_summary.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom summarize-training {input:q} --out {output:q} > {log:q} 2>&1"
