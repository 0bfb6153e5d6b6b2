# Config validation, path templates, target lists and input functions shared by the rules.

import json
from pathlib import Path

from snakemake.exceptions import WorkflowError

from sdclr import config as sdclr_config

try:
    sdclr_config.validate_config(config)
except sdclr_config.ConfigError as err:
    raise WorkflowError(str(err)) from None


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    method="[A-Za-z0-9_.-]+",
    split=r"\d+",
    seed=r"\d+",
    probe="linear|fewshot",


DATASET = "results/data/{dataset}/dataset.pt"
DATASET_SUMMARY = "results/data/{dataset}/summary.json"
SPLIT = "results/splits/{dataset}/split{split}.json"
RUN_DIR = "results/checkpoints/{dataset}/{method}/split{split}/seed{seed}"
MODEL = "results/checkpoints/{dataset}/{method}/split{split}/seed{seed}/model.pt"
TRAIN_LOG = "results/checkpoints/{dataset}/{method}/split{split}/seed{seed}/train_log.csv"
EVAL = "results/eval/{dataset}/{method}/split{split}/seed{seed}/{probe}.json"
TABLE = "results/tables/{probe}.{ext}"
FIGURES = {
    "group_accuracy": "results/figures/group_accuracy.png",
    "class_profile": "results/figures/class_profile.png",
    "accuracy_vs_frequency": "results/figures/accuracy_vs_frequency.png",
}
PROBES = sdclr_config.PROBES


def script(name):
    """A stage script's path, next to the Snakefile, so `--directory` can put results elsewhere."""
    return str(Path(workflow.basedir) / "scripts" / name)
TABLE_FORMATS = ("md", "csv", "tex", "json")


def runs():
    """Every (dataset, method, split, seed) of the config, in config order."""
    return [
        {"dataset": d, "method": m, "split": s, "seed": seed}
        for d, entry in config["datasets"].items()
        for m in entry["methods"]
        for s in entry["splits"]
        for seed in config["seeds"]
    ]


def split_files():
    return [
        SPLIT.format(dataset=d, split=s)
        for d, entry in config["datasets"].items()
        for s in entry["splits"]
    ]


def eval_files(probe):
    return [EVAL.format(probe=probe, **run) for run in runs()]


def final_targets():
    tables = [TABLE.format(probe=p, ext=e) for p in PROBES for e in TABLE_FORMATS]
    return tables + list(FIGURES.values())


def row_order():
    return json.dumps(
        [[d, m] for d, entry in config["datasets"].items() for m in entry["methods"]]
    )


def display_labels():
    return canonical_json(sdclr_config.labels(config))


def group_rules():
    return canonical_json(
        {d: entry.get("groups", {"kind": "thirds"}) for d, entry in config["datasets"].items()}
    )


def canonical_json(value):
    """Settings as a params string that changes only when a value does, not its key order."""
    return json.dumps(value, sort_keys=True)


def source_json(wildcards):
    return canonical_json(config["datasets"][wildcards.dataset]["source"])


def split_settings_json(wildcards):
    return canonical_json(sdclr_config.split_settings(config, wildcards.dataset))


def pretrain_settings_json(wildcards):
    return canonical_json(sdclr_config.pretrain_settings(config, wildcards.dataset, wildcards.method))


def probe_settings_json(wildcards):
    settings = sdclr_config.probe_settings(config, wildcards.dataset, wildcards.probe)
    settings["crop_size"] = config["datasets"][wildcards.dataset]["augmentation"]["crop_size"]
    return canonical_json(settings)
