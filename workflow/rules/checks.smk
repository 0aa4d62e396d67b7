# Theory-vs-measurement checks: each writes rows (check, case, quantity, theory, measured, tolerance,
# verdict) to results/checks/<check>.csv; results/checks/summary.csv gathers them all.


rule check_synthetic:
    output:
        "results/checks/synthetic.csv",
    params:
        settings=block_json("checks", "synthetic"),
    log:
        "logs/checks/synthetic.log",
    benchmark:
        "results/checks/synthetic.benchmark.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom --threads {threads} check-synthetic --settings {params.settings:q} --out {output:q} > {log:q} 2>&1"


rule checks_table:
    input:
        rules.check_synthetic.output,
    output:
        "results/checks/summary.csv",
    log:
        "logs/checks/summary.log",
    conda:
        "../../envs/lossgeom.yaml"
    shell:
        "python -m lossgeom checks-table {input:q} --out {output:q} > {log:q} 2>&1"
