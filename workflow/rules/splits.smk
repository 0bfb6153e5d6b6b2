rule make_split:
    input:
        data=DATASET,
        reference=reference_split_files,
    output:
        split=SPLIT,
    params:
        script=script("make_split.py"),
        settings=split_settings_json,
    log:
        "results/logs/make_split/{dataset}/split{split}.log",
    conda:
        "../../environment.yml"
    shell:
        "python {params.script:q} --settings {params.settings:q} --data {input.data:q} "
        "--split {wildcards.split} --out {output.split:q} 2> {log:q}"
