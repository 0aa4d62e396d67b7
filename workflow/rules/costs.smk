# With `runtimes: {estimate: true}` (configs/paper.yaml): each experiment's passes timed on the device its jobs
# use, before they run, and every torch job's cluster runtime estimated from them (see runtime_of in common.smk).


rule job_costs:
    input:
        unpack(lambda wildcards: data_input(CONFIG["experiments"][wildcards.experiment])),
    output:
        "results/{experiment}/job_costs.json",
    log:
        "logs/job_costs/{experiment}.log",
    benchmark:
        "results/{experiment}/job_costs.benchmark.tsv"
    conda:
        "../../envs/lossgeom.yaml"
    threads: CONFIG["threads"]
    resources:
        runtime=30,
        mem_mb=8000,
        gpu=PLAN.stage_gpus("hessian"),
    params:
        spec=lambda wildcards: PLAN.spec_json(CONFIG["experiments"][wildcards.experiment]),
        settings=PLAN.job_costs_settings(),
    shell:
        "python -m lossgeom --threads {threads} job-costs --name {wildcards.experiment:q} --spec {params.spec:q} "
        "--settings {params.settings:q} --out {output:q} > {log:q} 2>&1"
