rule prepare_dataset:
    input:
        settings=settings_file("dataset"),
    output:
        data=paths.DATASET,
        summary=paths.DATASET_SUMMARY,
    params:
        script=script("prepare_dataset.py"),
    threads: rule_threads("prepare_dataset")
    resources:
        **rule_resources("prepare_dataset"),
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} "
            "--out {output.data:q} --summary {output.summary:q} 2>> {log:q}"
        )
