"""The pipeline's configuration: loading, validation, and per-job settings.

One config drives both the Snakefile and dvc.yaml. ``validate_config`` checks it against
``workflow/schemas/config.schema.yaml`` (unknown keys, wrong types) and then against the code
(registered methods, their hyperparameters), raising ``ConfigError`` with the offending key's
path. ``normalize_config`` turns the user's experiment grid into per-dataset entries;
``job_settings`` and ``report_settings`` cut out what one job needs from that form. That is the
one way a setting reaches the code: a rule writes it to the job's settings file
(``sdclr.pipeline.paths.SETTINGS``), which is the job's input, so a job reruns exactly when its own
settings change, and a presentation-only change (a label) reruns only the report.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from sdclr.analyses import ANALYSES, DEFAULT_ANALYSES, get_analysis
from sdclr.errors import ConfigError
from sdclr.methods import EXTENSIONS
from sdclr.methods.difficult_removal import removal_settings
from sdclr.pipeline import paths
from sdclr.pipeline.config_checks import method_pretrain, validate_config, with_removal_methods
from sdclr.pipeline.config_files import (
    blame,
    deep_merge,
    expand_extends,
    find_config,
    read_yaml,
)
from sdclr.probes import COMPARED_PROBES, DEFAULT_PROBES, PAPER_PROBES, PROBE_NAMES


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Read and merge YAML config files (each with what it ``extends``; later files override
    earlier ones, as Snakemake's ``--configfile``), validate them, and return the normalised
    config (``normalize_config``); an error names the file that set the key, and a config
    file whose top level is not a mapping is refused by name (``read_yaml``)."""
    config: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in paths:
        expanded, found = expand_extends(read_yaml(path), str(path))
        config = deep_merge(config, expanded)
        origins.update(found)
    try:
        return normalize_config(config)
    except ConfigError as err:
        raise ConfigError(blame(str(err), origins, "")) from None


