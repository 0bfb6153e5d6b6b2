# The SDCLR pipeline: long-tail splits -> pretraining -> linear / few-shot probes -> tables.
# `snakemake` runs config/config.yaml (the embedded Fashion-MNIST-LT demo) with the default
# profile; `--configfile config/paper/<experiment>.yaml` selects another experiment.

from snakemake.utils import min_version

min_version("8.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


rule all:
    input:
        final_targets(),
    default_target: True


include: "workflow/rules/data.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
