# Generic over methods: the method class and its hyperparameters come from the job's settings
# file. The checkpoint resume.pt in the run directory is not an output, so a failed or
# requeued job keeps it and the next attempt resumes from it.


rule pretrain:
    input:
        settings=settings_file("pretrain/{method}"),
        data=paths.DATASET,
        split=paths.SPLIT,
        removal=removal_record,
    output:
        model=paths.MODEL,
        train_log=paths.TRAIN_LOG,
    log:
        "results/logs/pretrain/{dataset}/{method}/split{split}/seed{seed}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("pretrain")
    resources:
        **rule_resources("pretrain"),
    params:
        script=script("pretrain.py"),
        run_dir=paths.RUN_DIR,
        removal=removal_option,
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --data {input.data:q} "
            "--split {input.split:q} --seed {wildcards.seed} --out-dir {params.run_dir:q} "
            "--threads {threads} {params.removal} 2>> {log:q}"
        )
