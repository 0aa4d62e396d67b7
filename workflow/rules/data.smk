# On-disk datasets (MNIST, CIFAR-10) whose config says `download: true`: one download per dataset and folder,
# before every job that reads them, so that no two jobs download the same files at once. A local rule: it runs
# where Snakemake runs (on a cluster, the login node, which usually has the network the compute nodes lack).


rule download_data:
    output:
        "results/data/{dataset}.json",
    log:
        "logs/download_data/{dataset}.log",
    wildcard_constraints:
        dataset=one_of([re.escape(key) for key in PLAN.downloads]),
    localrule: True
    conda:
        "../../envs/lossgeom.yaml"
    params:
        dataset=lambda wildcards: json.dumps(PLAN.downloads[wildcards.dataset], sort_keys=True),
    shell:
        "python -m lossgeom download --dataset {params.dataset:q} --out {output:q} > {log:q} 2>&1"
