# Targets by kind: `snakemake tables figures` (or `--forcerun make_tables make_figures`)
# regenerates every table and figure from the evaluation records without any training.


rule tables:
    input:
        paths.table_files(config),
        paths.comparison_files(config).values(),


rule figures:
    input:
        list(paths.FIGURES.values()),


rule analyses:
    input:
        paths.analysis_report_files(config),
