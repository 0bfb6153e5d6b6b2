"""Every name and number is checked when the config loads, before a job is planned: each
declared setting refuses NaN, ±inf, a wrong type and a value out of its range with one line
naming the key; a name that would leave ``results/`` is refused; a loss that does not move is
said in the training log.

The settings walked here are generated from the declarations: every number, boolean or choice
of the config schema (itself generated from the settings dataclasses), every registered
source's settings and every registered method's hyperparameters. A setting added tomorrow is
walked the day it is added.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdclr.data.sources import SOURCES
from sdclr.errors import ConfigError
from sdclr.methods import METHODS
from sdclr.pipeline import paths
from sdclr.pipeline.config import load_config, normalize_config, validate_config
from sdclr.pipeline.config_checks import _first_non_finite
from sdclr.pipeline.resolve import resolve
from sdclr.pipeline.schema import config_schema
from sdclr.settings import json_schema
from sdclr.training.loop import stuck_loss_warning
from tests.helpers import pretrain, tiny_settings, toy_images

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "config.yaml"
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
BASE = yaml.safe_load(DEMO.read_text())
DATASET, METHOD = next(iter(BASE["datasets"])), next(iter(BASE["methods"]))
VALUE_TYPES = {"number", "integer", "boolean"}


def _kinds(schema: dict[str, Any]) -> set[str]:
    kinds = schema.get("type", [])
    return set(kinds if isinstance(kinds, list) else [kinds])


def _is_value(schema: dict[str, Any]) -> bool:
    """A setting the walk feeds bad values: a number, an integer, a boolean or a choice, or a
    list of them."""
    inner = schema.get("items", {}) if "array" in _kinds(schema) else schema
    return bool(_kinds(inner) & VALUE_TYPES) or "enum" in inner


def _walk(
    schema: dict[str, Any], defs: dict[str, Any], where: tuple, parent: dict | None = None
) -> Iterator[tuple]:
    """``(key path, schema, its mapping's schema)`` of every value setting under ``schema``; a
    mapping of names (datasets, methods) is walked at the demo's first name, a list (removal
    runs) at item 0."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rpartition("/")[2]]
    if "properties" in schema:
        for key, sub in schema["properties"].items():
            yield from _walk(sub, defs, (*where, key), schema)
    elif isinstance(schema.get("additionalProperties"), dict):
        name = {"datasets": DATASET, "methods": METHOD}[where[-1]]
        yield from _walk(schema["additionalProperties"], defs, (*where, name))
    elif "$ref" in schema.get("items", {}):
        yield from _walk(schema["items"], defs, (*where, 0))
    elif _is_value(schema):
        yield where, schema, parent or {}


