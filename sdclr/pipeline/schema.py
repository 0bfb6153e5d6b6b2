"""The config's JSON schema: its structure here, every setting's type, bounds and doc from the
settings dataclasses (``sdclr.settings``), so each setting is declared once.

``workflow/schemas/config.schema.yaml`` (what the Snakemake catalog and a reader look at) is
this schema written out: ``make schema`` (``python -m sdclr.pipeline.schema``) regenerates it
and a test fails when it is stale. Validation uses :func:`config_schema` itself.
"""

from __future__ import annotations

import copy
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sdclr.analyses import ANALYSES, DEFAULT_ANALYSES
from sdclr.data.augment import AugmentConfig
from sdclr.data.sources import SOURCES
from sdclr.data.splits import LongTailConfig
from sdclr.methods import EXTENSIONS
from sdclr.methods.difficult_removal import RemovalSettings
from sdclr.models import ModelConfig
from sdclr.names import NAME_PATTERN as NAME_PATTERN_TEXT
from sdclr.pipeline.resources import RULE_DEFAULTS, JobResources
from sdclr.probes import DEFAULT_PROBES, PROBE_NAMES, PROBES
from sdclr.settings import INT_MAX, json_schema
from sdclr.training.config import PretrainConfig

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
NAME_PATTERN = {"pattern": NAME_PATTERN_TEXT}  # sdclr/names.py: a name is a path component
#: Seeds go to torch.manual_seed and NumPy: both take any integer in [0, 2**32 - 1].
SEED_MAX = 2**32 - 1
HEADER = (
    "# Generated from the settings dataclasses and sdclr/pipeline/schema.py by `make schema`\n"
    "# (python -m sdclr.pipeline.schema): do not edit by hand.\n"
)


_REFERENCE_SPLITS = {
    "type": "object",
    "description": (
        "The reference implementation's split files instead of generated splits: .npy "
        "index arrays (CIFAR) or .txt image lists (ImageNet-100-LT); {split} in a path "
        "is replaced by the split id."
    ),
    "additionalProperties": False,
    "required": ["train", "validation", "D_i", "D_b", "S_b"],
    "properties": {
        name: {"type": "string"} for name in ("train", "validation", "D_i", "D_b", "S_b")
    },
}

_GROUPS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["thirds", "thresholds"]},
        "many_above": {"type": "integer", "minimum": 0, "maximum": INT_MAX},
        "few_below": {"type": "integer", "minimum": 0, "maximum": INT_MAX},
    },
}

_METHOD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "algorithm": {
            "type": "string",
            "description": "Registered method (sdclr/methods); default: the run's name.",
        },
        "label": {"type": "string", "description": "Row name in tables and figures."},
        "paper": {"type": "string", "description": "Its row name in reported.yaml."},
        "pretrain_set": {"enum": ["D_i", "D_b"]},
        "hyperparameters": {
            "type": "object",
            "description": "Checked against the method class's Hyperparameters.",
        },
    },
}


def _sections() -> dict[str, type]:
    return {
        "longtail": LongTailConfig,
        "model": ModelConfig,
        "augmentation": AugmentConfig,
        "pretrain": PretrainConfig,
    }


DESCRIPTION = (
    "An experiment of the SDCLR pipeline: the grid datasets x methods x splits x seeds, "
    "and the settings of each. One file (or several merged with --configfile) drives "
    "both the Snakefile and dvc.yaml. Every object rejects unknown keys so a typo stops "
    "the run. (A config holding only `experiments: [files]` runs several experiments "
    "together; see sdclr/pipeline/config.py.)"
)


