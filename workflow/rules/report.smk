# Aggregation only reads evaluation records: `snakemake tables figures` (or `--forcerun
# make_tables make_figures`) regenerates every table and figure without any training.


rule make_tables:
    input:
        evals=lambda w: eval_files(w.probe),
    output:
        md=report(
            "results/tables/{probe}.md", category="Tables", caption="../report/table.rst"
        ),
        csv="results/tables/{probe}.csv",
        tex="results/tables/{probe}.tex",
        json="results/tables/{probe}.json",
    params:
        script=script("make_tables.py"),
        order=row_order(),
        labels=display_labels(),
    log:
        "results/logs/make_tables/{probe}.log",
    conda:
        "../../environment.yml"
    shell:
        "python {params.script:q} --probe {wildcards.probe} --evals {input.evals:q} "
        "--md {output.md:q} --csv {output.csv:q} --tex {output.tex:q} --json {output.json:q} "
        "--order {params.order:q} --labels {params.labels:q} 2> {log:q}"


rule make_figures:
    input:
        evals=paths.all_eval_files(config),
        splits=split_files(),
    output:
        group_accuracy=report(
            FIGURES["group_accuracy"], category="Figures", caption="../report/figures.rst"
        ),
        class_profile=report(
            FIGURES["class_profile"], category="Figures", caption="../report/figures.rst"
        ),
        accuracy_vs_frequency=report(
            FIGURES["accuracy_vs_frequency"], category="Figures", caption="../report/figures.rst"
        ),
    params:
        script=script("make_figures.py"),
        rules=group_rules(),
        labels=display_labels(),
    log:
        "results/logs/make_figures.log",
    conda:
        "../../environment.yml"
    shell:
        "python {params.script:q} --evals {input.evals:q} --splits {input.splits:q} "
        "--group-accuracy {output.group_accuracy:q} --class-profile {output.class_profile:q} "
        "--accuracy-vs-frequency {output.accuracy_vs_frequency:q} "
        "--group-rules {params.rules:q} --labels {params.labels:q} 2> {log:q}"


rule tables:
    input:
        [TABLE.format(probe=p, ext=e) for p in PROBES for e in TABLE_FORMATS],
        COMPARISON.values(),


rule figures:
    input:
        list(FIGURES.values()),


rule compare_with_paper:
    input:
        evals=paths.all_eval_files(config),
        reported=REPORTED,
    output:
        linear_md=report(
            COMPARISON["linear_md"],
            category="Paper comparison",
            caption="../report/comparison.rst",
        ),
        linear_csv=COMPARISON["linear_csv"],
        fewshot_md=report(
            COMPARISON["fewshot_md"],
            category="Paper comparison",
            caption="../report/comparison.rst",
        ),
        fewshot_csv=COMPARISON["fewshot_csv"],
        figure=report(
            COMPARISON["figure"],
            category="Paper comparison",
            caption="../report/comparison.rst",
        ),
    params:
        script=script("compare_with_paper.py"),
        paper_names=paper_names(),
        labels=display_labels(),
    log:
        "results/logs/compare_with_paper.log",
    conda:
        "../../environment.yml"
    shell:
        "python {params.script:q} --evals {input.evals:q} --reported {input.reported:q} "
        "--paper-names {params.paper_names:q} --linear-md {output.linear_md:q} "
        "--linear-csv {output.linear_csv:q} --fewshot-md {output.fewshot_md:q} "
        "--fewshot-csv {output.fewshot_csv:q} --figure {output.figure:q} "
        "--labels {params.labels:q} 2> {log:q}"
