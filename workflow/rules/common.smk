# Config validation, path templates, target lists and input functions shared by the rules.

import json
import os
import sys
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from sdclr import config as sdclr_config
from sdclr import paths

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
    probe="linear|fewshot",


DATASET = paths.DATASET
DATASET_SUMMARY = paths.DATASET_SUMMARY
SPLIT = paths.SPLIT
RUN_DIR = paths.RUN_DIR
MODEL = paths.MODEL
TRAIN_LOG = paths.TRAIN_LOG
EVAL = paths.EVAL
TABLE = paths.TABLE
TABLE_FORMATS = paths.TABLE_FORMATS
FIGURES = paths.FIGURES
COMPARISON = paths.COMPARISON
PROBES = paths.PROBES
REPORTED = str(paths.REPORTED)


def script(name):
    """A stage script's path, next to the Snakefile, so `--directory` can put results elsewhere."""
    return str(Path(workflow.basedir) / "scripts" / name)


def eval_files(probe):
    return paths.eval_files(config, probe)


def split_files():
    return paths.split_files(config)


def final_targets():
    tables = [TABLE.format(probe=p, ext=e) for p in PROBES for e in TABLE_FORMATS]
    return tables + list(FIGURES.values()) + list(COMPARISON.values())


def row_order():
    return json.dumps(paths.row_order(config))


def display_labels():
    return canonical_json(sdclr_config.labels(config))


def group_rules():
    return canonical_json(paths.group_rules(config))


def paper_names():
    return canonical_json(paths.paper_names(config))


def canonical_json(value):
    """Settings as a params string that changes only when a value does, not its key order."""
    return json.dumps(value, sort_keys=True)



def source_json(wildcards):
    return canonical_json(config["datasets"][wildcards.dataset]["source"])


def split_settings_json(wildcards):
    return canonical_json(sdclr_config.split_settings(config, wildcards.dataset))


def reference_split_files(wildcards):
    """The reference split files of this split (none when splits are generated)."""
    files = config["datasets"][wildcards.dataset]["longtail"].get("reference_splits") or {}
    return sorted({path.replace("{split}", wildcards.split) for path in files.values()})


def pretrain_settings_json(wildcards):
    return canonical_json(sdclr_config.pretrain_settings(config, wildcards.dataset, wildcards.method))


def probe_settings_json(wildcards):
    return canonical_json(sdclr_config.probe_settings(config, wildcards.dataset, wildcards.probe))


def data_root(wildcards):
    return config["datasets"][wildcards.dataset]["data_root"]


def download_flag(wildcards):
    return "" if config["datasets"][wildcards.dataset]["download"] else "--no-download"


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
