"""Config files: reading, merging, and composing them with ``extends:``.

A config may start from others: ``extends: [config/paper/cifar_lt_base.yaml]`` (paths relative
to the working directory, else to the repository) merges those files first, in order, each
with its own ``extends`` resolved the same way, then the file's own keys over them, key by key
the way Snakemake merges ``--configfile``s (mappings merge, anything else replaces). The
result is validated as one config; an error names the file that set the key (:func:`blame`).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from sdclr.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base`` the way Snakemake merges config files."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's mapping (one-line errors for a missing file or another top level)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise ConfigError(f"config file {path} is not valid YAML{line}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def find_config(name: str | Path) -> Path:
    """A config path relative to the working directory if it exists there, else to the repo."""
    return Path(name) if Path(name).exists() else REPO_ROOT / name


def _leaves(value: Any, prefix: str) -> list[str]:
    """The dotted key paths of a config's values (a list is one value)."""
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{prefix}.{key}")]
    return [prefix]


def expand_extends(
    config: dict[str, Any], source: str, seen: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """``config`` (read from ``source``) with the files it ``extends`` merged under it, and
    ``{dotted key: file that set it}`` for every value."""
    own = dict(config)
    bases = own.pop("extends", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{source}: extends must be a config file or a list of them")
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for base in bases:
        if base in seen or base == source:
            raise ConfigError(f"{source}: extends {base}, which extends it back (a circle)")
        config_of_base, origins_of_base = expand_extends(
            read_yaml(find_config(base)), base, (*seen, source)
        )
        merged = deep_merge(merged, config_of_base)
        origins.update(origins_of_base)
    for leaf in (leaf for key, value in own.items() for leaf in _leaves(value, key)):
        origins = {k: v for k, v in origins.items() if not k.startswith(f"{leaf}.")}
        origins[leaf] = source
    return deep_merge(merged, own), origins


def load_raw_config(*paths: str | Path) -> dict[str, Any]:
    """Read and merge YAML config files (later files override earlier ones, as Snakemake's
    ``--configfile``), each with what it ``extends``: the user config, not yet validated."""
    config: dict[str, Any] = {}
    for path in paths:
        expanded, _ = expand_extends(read_yaml(path), str(path))
        config = deep_merge(config, expanded)
    return config


def blame(message: str, origins: dict[str, str], top: str) -> str:
    """``message`` with each ``key.path: ...`` line naming the file that set the key when a
    file it extends did (not ``top``, the file the user named)."""

    def annotate(line: str) -> str:
        match = re.match(r"^(\s*)([\w.\[\]-]+):", line)
        if not match:
            return line
        origin = _origin(match.group(2), origins)
        return f"{line} (set in {origin})" if origin and origin != top else line

    return "\n".join(annotate(line) for line in message.split("\n"))


def _origin(key: str, origins: dict[str, str]) -> str | None:
    """The file that set ``key``: its own or its nearest parent's, else the one file that set
    everything under it (a mapping whose keys are checked, e.g. ``methods``' names)."""
    inside = {file for leaf, file in origins.items() if leaf.startswith(f"{key}.")}
    while key and key not in origins:
        key = key.rpartition(".")[0]
    if key in origins:
        return origins[key]
    return inside.pop() if len(inside) == 1 else None
