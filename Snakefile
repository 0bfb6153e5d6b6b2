# The SDCLR pipeline: long-tail splits -> pretraining -> linear / few-shot probes -> tables.
# `snakemake` runs config/config.yaml (the embedded Fashion-MNIST-LT demo);
# `--configfile config/paper/<experiment>.yaml` runs that experiment instead (it replaces the
# default rather than being merged into it; several --configfile's are merged with each other).

from snakemake.utils import min_version

min_version("8.0")


report: "workflow/report/workflow.rst"


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


rule all:
    default_target: True
    input:
        final_targets(),


include: "workflow/rules/settings.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/removal.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


onsuccess:
    record_in_dvc()
