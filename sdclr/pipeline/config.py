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
import math
from pathlib import Path
from typing import Any

from sdclr.analyses import ANALYSES, DEFAULT_ANALYSES, get_analysis
from sdclr.data.sources import get_source
from sdclr.data.splits import LongTailConfig, planned_sizes
from sdclr.errors import ConfigError
from sdclr.methods import EXTENSIONS, METHODS, create_method
from sdclr.methods.difficult_removal import merge_removal_methods, removal_settings
from sdclr.pipeline import paths
from sdclr.pipeline.config_files import (
    blame,
    deep_merge,
    expand_extends,
    find_config,
    read_yaml,
)
from sdclr.pipeline.resources import check_gpus, load_resources
from sdclr.pipeline.schema import _sections, config_schema
from sdclr.probes import COMPARED_PROBES, DEFAULT_PROBES, PAPER_PROBES, PROBE_NAMES, PROBES
from sdclr.settings import Validator, error_line, load
from sdclr.training.config import PretrainConfig


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
        return _normalize_experiment(_merged(config))
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
        normalized = _normalize_experiment(_merged(experiment))
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


def _key_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def validate_config(config: dict[str, Any]) -> None:
    """Raise ``ConfigError`` when ``config`` is not a valid experiment config: one line with
    the key, the value and what is allowed (the first error, by key path, when there are
    several). The schema (``workflow/schemas/config.schema.yaml``) checks every declared
    setting; :func:`_first_non_finite` any other number; the code's own checks follow."""
    validator = Validator(config_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        where = ".".join(map(str, errors[0].absolute_path))
        raise ConfigError(error_line(where, errors[0]) + more)
    non_finite = _first_non_finite(config, ())
    if non_finite is not None:
        where, value = non_finite
        raise ConfigError(f"{_key_path(where)}: {value} is not a finite number")
    _check_semantics(_merged(config))


def _first_non_finite(value: Any, where: tuple[Any, ...]) -> tuple[tuple[Any, ...], float] | None:
    """The key path and value of the first NaN or ±inf anywhere in ``value`` that the schema
    does not type, or None. A method's ``hyperparameters`` are left to its class's schema
    (``sdclr.methods.create_method``, below), whose message says what is allowed."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    if isinstance(value, dict | list):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            if key == "hyperparameters":
                continue
            if (found := _first_non_finite(item, (*where, key))) is not None:
                return found
    return None


def _merged(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its ``removal_methods`` merged into ``methods``."""
    return merge_removal_methods(config)


def _check_semantics(config: dict[str, Any]) -> None:
    for name, dataset in config["datasets"].items():
        for section, cls in _sections().items():  # what the schema cannot say (low <= high)
            values = {k: v for k, v in dataset[section].items() if k != "reference_splits"}
            load(cls, values, f"datasets.{name}.{section}")
        for probe in config.get("probes", DEFAULT_PROBES):  # each probe's settings, if any
            if PROBES[probe].Settings is not None:
                key = f"{probe}_probe"
                load(PROBES[probe].Settings, dataset.get(key), f"datasets.{name}.{key}")
        for analysis in map(get_analysis, config.get("analyses", DEFAULT_ANALYSES)):
            if analysis.Settings is not None:  # each analysis's settings, if any
                key = analysis.config_key
                load(analysis.Settings, dataset.get(key), f"datasets.{name}.{key}")
        source = dataset["source"]
        get_source(source["name"]).settings(source, f"datasets.{name}.source")
        rule = dataset.get("groups", {})
        if rule.get("kind") == "thresholds" and not {"many_above", "few_below"} <= set(rule):
            raise ConfigError(f"datasets.{name}.groups: thresholds need many_above and few_below")
    for name, dataset in config["datasets"].items():
        _check_batch_fits(name, dataset, config["methods"])
    _check_resources(config)
    for analysis in map(get_analysis, config.get("analyses", DEFAULT_ANALYSES)):
        analysis.check(config)  # what it composes with
    for run, method in config["methods"].items():
        where = f"methods.{run}"
        algorithm = method.get("algorithm", run)
        if algorithm not in METHODS:
            raise ConfigError(
                f"{where}: unknown method {algorithm!r}; known methods: "
                f"{', '.join(sorted(METHODS))} (set 'algorithm' to one of them, or add a "
                "module in sdclr/methods/)"
            )
        extensions = {k: method[k] for k in EXTENSIONS if k in method}
        create_method(
            algorithm, method.get("hyperparameters"), f"{where}.hyperparameters", extensions
        )
        for name in extensions:  # each extension's rules about the entry that names it
            EXTENSIONS[name].check_entry(method, where)
        for dataset in config["datasets"].values():
            load(PretrainConfig, method_pretrain(dataset, method), f"{where}.pretrain")


def _check_resources(config: dict[str, Any]) -> None:
    """The ``resources`` section (defaults filled in) and its GPUs against ``pretrain.gpus``."""
    resources = load_resources(config.get("resources"))
    for dataset in config["datasets"].values():
        gpus = {
            run: method_pretrain(dataset, method).get("gpus", 1)
            for run, method in config["methods"].items()
        }
        check_gpus(resources, gpus)


def _check_batch_fits(name: str, dataset: dict[str, Any], methods: dict[str, Any]) -> None:
    """``pretrain.batch_size`` must not exceed any method's pretraining set, where its size is
    known from the config (a generated split of a built-in source); other datasets are checked
    when their pretraining job starts (``sdclr.training.loop``)."""
    longtail = dict(dataset["longtail"])
    geometry = get_source(dataset["source"]["name"]).geometry
    if geometry is None or longtail.pop("reference_splits", None):
        return
    sizes = planned_sizes(load(LongTailConfig, longtail, "longtail"), *geometry)
    for run, method in methods.items():
        subset = method.get("pretrain_set", "D_i")
        batch = method_pretrain(dataset, method)["batch_size"]
        if batch > sizes[subset]:
            raise ConfigError(
                f"datasets.{name}.pretrain.batch_size: {batch} is larger than the "
                f"{sizes[subset]} images of {subset} that method {run!r} pretrains on; set it "
                f"to at most {sizes[subset]} (a batch never spans epochs)"
            )


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


def method_pretrain(dataset_entry: dict[str, Any], method_entry: dict[str, Any]) -> dict[str, Any]:
    """The dataset's ``pretrain`` settings with the method's own ``pretrain`` overrides (e.g.
    BCL's weight decay) on top."""
    return {**dataset_entry["pretrain"], **(method_entry.get("pretrain") or {})}


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
    ``pretrain/<method>``, ``probe/<probe>``, ``analysis``, ``removal/<method>`` (a removal
    run's selection) or ``pool/<name>`` (COLT's pool file; ``sdclr.pipeline.paths.SETTINGS``)."""
    kind, _, name = job.partition("/")
    if kind == "analysis" and not name:
        return analysis_settings(config, dataset)
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
