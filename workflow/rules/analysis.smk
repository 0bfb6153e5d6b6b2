# The analyses of each pretrained model (PIE rates of its pruned network, class-mean geometry of
# its test features): one job per model writes one record (the config's `analyses:` list says
# which parts), and one aggregation job per analysis writes its table and figure.


rule analyse:
    input:
        settings=settings_file("analysis"),
        data=paths.DATASET,
        split=paths.SPLIT,
        model=paths.MODEL,
    output:
        record=paths.ANALYSIS,
    log:
        "results/logs/analyse/{dataset}/{method}/split{split}/seed{seed}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("analyse")
    resources:
        **rule_resources("analyse"),
    params:
        script=script("analyse.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --data {input.data:q} "
            "--split {input.split:q} --model {input.model:q} --seed {wildcards.seed} "
            "--out {output.record:q} --threads {threads} 2>> {log:q}"
        )


rule make_analysis_report:
    input:
        settings=paths.REPORT_SETTINGS,
        records=paths.analysis_files(config),
    output:
        md=report(
            paths.ANALYSIS_TABLE.replace("{ext}", "md"),
            category="Analyses",
            caption="../report/analysis.rst",
        ),
        csv=paths.ANALYSIS_TABLE.replace("{ext}", "csv"),
        figure=report(paths.ANALYSIS_FIGURE, category="Analyses", caption="../report/analysis.rst"),
    log:
        "results/logs/make_analysis_report/{analysis}.log",
    conda:
        "../../environment.yml"
    threads: rule_threads("make_analysis_report")
    resources:
        **rule_resources("make_analysis_report"),
    params:
        script=script("make_analysis_report.py"),
    shell:
        logged(
            "python {params.script:q} --settings {input.settings:q} --analysis {wildcards.analysis} "
            "--md {output.md:q} --csv {output.csv:q} --figure {output.figure:q} 2>> {log:q}"
        )


rule analyses:
    input:
        paths.analysis_report_files(config),