def normalize_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a user config and turn it into the per-dataset form the pipeline uses.

    A user config is an *experiment*: a grid of ``datasets`` x ``methods`` x ``splits`` x
    ``seeds`` (the lists dvc.yaml's ``matrix`` iterates), or ``experiments:``, a list of
    experiment files whose grids are run together. The normalised form is
    ``{"experiment": name, "datasets": {name: {...the dataset's settings, "methods",
    "splits", "seeds", "data_root", "download", "device"}}, "registry": {...}}``, where the
    registry lists the registered probes, the paper's probes and the analyses in their order
    (what ``sdclr.pipeline.paths`` needs of the registries without importing them).
    """
    if not isinstance(config, dict):
        raise ConfigError(
            "the config must be a mapping of keys to values at the top level, not a "
            f"{type(config).__name__}"
        )
    config, origins = expand_extends(config, "the config")
    try:
        return {**_normalize_grids(config), "registry": _registry()}
    except ConfigError as err:
        raise ConfigError(blame(str(err), origins, "the config")) from None


def _registry() -> dict[str, list[str]]:
    return {
        "probes": list(PROBE_NAMES),
        "paper_probes": list(PAPER_PROBES),
        "compared_probes": list(COMPARED_PROBES),
        "analyses": list(ANALYSES),
    }


def _normalize_grids(config: dict[str, Any]) -> dict[str, Any]:
    if "experiments" not in config:
        validate_config(config)
        return _normalize_experiment(with_removal_methods(config))
    extra = sorted(set(config) - {"experiment", "experiments"})
    if extra:
        raise ConfigError(
            f"a config with 'experiments' lists experiment files only; move {extra} into them"
        )
    if not isinstance(config["experiments"], list) or not config["experiments"]:
        raise ConfigError("experiments: must be a non-empty list of experiment config files")
    datasets: dict[str, Any] = {}
    for name in config["experiments"]:
        experiment, origins = expand_extends(read_yaml(find_config(name)), name)
        if "experiments" in experiment:
            raise ConfigError(f"experiments: {name} is itself a list of experiments")
        try:
            validate_config(experiment)
        except ConfigError as err:
            raise ConfigError(f"in {name}: {blame(str(err), origins, name)}") from None
        normalized = _normalize_experiment(with_removal_methods(experiment))
        for dataset, entry in normalized["datasets"].items():
            if dataset in datasets:
                raise ConfigError(f"experiments: dataset {dataset!r} appears in two experiments")
            datasets[dataset] = entry
    return {"experiment": config.get("experiment", "experiments"), "datasets": datasets}


def _normalize_experiment(config: dict[str, Any]) -> dict[str, Any]:
    shared = {
        "methods": config["methods"],
        "probes": list(config.get("probes", DEFAULT_PROBES)),
        "analyses": list(config.get("analyses", DEFAULT_ANALYSES)),
        "splits": config["splits"],
        "seeds": config["seeds"],
        "data_root": config.get("data_root", "results/data/raw"),
        "download": config.get("download", True),
        "device": config.get("device", "auto"),
        "resources": copy.deepcopy(config.get("resources") or {}),
    }
    datasets = {
        name: {**copy.deepcopy(entry), **copy.deepcopy(shared)}
        for name, entry in config["datasets"].items()
    }
    return {"experiment": config.get("experiment", "experiment"), "datasets": datasets}


def method_spec(config: dict[str, Any], dataset: str, method: str) -> dict[str, Any]:
    """The resolved method entry: name, algorithm, pretrain_set and hyperparameters (its
    display label is presentation and lives in :func:`report_settings`)."""
    entry = config["datasets"][dataset]["methods"][method]
    spec = {
        "name": method,
        "algorithm": entry.get("algorithm", method),
        "pretrain_set": entry.get("pretrain_set", "D_i"),
        "hyperparameters": dict(entry.get("hyperparameters") or {}),
    }
    extensions = {k: dict(v or {}) for k, v in entry.items() if k in EXTENSIONS}
    if extensions:  # only when there are: plain methods keep the settings they always had
        spec["extensions"] = extensions
    if "remove_difficult" in entry:  # a removal run: it pretrains on what its record keeps
        spec["remove_difficult"] = dict(entry["remove_difficult"])
        spec["pretrain_set"] = f"D_i - {entry['remove_difficult']['fraction']:.0%} difficult"
    return spec


def dataset_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """What preparing a dataset depends on: its source and where the raw files are."""
    entry = config["datasets"][dataset]
    return {
        "dataset": dataset,
        "source": dict(entry["source"]),
        "data_root": entry["data_root"],
        "download": entry["download"],
    }


def split_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """What cutting a split depends on."""
    return {"dataset": dataset, "longtail": dict(config["datasets"][dataset]["longtail"])}


def pretrain_settings(config: dict[str, Any], dataset: str, method: str) -> dict[str, Any]:
    """Everything one pretraining job depends on (and nothing else)."""
    entry = config["datasets"][dataset]
    return {
        "dataset": dataset,
        "method": method_spec(config, dataset, method),
        "model": dict(entry.get("model") or {}),
        "augmentation": dict(entry["augmentation"]),
        "pretrain": method_pretrain(entry, entry["methods"][method]),
        "device": entry["device"],
    }


def probe_settings(config: dict[str, Any], dataset: str, probe: str) -> dict[str, Any]:
    """Everything one probe job depends on besides its input files."""
    if probe not in PROBE_NAMES:
        raise ConfigError(f"unknown probe {probe!r}; known probes: {PROBE_NAMES}")
    entry = config["datasets"][dataset]
    return {
        "dataset": dataset,
        "probe": probe,
        f"{probe}_probe": dict(entry.get(f"{probe}_probe") or {}),
        "groups": dict(entry.get("groups") or {"kind": "thirds"}),
        "crop_size": entry["augmentation"]["crop_size"],
        "device": entry["device"],
    }


def features_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """What one model's feature file (``sdclr.pipeline.paths.FEATURES``) depends on besides its
    input files: the crop its probes and analyses see, and the device."""
    entry = config["datasets"][dataset]
    return {
        "dataset": dataset,
        "crop_size": entry["augmentation"]["crop_size"],
        "device": entry["device"],
    }


def analysis_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Everything one analysis job depends on besides its inputs: the analyses it runs, and
    the config sections they read under their config keys (``<name>_analysis``, and others an
    analysis names in ``reads``, e.g. PIE's ``knn_probe``)."""
    entry = config["datasets"][dataset]
    analyses = [get_analysis(name) for name in entry["analyses"]]
    keys = [k for a in analyses for k in ([a.config_key] if a.Settings else []) + list(a.reads)]
    return {
        "dataset": dataset,
        "analyses": list(entry["analyses"]),
        **{key: dict(entry.get(key) or {}) for key in dict.fromkeys(keys)},
        "groups": dict(entry.get("groups") or {"kind": "thirds"}),
        "crop_size": entry["augmentation"]["crop_size"],
        "device": entry["device"],
    }


def job_settings(config: dict[str, Any], dataset: str, job: str) -> dict[str, Any]:
    """The settings file of one job kind: ``job`` is ``dataset``, ``split``,
    ``pretrain/<method>``, ``features``, ``probe/<probe>``, ``analysis``, ``removal/<method>``
    (a removal run's selection) or ``pool/<name>`` (COLT's pool file;
    ``sdclr.pipeline.paths.SETTINGS``)."""
    kind, _, name = job.partition("/")
    if kind == "analysis" and not name:
        return analysis_settings(config, dataset)
    if kind == "features" and not name:
        return features_settings(config, dataset)
    if kind == "dataset" and not name:
        return dataset_settings(config, dataset)
    if kind == "split" and not name:
        return split_settings(config, dataset)
    if kind == "pretrain" and name in config["datasets"][dataset]["methods"]:
        return pretrain_settings(config, dataset, name)
    if kind == "probe" and name:
        return probe_settings(config, dataset, name)
    if kind == "pool" and name in (pools := paths.pool_sources(config, dataset)):  # COLT's
        return {"dataset": dataset, "pool": name, "source": pools[name]}
    if kind == "removal" and "remove_difficult" in config["datasets"][dataset]["methods"].get(
        name, {}
    ):
        return removal_settings(config, dataset, name)
    raise ConfigError(f"no settings for job {job!r} of dataset {dataset!r}")


def labels(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Display names: ``{"datasets": {key: label}, "methods": {key: label}}``."""
    out: dict[str, dict[str, str]] = {"datasets": {}, "methods": {}}
    for name, dataset in config["datasets"].items():
        out["datasets"][name] = dataset.get("label", name)
        for run, method in dataset["methods"].items():
            out["methods"][run] = method.get("label", run)
    return out


def report_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What the tables, figures and paper comparison read: the evaluation records and split
    files to aggregate, and the presentation (labels, row order, group rules, which rows are
    the paper's). Changing a label changes this file alone, so no training or probe reruns."""
    return {
        "evals": {probe: paths.eval_files(config, probe) for probe in paths.probes(config)},
        "tables": {p: paths.TABLE.format(probe=p, ext="json") for p in paths.probes(config)},
        "train_logs": [paths.TRAIN_LOG.format(**run) for run in paths.runs(config)],
        "analyses": paths.analyses(config),
        "analysis_files": paths.analysis_files(config),
        "runs": paths.runs(config),
        "splits": paths.split_files(config),
        "labels": labels(config),
        "row_order": paths.row_order(config),
        "group_rules": paths.group_rules(config),
        "paper_names": paths.paper_names(config),
        "paper_probes": paths.compared_probes(config),
    }