def _top_level() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": DESCRIPTION,
        "type": "object",
        "additionalProperties": False,
        "required": ["datasets", "methods", "splits", "seeds"],
        "properties": {
            "experiment": {"type": "string", "description": "A name for this configuration."},
            "data_root": {
                "type": "string",
                "description": "Where raw datasets are found or downloaded to.",
                "default": "results/data/raw",
            },
            "download": {
                "type": "boolean",
                "description": "Download a dataset with torchvision when it is not on disk.",
                "default": True,
            },
            "device": {"enum": ["auto", "cpu", "cuda"], "default": "auto"},
            **_grid_lists(),
            **_evaluation_lists(),
            "removal_methods": {
                "type": "array",
                "description": (
                    "Pretraining runs on D_i minus its difficult examples, selected by a "
                    "stage of their own with another run's encoder "
                    "(sdclr/methods/difficult_removal.py); "
                    "each is a method entry with a name, a selector and its removal settings."
                ),
                "items": {"$ref": "#/$defs/removal_method"},
                "default": [],
            },
            "resources": {"$ref": "#/$defs/resources"},
            "methods": {
                "type": "object",
                "description": "Pretraining runs by name (the {method} wildcard).",
                "minProperties": 1,
                "propertyNames": NAME_PATTERN,
                "additionalProperties": {"$ref": "#/$defs/method"},
            },
            "datasets": {
                "type": "object",
                "description": "Datasets by name (the {dataset} wildcard) and their settings.",
                "minProperties": 1,
                "propertyNames": NAME_PATTERN,
                "additionalProperties": {"$ref": "#/$defs/dataset"},
            },
        },
    }


def _grid_lists() -> dict[str, Any]:
    """The top-level lists the grid iterates besides methods and datasets: seeds, splits."""
    return {
        "seeds": {
            "type": "array",
            "description": "Training seeds: each (dataset, method, split) once per seed.",
            "items": {"type": "integer", "minimum": 0, "maximum": SEED_MAX},
            "minItems": 1,
            "uniqueItems": True,
        },
        "splits": {
            "type": "array",
            "description": "Long-tail split ids (the {split} wildcard), each a class order.",
            "items": {"type": "integer", "minimum": 1, "maximum": INT_MAX},
            "minItems": 1,
            "uniqueItems": True,
        },
    }


def _evaluation_lists() -> dict[str, Any]:
    """The top-level lists of what every pretrained model gets: probes and analyses."""
    return {
        "probes": {
            "type": "array",
            "description": "The probes every pretrained model gets (default: the paper's).",
            "items": {"enum": list(_probe_names())},
            "minItems": 1,
            "uniqueItems": True,
            "default": list(_default_probes()),
        },
        "analyses": {
            "type": "array",
            "description": "The analyses of every pretrained model, one job per model "
            "(pie: PIE rates of the pruned vs the dense network; geometry: class-mean "
            "cosines; difficult_pairs: which classes a run that tunes difficult pairs "
            "re-weighted, for those runs); [] runs none. Default: pie and geometry.",
            "items": {"enum": list(_analysis_names())},
            "uniqueItems": True,
            "default": list(_default_analyses()),
        },
    }


def _structural_defs() -> dict[str, Any]:
    """The parts of the config that are not a settings dataclass: their shape is checked here
    and by the code that reads them (``sdclr.pipeline.config_checks.check_semantics``)."""
    string = {"type": "string"}
    return {
        "dataset": {
            "type": "object",
            "additionalProperties": False,
            "required": ["source", "longtail", "groups", "model", "pretrain", "augmentation"],
            "properties": {
                "label": {"type": "string", "description": "Name shown in tables and figures."},
                "paper": {
                    "description": "Its table name(s) in config/paper/reported.yaml.",
                    "oneOf": [string, {"type": "array", "items": string, "minItems": 1}],
                },
                "source": {"$ref": "#/$defs/source"},
                "groups": {"$ref": "#/$defs/groups"},
                **{name: {"$ref": f"#/$defs/{name}"} for name in _sections() if name != "probe"},
                **_probe_settings(),
                **_analysis_settings(),
            },
        },
        "source": _source_def(),
        "reference_splits": _REFERENCE_SPLITS,
        "groups": _GROUPS,
        "method": _METHOD,
    }


def _source_def() -> dict[str, Any]:
    """A dataset's ``source``: one of the registered sources (``sdclr.data.sources``), each
    with its own keys."""
    cases = []
    for name, source in SOURCES.items():
        settings = copy.deepcopy(json_schema(source.Settings))
        settings["properties"] = {"name": {"const": name}, **settings.get("properties", {})}
        settings["description"] = (type(source).__doc__ or name).split("\n\n")[0].strip()
        cases.append({"if": {"properties": {"name": {"const": name}}}, "then": settings})
    return {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"enum": list(SOURCES)}},
        "allOf": cases,
    }