def _schema_settings() -> list[tuple[tuple, dict[str, Any], dict[str, Any]]]:
    """``(key path, schema, base config)`` of each value setting of the config schema; the
    base has the setting's mapping with its required keys (an extension's, say)."""
    schema = config_schema()
    cases = []
    for where, spec, parent in _walk(schema, schema["$defs"], ()):
        base = copy.deepcopy(BASE)
        target = base
        for key in where[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else target[key]
        for key in parent.get("required", []):
            target.setdefault(key, _valid(parent["properties"][key]))
        cases.append((where, spec, base))
    return cases


def _valid(schema: dict[str, Any]) -> Any:
    """A value ``schema`` accepts (a required field's stand-in)."""
    if "default" in schema:
        return schema["default"]
    if "array" in _kinds(schema):
        return [_valid(schema.get("items", {}))] * max(schema.get("minItems", 1), 1)
    return "x" if "string" in _kinds(schema) or "anyOf" in schema else 1


def _registered_settings() -> list[tuple[tuple, dict[str, Any], dict[str, Any]]]:
    """The settings outside the schema's plain properties: each source's (a case of the
    schema's ``source``) and each method's hyperparameters (checked by the method's class)."""
    cases = []
    for name, source in SOURCES.items():
        spec = json_schema(source.Settings)
        base = copy.deepcopy(BASE)
        base["datasets"][DATASET]["source"] = {
            "name": name,
            **{k: _valid(spec["properties"][k]) for k in spec.get("required", [])},
        }
        for key, sub in spec.get("properties", {}).items():
            if _is_value(sub):
                cases.append((("datasets", DATASET, "source", key), sub, base))
    for name, method in METHODS.items():
        if method.Hyperparameters is None:
            continue
        base = copy.deepcopy(BASE)
        base["methods"][name] = {**base["methods"].get(name, {}), "algorithm": name}
        for key, sub in json_schema(method.Hyperparameters)["properties"].items():
            if _is_value(sub):
                cases.append((("methods", name, "hyperparameters", key), sub, base))
    return cases


def _bad_values(schema: dict[str, Any]) -> list[Any]:
    """NaN, ±inf, a wrong type and the values just outside the declared range."""
    inner = schema.get("items", {}) if "array" in _kinds(schema) else schema
    bad: list[Any] = [math.nan, math.inf, -math.inf, {"a": 1}]
    kinds = _kinds(inner)
    if kinds & {"number", "integer"}:
        bad.append("ten")
        step = 1 if "integer" in kinds else 1e-9
        bad += [inner["minimum"] - step] if "minimum" in inner else []
        bad += [inner["exclusiveMinimum"]] if "exclusiveMinimum" in inner else []
        bad += [inner["maximum"] + max(step, abs(inner["maximum"]))] if "maximum" in inner else []
        bad += [inner["exclusiveMaximum"]] if "exclusiveMaximum" in inner else []
    if "integer" in kinds:
        bad += [True, 2.5, 3.0]
    if "boolean" in kinds:
        bad += [1, "yes"]
    if "enum" in inner:
        bad.append("not-a-choice")
    return bad


def _place(base: dict[str, Any], where: tuple, value: Any, schema: dict[str, Any]) -> dict:
    """``base`` with ``value`` at ``where`` (as item 0 of a list setting, the others valid)."""
    config = copy.deepcopy(base)
    target = config
    for key in where[:-1]:
        if isinstance(target, dict):
            target = target.setdefault(key, {})
        else:
            target = target[key]
    if "array" in _kinds(schema):
        items = list(_valid(schema))
        value = [value, *items[1:]]
    target[where[-1]] = value
    return config


CASES = [
    pytest.param(where, schema, base, value, id=f"{'.'.join(map(str, where))}={value!r}")
    for where, schema, base in _schema_settings() + _registered_settings()
    for value in _bad_values(schema)
]


def test_the_walk_reaches_every_kind_of_setting():
    """The generated cases cover each settings section, the grid's lists and the registries."""
    keys = {".".join(map(str, c.values[0])) for c in CASES}
    for expected in (
        "seeds",
        "splits",
        f"datasets.{DATASET}.longtail.imbalance_ratio",
        f"datasets.{DATASET}.augmentation.scale",
        f"datasets.{DATASET}.pretrain.epochs",
        f"datasets.{DATASET}.linear_probe.lr",
        f"datasets.{DATASET}.source.image_size",
        f"methods.{METHOD}.pretrain.lr",
        "methods.simclr.hyperparameters.temperature",
        "methods.sdclr.hyperparameters.prune_ratio",
        "removal_methods.0.remove.fraction",
        "resources.pretrain.gpus",
    ):
        assert expected in keys, expected
    assert len(CASES) > 500


@pytest.mark.parametrize(("where", "schema", "base", "value"), CASES)
def test_every_setting_refuses_a_bad_value_in_one_line(where, schema, base, value):
    """Each declared setting given NaN, ±inf, a wrong type or an out-of-range value stops the
    config's validation (before any job is planned) with one line naming the key; a number's
    line also says what is allowed."""
    config = _place(base, where, value, schema)
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    key = ".".join(map(str, where))
    assert "\n" not in message, message
    assert message.startswith(key), message
    if isinstance(value, float) and not math.isfinite(value):
        assert f"{value} is not a finite number" in message, message
    if _kinds(schema.get("items", schema)) & {"number", "integer"}:
        assert "allowed: " in message, message


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["datasets"][DATASET]["longtail"].update(imbalance_ratio=math.nan),
            f"datasets.{DATASET}.longtail.imbalance_ratio: nan is not a finite number; "
            "allowed: a finite number >= 1",
        ),
        (
            lambda c: c["methods"]["simclr"]["hyperparameters"].update(temperature=math.inf),
            "methods.simclr.hyperparameters.temperature: inf is not a finite number; "
            "allowed: a finite number > 0",
        ),
        (
            lambda c: c["datasets"][DATASET]["augmentation"].update(scale=[math.nan, 1.0]),
            f"datasets.{DATASET}.augmentation.scale.0: nan is not a finite number; "
            "allowed: a finite number in (0, 1]",
        ),
        (
            lambda c: c.update(seeds=[10**20]),
            "seeds.0: 100000000000000000000 is greater than the maximum of 4294967295; "
            "allowed: an integer in [0, 4294967295]",
        ),
        (
            lambda c: c["datasets"][DATASET]["pretrain"].update(epochs=True),
            f"datasets.{DATASET}.pretrain.epochs: True is not of type 'integer'",
        ),
    ],
)
def test_the_issues_bad_values_are_one_line_config_errors(edit, message):
    """The values of the report (NaN imbalance, infinite temperature, NaN crop scale, a seed
    of 10^20, a boolean epoch count) each give their one line."""
    config = copy.deepcopy(BASE)
    config["methods"].setdefault("simclr", {}).setdefault("hyperparameters", {})
    edit(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_nan_where_the_schema_types_nothing_is_found():
    """The walk behind the schema finds a NaN or ±inf in any part of a config, and leaves a
    method's hyperparameters to the method's own schema."""
    config = {"a": [1, {"b": 2.0, "c": [math.inf]}], "hyperparameters": {"t": math.nan}}
    assert _first_non_finite(config, ()) == (("a", 1, "c", 0), math.inf)
    assert _first_non_finite({"hyperparameters": {"t": math.nan}}, ()) is None


@pytest.mark.parametrize("top", ["just a string\n", "- a\n- list\n", "42\n"])
def test_a_config_file_that_is_not_a_mapping_is_named(tmp_path, top):
    """A config file holding a YAML scalar or list is one line naming the file."""
    path = tmp_path / "bad.yaml"
    path.write_text(top)
    with pytest.raises(ConfigError, match=rf"^config file {path} must hold a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="must be a mapping"):
        normalize_config(yaml.safe_load(top))


def test_the_file_that_set_a_bad_value_is_named(tmp_path):
    """An error in a config file names that file, whether it is the one given or one it
    extends."""
    config = copy.deepcopy(BASE)
    config["datasets"][DATASET]["pretrain"]["lr"] = math.nan
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).endswith(f"(set in {path})"), str(info.value)
    assert "pretrain.lr: nan is not a finite number; allowed: a finite number > 0" in str(
        info.value
    )


HOSTILE = ["..", "../x", "../../etc", "a/b", "/abs", "", "a b", ".hidden", "-rf", "a..b", "x."]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("kind", ["datasets", "methods", "removal_methods"])
def test_a_name_that_is_not_a_path_component_is_refused(name, kind):
    """A dataset, method or removal run named ``..``, with a slash, a space, a leading dot or
    dash, or empty, is refused at load with one line naming where."""
    config = copy.deepcopy(BASE)
    if kind == "removal_methods":
        config["removal_methods"][0]["name"] = name
        where = "removal_methods.0.name"
    else:
        config[kind] = {
            name if k == next(iter(config[kind])) else k: v for k, v in config[kind].items()
        }
        where = kind
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert message.startswith(f"{where}: {name!r} is not a safe name; allowed: a name"), message
    assert "\n" not in message


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_path_of_the_plan_leaves_results():
    """With names at the edge of the rule (dots, dashes, underscores), every path the plan
    holds (each job's settings, inputs and outputs, the report's) stays under ``results/``
    and inside its run's folders."""
    config = yaml.safe_load(TINY.read_text())
    config["datasets"] = {"a.b-c_1": config["datasets"]["fmnist_lt"]}
    simclr, sdclr = config["methods"]["simclr"], config["methods"]["sdclr"]
    config["methods"] = {
        "_x.y": {**simclr, "algorithm": "simclr"},
        "9-z": {**sdclr, "algorithm": "sdclr"},
    }
    plan = resolve(config)
    normalized = plan["config"]
    found = [s for s in _strings(plan) if "results/" in s and "results/data/raw" not in s]
    found += [
        paths.SETTINGS.format(dataset=d, job=j)
        for d in plan["settings"]
        for j in plan["settings"][d]
    ]
    found += [paths.RUN_DIR.format(**run) for run in paths.runs(normalized)]
    assert len(found) > 20
    for path in found:
        assert os.path.normpath(path) == path and path.startswith("results/"), path
    for run in paths.runs(normalized):
        run_dir = paths.RUN_DIR.format(**run)
        assert run_dir.split("/")[2:4] == [run["dataset"], run["method"]], run_dir


def test_a_loss_that_does_not_move_is_said_once_per_streak():
    """Two epochs with the same mean loss give one warning; a third the same says nothing
    more; a loss that moves says nothing."""
    rows = [{"epoch": e + 1, "loss": loss} for e, loss in enumerate([5.0, 4.9, 4.9, 4.9, 4.8])]
    said = [stuck_loss_warning(rows[: n + 1]) for n in range(len(rows))]
    assert said[0] is None and said[1] is None and said[3] is None and said[4] is None
    assert said[2] == (
        "loss 4.9 did not move from epoch 2 to 3: every step gives the same loss, so nothing "
        "is learned (all logits equal? check the method's temperature and pretrain.lr)"
    )


def test_a_huge_temperature_trains_with_a_warning_in_the_log(tmp_path, caplog):
    """With a temperature so large that every logit is equal the loss is the same every epoch
    (log(2N - 1)): the log says so."""
    settings = tiny_settings("simclr", epochs=3)
    settings["method"]["hyperparameters"]["temperature"] = 1e30
    images = toy_images(32)  # two full batches of 16: every step the same size
    with caplog.at_level(logging.WARNING, logger="sdclr.training.loop"):
        pretrain(settings, images, tmp_path, seed=0, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "did not move" in r.getMessage()]
    assert len(warnings) == 1 and "from epoch 1 to 2" in warnings[0], warnings


def _snakemake_dry_run(workdir: Path, config: dict[str, Any]) -> tuple[int, str]:
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "-n", "--configfile", "bad.yaml"],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"},
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.slow
def test_snakemake_stops_a_bad_value_and_a_bad_name_before_planning(tmp_path):
    """Through the real Snakemake (`-n`): the NaN imbalance that used to end in a traceback in
    common.smk and a method named `..` are each one config line, no job planned."""
    config = yaml.safe_load(TINY.read_text())
    config["datasets"]["fmnist_lt"]["longtail"]["imbalance_ratio"] = math.nan
    code, out = _snakemake_dry_run(tmp_path, config)
    assert code != 0 and "Traceback" not in out, out
    assert "longtail.imbalance_ratio: nan is not a finite number; allowed:" in out, out
    config = yaml.safe_load(TINY.read_text())
    config["methods"][".."] = config["methods"].pop("sdclr")
    code, out = _snakemake_dry_run(tmp_path, config)
    assert code != 0 and "Traceback" not in out and "Job stats" not in out, out
    assert "methods: '..' is not a safe name; allowed: a name" in out, out
