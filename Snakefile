# The SDCLR pipeline: long-tail splits -> pretraining -> linear / few-shot probes -> tables.
# The stages are declared once, in sdclr/pipeline/dag.py; dvc.yaml is made from the same table.
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
include: "workflow/rules/stages.smk"
include: "workflow/rules/targets.smk"


onsuccess:
    record_in_dvc()
