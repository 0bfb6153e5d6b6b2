rule prepare_dataset:
    input:
        settings=settings_file("dataset"),
    output:
        data=paths.DATASET,
        summary=paths.DATASET_SUMMARY,
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("prepare_dataset")
    resources:
        **rule_resources("prepare_dataset"),
    params:
        script=script("prepare_dataset.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} "
            "--out {output.data:q} --summary {output.summary:q} 2>> {log:q}"
        )
