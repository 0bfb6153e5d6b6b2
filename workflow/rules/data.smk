rule prepare_dataset:
    output:
        data=DATASET,
        summary=DATASET_SUMMARY,
    params:
        script=script("prepare_dataset.py"),
        source=source_json,
        data_root=data_root,
        download=download_flag,
    log:
        "results/logs/prepare_dataset/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "python {params.script:q} --source {params.source:q} "
        "--data-root {params.data_root:q} {params.download} "
        "--out {output.data:q} --summary {output.summary:q} 2> {log:q}"
