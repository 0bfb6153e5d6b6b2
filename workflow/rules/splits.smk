rule make_split:
    input:
        settings=settings_file("split"),
        data=paths.DATASET,
        reference=reference_split_files,
    output:
        split=paths.SPLIT,
    log:
        "results/logs/make_split/{dataset}/split{split}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("make_split")
    resources:
        **rule_resources("make_split"),
    params:
        script=script("make_split.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --data {input.data:q} "
            "--split {wildcards.split} --out {output.split:q} 2>> {log:q}"
        )
