# Aggregation only reads evaluation records: `snakemake tables figures` (or `--forcerun
# make_tables make_figures`) regenerates every table and figure without any training. The
# report's settings file lists the records and holds the presentation (labels, row order).


rule make_tables:
    input:
        settings=paths.REPORT_SETTINGS,
        evals=lambda w: paths.eval_files(config, w.probe),
    output:
        md=report("results/tables/{probe}.md", category="Tables", caption="../report/table.rst"),
        csv="results/tables/{probe}.csv",
        tex="results/tables/{probe}.tex",
        json="results/tables/{probe}.json",
        splits_md=report(
            "results/tables/{probe}_splits.md",
            category="Tables per split",
            caption="../report/table.rst",
        ),
        splits_csv="results/tables/{probe}_splits.csv",
    log:
        "results/logs/make_tables/{probe}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("make_tables")
    resources:
        **rule_resources("make_tables"),
    params:
        script=script("make_tables.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --probe {wildcards.probe} "
            "--md {output.md:q} --csv {output.csv:q} --tex {output.tex:q} --json {output.json:q} "
            "--splits-md {output.splits_md:q} --splits-csv {output.splits_csv:q} 2>> {log:q}"
        )


rule make_figures:
    input:
        settings=paths.REPORT_SETTINGS,
        evals=paths.all_eval_files(config),
        splits=paths.split_files(config),
    output:
        group_accuracy=report(
            paths.FIGURES["group_accuracy"],
            category="Figures",
            caption="../report/figures.rst",
        ),
        class_profile=report(
            paths.FIGURES["class_profile"],
            category="Figures",
            caption="../report/figures.rst",
        ),
        accuracy_vs_frequency=report(
            paths.FIGURES["accuracy_vs_frequency"],
            category="Figures",
            caption="../report/figures.rst",
        ),
    log:
        "results/logs/make_figures.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("make_figures")
    resources:
        **rule_resources("make_figures"),
    params:
        script=script("make_figures.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} "
            "--group-accuracy {output.group_accuracy:q} --class-profile {output.class_profile:q} "
            "--accuracy-vs-frequency {output.accuracy_vs_frequency:q} 2>> {log:q}"
        )


rule tables:
    input:
        paths.table_files(config),
        paths.COMPARISON.values(),


rule figures:
    input:
        list(paths.FIGURES.values()),


rule compare_with_paper:
    input:
        settings=paths.REPORT_SETTINGS,
        evals=paths.all_eval_files(config),
        reported=paths.REPORTED,
    output:
        **{
            key: (
                path
                if key.endswith("_csv")
                else report(path, category="Paper comparison", caption="../report/comparison.rst")
            )
            for key, path in paths.COMPARISON.items()
        },
    log:
        "results/logs/compare_with_paper.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("compare_with_paper")
    resources:
        **rule_resources("compare_with_paper"),
    params:
        script=script("compare_with_paper.py"),
        outputs=lambda wildcards, output: output_options(output, paths.COMPARISON),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --reported {input.reported:q} "
            "{params.outputs} 2>> {log:q}"
        )


rule summarize:
    input:
        settings=paths.REPORT_SETTINGS,
        tables=lambda w: [paths.TABLE.format(probe=p, ext="json") for p in paths.probes(config)],
        train_logs=[paths.TRAIN_LOG.format(**run) for run in paths.runs(config)],
    output:
        **paths.SUMMARY,
    log:
        "results/logs/summarize.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("summarize")
    resources:
        **rule_resources("summarize"),
    params:
        script=script("summarize.py"),
        outputs=lambda wildcards, output: output_options(output, paths.SUMMARY),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} {params.outputs} "
            "2>> {log:q}"
        )
