# Generic over methods: the method class and its hyperparameters come from the config.
# The checkpoint resume.pt in the run directory is not an output, so a failed or requeued
# job keeps it and the next attempt resumes from it.


rule pretrain:
    input:
        data=DATASET,
        split=SPLIT,
    output:
        model=MODEL,
        train_log=TRAIN_LOG,
    params:
        script=script("pretrain.py"),
        settings=pretrain_settings_json,
        run_dir=RUN_DIR,
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "results/logs/pretrain/{dataset}/{method}/split{split}/seed{seed}.log",
    conda:
        "../../environment.yml"
    shell:
        "python {params.script:q} --settings {params.settings:q} --data {input.data:q} "
        "--split {input.split:q} --seed {wildcards.seed} --out-dir {params.run_dir:q} "
        "--threads {threads} 2> {log:q}"
