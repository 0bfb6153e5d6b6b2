rule probe:
    input:
        settings=settings_file("probe/{probe}"),
        data=paths.DATASET,
        split=paths.SPLIT,
        model=paths.MODEL,
    output:
        record=paths.EVAL,
    log:
        "results/logs/probe/{dataset}/{method}/split{split}/seed{seed}/{probe}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("probe")
    resources:
        **rule_resources("probe"),
    params:
        script=script("evaluate.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --data {input.data:q} "
            "--split {input.split:q} --model {input.model:q} --seed {wildcards.seed} "
            "--out {output.record:q} --threads {threads} 2>> {log:q}"
        )