def _probe_names() -> tuple[str, ...]:
    return PROBE_NAMES


def _default_probes() -> tuple[str, ...]:
    return DEFAULT_PROBES


def _analysis_names() -> tuple[str, ...]:
    return ANALYSES


def _default_analyses() -> tuple[str, ...]:
    return DEFAULT_ANALYSES


def _analysis_settings() -> dict[str, Any]:
    """``<name>_analysis``: the settings of each registered analysis that has some."""
    return {
        analysis.config_key: copy.deepcopy(json_schema(analysis.Settings))
        for analysis in ANALYSES.values()
        if analysis.Settings is not None
    }


def _probe_settings() -> dict[str, Any]:
    """``<probe>_probe``: the settings of each registered probe that has some (a probe the
    config lists needs its key only when its settings have a required field)."""
    return {
        f"{name}_probe": copy.deepcopy(json_schema(probe.Settings))
        for name, probe in PROBES.items()
        if probe.Settings is not None
    }


def _method_def(pretrain: dict[str, Any]) -> dict[str, Any]:
    """A method entry: its fixed keys, a ``pretrain`` override, and one key per registered
    extension (``sdclr.methods.EXTENSIONS``) with that extension's settings."""
    method = copy.deepcopy(_METHOD)
    override = {k: v for k, v in copy.deepcopy(pretrain).items() if k != "required"}
    override["description"] = "This method's own pretrain settings over the dataset's."
    method["properties"]["pretrain"] = override
    for name, cls in sorted(EXTENSIONS.items()):
        method["properties"][name] = copy.deepcopy(json_schema(cls.Settings))
    return method


def _removal_method_def(method: dict[str, Any]) -> dict[str, Any]:
    """A removal run: a method entry plus its name, its selector and its ``remove`` rule."""
    entry = copy.deepcopy(method)
    entry["required"] = ["name", "selector"]
    entry["properties"] = {
        "name": {
            "type": "string",
            "description": "The run's name (the {method} wildcard).",
            **NAME_PATTERN,
        },
        "selector": {
            "type": "string",
            "description": "The method run whose pretrained encoder selects (same split, seed).",
        },
        "remove": copy.deepcopy(json_schema(RemovalSettings)),
        **entry["properties"],
    }
    return entry


def _resources_def() -> dict[str, Any]:
    """``resources``: per rule, what its jobs ask a scheduler for, with that rule's defaults."""
    properties = {}
    for rule, defaults in RULE_DEFAULTS.items():
        job = copy.deepcopy(json_schema(JobResources))
        for key, value in defaults.items():
            job["properties"][key]["default"] = value
        properties[rule] = job
    return {
        "type": "object",
        "description": (
            "Per rule, what its jobs ask a scheduler (SLURM) for; rules and keys left out "
            "take the defaults (sdclr/pipeline/resources.py). Retries get attempt x the runtime "
            "and "
            "1 + (attempt - 1) / 2 x the memory."
        ),
        "additionalProperties": False,
        "properties": properties,
    }


@cache
def _schema() -> dict[str, Any]:
    schema = _top_level()
    defs = _structural_defs()
    for name, cls in _sections().items():
        defs[name] = copy.deepcopy(json_schema(cls))
    defs["longtail"]["properties"]["reference_splits"] = {"$ref": "#/$defs/reference_splits"}
    defs["method"] = _method_def(defs["pretrain"])
    defs["removal_method"] = _removal_method_def(defs["method"])
    defs["resources"] = _resources_def()
    schema["$defs"] = dict(sorted(defs.items()))
    return schema


def config_schema() -> dict[str, Any]:
    """The whole config schema (a fresh copy)."""
    return copy.deepcopy(_schema())


class _NoAliases(yaml.SafeDumper):
    """Writes repeated parts out in full (no ``&id``/``*id`` anchors) for a human reader."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def schema_text() -> str:
    """The schema as the YAML file ``workflow/schemas/config.schema.yaml`` holds it."""
    return HEADER + yaml.dump(config_schema(), Dumper=_NoAliases, sort_keys=False, width=100)


if __name__ == "__main__":
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
