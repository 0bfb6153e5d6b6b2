# Config validation, path templates, target lists and input functions shared by the rules.

import json
import os
import sys
import shlex
from pathlib import Path

from snakemake.logging import logger

from sdclr import config as sdclr_config
from sdclr import paths
from sdclr import resources as sdclr_resources
from sdclr import joblog
from sdclr.io import write_json

# Validate the user's config and replace it by its per-dataset form (sdclr.config).
try:
    _normalized = sdclr_config.normalize_config(config)
except sdclr_config.ConfigError as err:
    _source = ", ".join(map(str, workflow.overwrite_configfiles or ["config/config.yaml"]))
    print(f"Error in the config ({_source}): {err}", file=sys.stderr)
    sys.exit(1)
config.clear()
config.update(_normalized)


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    method="[A-Za-z0-9_.-]+",
    split=r"\d+",
    seed=r"\d+",
    probe="|".join(paths.PROBE_NAMES),
    analysis="|".join(paths.ANALYSES),
    job="dataset|split|analysis|(pretrain|removal)/[A-Za-z0-9_.-]+|probe/("
    + "|".join(paths.PROBE_NAMES)
    + ")",


def script(name):
    """A stage script's path, next to the Snakefile, so `--directory` can put results elsewhere."""
    return str(Path(workflow.basedir) / "scripts" / name)


def settings_file(job):
    """The input function of a job's settings file; ``job`` may name wildcards, e.g.
    ``pretrain/{method}``."""
    return lambda w: paths.SETTINGS.format(dataset=w.dataset, job=job.format(**w))


def _job_resources(rule, wildcards):
    """The config's resources of ``rule`` (sdclr.resources) for this job's dataset; a job of
    no single dataset (tables, figures) gets the most that any dataset's jobs of it ask."""
    datasets = [wildcards.dataset] if "dataset" in wildcards.keys() else list(config["datasets"])
    jobs = [
        sdclr_resources.load_resources(config["datasets"][name]["resources"])[rule]
        for name in datasets
    ]
    return sdclr_resources.combined(jobs)


def rule_threads(rule):
    """A rule's threads, from its resources in the config."""
    return lambda wildcards: sdclr_resources.threads(_job_resources(rule, wildcards))


def rule_resources(rule):
    """A rule's resources from the config (``resources: **rule_resources("pretrain")``): one
    function per Snakemake resource; one that does not apply to a job evaluates to None."""

    def resource(key):
        return lambda wildcards, attempt: sdclr_resources.scheduler_resources(
            _job_resources(rule, wildcards), attempt
        ).get(key)

    keys = ("mem_mb", "runtime", "gpu", "cpus_per_gpu", "gpu_model", "slurm_partition")
    return {key: resource(key) for key in keys}


def logged(command):
    """A rule's shell command after the attempt line in its log (sdclr/joblog.py)."""
    return joblog.logged(command, script("start_log.sh"))


def final_targets():
    tables = paths.table_files(config)
    return (
        tables
        + list(paths.FIGURES.values())
        + list(paths.COMPARISON.values())
        + list(paths.SUMMARY.values())
        + paths.analysis_report_files(config)
        + paths.removal_figures(config)
    )


def removal_rule(wildcards):
    """A removal run's ``remove_difficult`` settings (None for any other run)."""
    return config["datasets"][wildcards.dataset]["methods"][wildcards.method].get(
        "remove_difficult"
    )


def removal_record(wildcards):
    """The removal record a removal run's pretraining reads (none for other runs)."""
    return [paths.REMOVAL.format(**wildcards)] if removal_rule(wildcards) else []


def removal_option(wildcards):
    """``--removal <record>`` for a removal run's pretraining, else nothing."""
    return " ".join(f"--removal {shlex.quote(f)}" for f in removal_record(wildcards))


def selector_model(wildcards):
    """The selector run's pretrained model of this split and seed."""
    selector = removal_rule(wildcards)["selector"]
    return paths.MODEL.format(**{**wildcards, "method": selector})


def canonical_json(value):
    """Settings as a params string that changes only when a value does, not its key order."""
    return json.dumps(value, sort_keys=True)


def job_settings_json(wildcards):
    return canonical_json(sdclr_config.job_settings(config, wildcards.dataset, wildcards.job))


def write_settings(path, settings_json):
    """Write a job's settings (canonical JSON from params) as the readable settings file."""
    write_json(path, json.loads(settings_json))


def output_options(output, keys):
    """``--<key> <path>`` for each named output (keys with ``_`` spelt ``-``), shell-quoted."""
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(output[key])}" for key in keys)


def reference_split_files(wildcards):
    """The reference split files of this split (none when splits are generated)."""
    files = config["datasets"][wildcards.dataset]["longtail"].get("reference_splits") or {}
    return sorted({path.replace("{split}", wildcards.split) for path in files.values()})


def record_in_dvc():
    """After a successful run of DVC's own config, record the outputs in DVC, once.

    dvc.yaml reads config/config.yaml, so runs of another --configfile are not recorded.
    SDCLR_DVC_RECORD=0 turns recording off.
    """
    if os.environ.get("SDCLR_DVC_RECORD", "1") == "0":
        return
    if workflow.overwrite_configfiles:
        logger.info("DVC: not recording (dvc.yaml tracks config/config.yaml, not --configfile)")
        return
    if not Path(".dvc").is_dir():
        return
    shell(f"python {shlex.quote(script('dvc_record.py'))}")
