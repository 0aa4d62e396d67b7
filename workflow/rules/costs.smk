# With `runtimes: {estimate: true}` (configs/paper.yaml): each experiment's passes timed on the device its jobs
# use, before they run, and every torch job's cluster runtime estimated from them (see runtime_of in common.smk).


rule job_costs:
    input:
        unpack(experiment_data_input),
    output:
        "results/{experiment}/job_costs.json",
    params:
        spec=lambda wildcards: experiment_spec(wildcards.experiment),
        settings=lambda wildcards: json.dumps({"hessian": json.loads(with_device("hessian")), "surfaces": block("surfaces"),
                                               "checks.models": block("checks", "models"), "runtimes": block("runtimes")},
                                              sort_keys=True),
    log:
        "logs/job_costs/{experiment}.log",
    benchmark:
        "results/{experiment}/job_costs.benchmark.tsv"
    threads: config["threads"]
    resources:
        runtime=30,
        mem_mb=8000,
        gpu=stage_gpus("hessian"),
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom --threads {threads} job-costs --name {wildcards.experiment:q} --spec {params.spec:q} "
        "--settings {params.settings:q} --out {output:q} > {log:q} 2>&1"
