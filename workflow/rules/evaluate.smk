rule probe:
    input:
        data=DATASET,
        split=SPLIT,
        model=MODEL,
    output:
        record=EVAL,
    params:
        script=script("evaluate.py"),
        settings=probe_settings_json,
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "results/logs/probe/{dataset}/{method}/split{split}/seed{seed}/{probe}.log",
    conda:
        "../../environment.yml"
    shell:
        "python {params.script:q} --settings {params.settings:q} --data {input.data:q} "
        "--split {input.split:q} --model {input.model:q} --seed {wildcards.seed} "
        "--out {output.record:q} --threads {threads} 2> {log:q}"
