"""The config's checks beyond its schema's types: every number finite, the one-line error of
the first failure (naming the key, the value and what is allowed), and what only the code
knows (registered methods and extensions and how they compose, each probe's, analysis' and
source's settings, resources against GPUs, a batch that fits its pretraining set).
``sdclr.pipeline.config`` runs them when it loads a config."""

from __future__ import annotations

import math
from typing import Any

from sdclr.analyses import DEFAULT_ANALYSES, get_analysis
from sdclr.data.sources import get_source
from sdclr.data.splits import LongTailConfig, planned_sizes
from sdclr.errors import ConfigError
from sdclr.methods import EXTENSIONS, METHODS, create_method
from sdclr.methods.difficult_removal import merge_removal_methods
from sdclr.models import ModelConfig
from sdclr.pipeline.resources import check_gpus, load_resources
from sdclr.pipeline.schema import _sections, config_schema
from sdclr.probes import DEFAULT_PROBES, PROBES
from sdclr.settings import Validator, error_line, load
from sdclr.training.config import PretrainConfig


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
    check_semantics(with_removal_methods(config))


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


def check_semantics(config: dict[str, Any]) -> None:
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
            model = load(ModelConfig, dataset.get("model"), "model")
            for name in extensions:  # what must fit each dataset's network
                extension = EXTENSIONS[name]
                settings = load(extension.Settings, extensions[name], f"{where}.{name}")
                extension.check_model(settings, model, f"{where}.{name}")


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


def method_pretrain(dataset_entry: dict[str, Any], method_entry: dict[str, Any]) -> dict[str, Any]:
    """The dataset's ``pretrain`` settings with the method's own ``pretrain`` overrides (e.g.
    BCL's weight decay) on top."""
    return {**dataset_entry["pretrain"], **(method_entry.get("pretrain") or {})}


def with_removal_methods(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its ``removal_methods`` merged into ``methods``."""
    return merge_removal_methods(config)
