# Removing difficult examples (arXiv 2501.01317) as a stage of its own: a removal run's
# selection scores D_i with its selector's pretrained encoder (same split and seed) and writes
# a record a person can open (which samples, from which classes, with the D_i counts); the
# run's pretraining (rule pretrain) reads it and trains on what is kept. Generic over
# datasets, splits and seeds; which runs remove what is in the config's removal_methods.


rule select_difficult:
    input:
        settings=settings_file("removal/{method}"),
        data=paths.DATASET,
        split=paths.SPLIT,
        model=selector_model,
    output:
        record=paths.REMOVAL,
    log:
        "results/logs/removal/{dataset}/{method}/split{split}/seed{seed}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("select_difficult")
    resources:
        **rule_resources("select_difficult"),
    params:
        script=script("select_difficult.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --data {input.data:q} "
            "--split {input.split:q} --model {input.model:q} --seed {wildcards.seed} "
            "--out {output.record:q} --threads {threads} 2>> {log:q}"
        )


rule removal_figure:
    input:
        settings=paths.REPORT_SETTINGS,
        records=lambda w: paths.removal_records(config, w.dataset, w.method),
    output:
        report(paths.REMOVAL_FIGURE, category="Figures"),
    log:
        "results/logs/report/removal/{dataset}/{method}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        script=script("make_removal_figure.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --records {input.records:q} "
            "--out {output:q} 2>> {log:q}"
        )
