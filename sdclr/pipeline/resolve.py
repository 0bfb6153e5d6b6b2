"""A config resolved into the plan both tools run: the validated, normalised config and every
job's settings file, each with every setting resolved (defaults included), the settings
format, and the code the job runs (``sdclr.pipeline.code``).

A job's settings file is its identity: it changes exactly when something its result depends
on changes -- a value in the config, a default in the code, a source file of its stage, its
method, its extensions or its probe -- and then Snakemake and DVC rerun that job and what
follows it, and nothing else. Presentation (labels, row order) is only in the report stages'
settings, so renaming a method retrains nothing.

This is the one module of ``sdclr.pipeline`` that loads torch (the settings dataclasses live
beside the code they configure). The Snakefile runs it in a separate process and caches its
answer (``sdclr.pipeline.plan``); DVC's settings stage calls :func:`write_settings_files`.

    python -m sdclr.pipeline.resolve --out plan.json < config.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from sdclr.analyses import get_analysis
from sdclr.data.augment import AugmentConfig
from sdclr.data.sources import get_source
from sdclr.data.splits import LongTailConfig
from sdclr.errors import USER_ERRORS
from sdclr.io import write_json
from sdclr.methods import create_method
from sdclr.models import ModelConfig
from sdclr.pipeline import paths
from sdclr.pipeline.code import ROOT, SourceTree
from sdclr.pipeline.config import job_settings, normalize_config, report_settings
from sdclr.pipeline.dag import REPORT_STAGES, SETTINGS_SCRIPTS, STAGES_BY_NAME, stage_needed
from sdclr.probes import PROBES
from sdclr.settings import load
from sdclr.training.config import PretrainConfig

#: The settings files' format: raised when their layout changes, which reruns every job.
SETTINGS_FORMAT = 2


def _plain(value: Any) -> Any:
    """``value`` as JSON has it (tuples as lists), so that a settings file reads back equal."""
    return json.loads(json.dumps(value))


def _resolved(cls: type, values: dict[str, Any] | None, section: str) -> dict[str, Any]:
    """A settings section with every field, defaults included (validated)."""
    return dataclasses.asdict(load(cls, values, section))


def _resolve_pretrain(settings: dict[str, Any]) -> list[str]:
    """Fill a pretraining job's defaults in place; return the modules of its method and
    extensions."""
    spec = settings["method"]
    where = f"methods.{spec['name']}"
    method = create_method(
        spec["algorithm"], spec["hyperparameters"], f"{where}.hyperparameters",
        spec.get("extensions"),
    )  # fmt: skip
    spec["hyperparameters"] = dataclasses.asdict(method.hparams)
    if "extensions" in spec:
        spec["extensions"] = {e.name: dataclasses.asdict(e.settings) for e in method.extensions}
    settings["model"] = _resolved(ModelConfig, settings["model"], f"{where}.model")
    settings["augmentation"] = _resolved(AugmentConfig, settings["augmentation"], "augmentation")
    settings["pretrain"] = _resolved(PretrainConfig, settings["pretrain"], f"{where}.pretrain")
    return [type(method).__module__, *(type(e).__module__ for e in method.extensions)]


def _resolve_split(settings: dict[str, Any]) -> list[str]:
    longtail = dict(settings["longtail"])
    reference = longtail.pop("reference_splits", None)
    settings["longtail"] = _resolved(LongTailConfig, longtail, "longtail")
    if reference:
        settings["longtail"]["reference_splits"] = reference
    return []


def _section_class(key: str) -> tuple[type | None, str]:
    """The settings class of a probe's (``<name>_probe``) or an analysis's
    (``<name>_analysis``) config section, and the module that declares it."""
    name, _, kind = key.rpartition("_")
    part = PROBES[name] if kind == "probe" else get_analysis(name)
    return part.Settings, type(part).__module__


def _resolve_sections(settings: dict[str, Any]) -> list[str]:
    """Fill in every probe's and analysis's section of a job's settings; return the modules of
    those probes and analyses (and of the job's probe)."""
    modules = [type(PROBES[settings["probe"]]).__module__] if "probe" in settings else []
    modules += [type(get_analysis(name)).__module__ for name in settings.get("analyses", [])]
    for key in [k for k in settings if k.endswith(("_probe", "_analysis"))]:
        cls, module = _section_class(key)
        modules.append(module)
        if cls is not None:
            settings[key] = _resolved(cls, settings[key], key)
    return list(dict.fromkeys(modules))


def _resolve_dataset(settings: dict[str, Any]) -> list[str]:
    source = get_source(settings["source"]["name"])
    values = dataclasses.asdict(source.settings(settings["source"]))
    settings["source"] = {"name": source.name, **values}
    return [type(source).__module__]


_RESOLVERS = {
    "dataset": _resolve_dataset,
    "pretrain": _resolve_pretrain,
    "split": _resolve_split,
    "probe": _resolve_sections,
    "analysis": _resolve_sections,
}


def dataset_jobs(config: dict[str, Any], dataset: str) -> list[str]:
    """The settings jobs of one dataset of a normalised config
    (``sdclr.pipeline.paths.SETTINGS``)."""
    entry = config["datasets"][dataset]
    methods = entry["methods"]
    return [
        "dataset",
        "split",
        *(f"pretrain/{m}" for m in methods),
        "features",
        *(f"probe/{p}" for p in entry["probes"]),
        *(["analysis"] if entry["analyses"] else []),
        *(f"removal/{m}" for m, method in methods.items() if "remove_difficult" in method),
        *(f"pool/{name}" for name in paths.pool_sources(config, dataset)),
    ]


def resolve_job(config: dict[str, Any], dataset: str, job: str, tree: SourceTree) -> dict[str, Any]:
    """One job's settings file: its settings with defaults, the format and its code."""
    settings = job_settings(config, dataset, job)
    kind = job.partition("/")[0]
    modules = _RESOLVERS.get(kind, lambda _: [])(settings)
    script = ROOT / "scripts" / SETTINGS_SCRIPTS[kind]
    return {
        "format": SETTINGS_FORMAT,
        **_plain(settings),
        "code": tree.code_map([script, *modules]),
    }


def resolve_report(config: dict[str, Any], stage: str, tree: SourceTree) -> dict[str, Any]:
    """A report stage's settings file: what it aggregates, the presentation, its code: its
    script's, and the modules of the config's probes and analyses, whose titles, columns and
    figures it draws (the registries import them dynamically)."""
    report = report_settings(config)
    script = ROOT / "scripts" / REPORT_STAGES[stage]
    parts = [type(PROBES[p]).__module__ for p in paths.probes(config)]
    parts += [type(get_analysis(a)).__module__ for a in paths.analyses(config)]
    code = tree.code_map([script, *parts])
    return {"format": SETTINGS_FORMAT, **_plain(report), "code": code}


def resolve(raw_config: dict[str, Any]) -> dict[str, Any]:
    """The plan of a user config: ``{"config": normalised config with its ``registry``,
    "settings": {dataset: {job: settings}}, "report": {stage: settings}}``."""
    config = normalize_config(raw_config)
    tree = SourceTree()
    settings = {
        d: {job: resolve_job(config, d, job, tree) for job in dataset_jobs(config, d)}
        for d in config["datasets"]
    }
    report = {
        stage: resolve_report(config, stage, tree)
        for stage in REPORT_STAGES
        if stage_needed(STAGES_BY_NAME[stage], config)
    }
    return {"config": _plain(config), "settings": settings, "report": report}


def write_settings_files(plan: dict[str, Any], root: str | Path = paths.SETTINGS_DIR) -> None:
    """Write every settings file of ``plan`` under ``root`` (DVC's settings stage)."""
    root = Path(root)
    for dataset, jobs in plan["settings"].items():
        for job, settings in jobs.items():
            write_json(root / dataset / f"{job}.json", settings)
    for stage, settings in plan["report"].items():
        write_json(root / "report" / f"{stage}.json", settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the plan (JSON); the config comes on stdin")
    args = parser.parse_args()
    try:
        plan = resolve(json.loads(sys.stdin.read()))
    except USER_ERRORS as err:
        print(str(err).replace("\n", " "), file=sys.stderr)
        raise SystemExit(1) from None
    write_json(args.out, plan)


if __name__ == "__main__":
    main()
