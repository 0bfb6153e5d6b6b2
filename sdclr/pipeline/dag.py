"""Every stage of the pipeline, declared once: its script, the files it reads and writes, the
wildcards it runs over and what it asks a scheduler for. The Snakefile's rules
(``workflow/rules/stages.smk``) and ``dvc.yaml`` (``sdclr.pipeline.dvc``, ``make dvc``) are
both made from this table, so the two tools run the same stages on the same files with the
same commands.

A stage's command is its script with one ``--<flag> <path>`` per input and output (the flag is
the file's name with ``_`` spelt ``-``, unless the file says otherwise), its ``args`` (a
wildcard or a path made of them), and ``--threads`` where the stage uses torch's threads.

Adding a stage: a module in ``sdclr/pipeline/stages/`` (its function), a script in ``scripts/`` (its
arguments), an entry here, and its config keys; then ``make dvc``. Nothing else.

Pure: no torch (the Snakefile imports it).
"""

from __future__ import annotations

from typing import Any

from sdclr.pipeline import paths

# The stage table's vocabulary; dvc.py and the Snakefile's rules read it as dag.File, ...
from sdclr.pipeline.stage_spec import (  # noqa: F401
    WILDCARD_PIECES,
    Collected,
    File,
    Input,
    RepoFile,
    Stage,
    flag_of,
)


def _settings(job: str) -> File:
    return File(paths.SETTINGS.replace("{job}", job))


def _report_settings(stage: str) -> File:
    return File(paths.REPORT_SETTINGS.replace("{stage}", stage))


def _probe_tables(config: dict[str, Any], _: Any) -> list[str]:
    return [paths.TABLE.format(probe=p, ext="json") for p in paths.probes(config)]


def _train_logs(config: dict[str, Any], _: Any) -> list[str]:
    return [paths.TRAIN_LOG.format(**run) for run in paths.runs(config)]


_MODEL_INPUTS: dict[str, Input] = {"data": File(paths.DATASET), "split": File(paths.SPLIT)}
_RUN = ("dataset", "method", "split", "seed")
_FEATURES: dict[str, Input] = {"model": File(paths.MODEL), "features": File(paths.FEATURES)}
_EVALS = Collected(lambda config, _: paths.all_eval_files(config), "results/eval")
_ANALYSES = Collected(lambda config, _: paths.analysis_files(config), "results/analysis")
_TABLE = ("Tables", "../report/table.rst")
_ANALYSIS = ("Analyses", "../report/analysis.rst")
_FIGURES = ("Figures", "../report/figures.rst")
_COMPARISON = ("Paper comparison", "../report/comparison.rst")


STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare_dataset",
        "prepare_dataset.py",
        "The raw dataset as one uint8 tensor file and a summary.",
        ("dataset",),
        {"settings": _settings("dataset")},
        {"data": File(paths.DATASET, flag="--out"), "summary": File(paths.DATASET_SUMMARY)},
    ),
    Stage(
        "prepare_pool",
        "prepare_pool.py",
        "COLT's out-of-distribution pool file, checked against the dataset, as a tensor file.",
        ("dataset", "pool"),
        {
            "settings": _settings("pool/{pool}"),
            "data": File(paths.DATASET),
            "source": Collected(
                lambda config, w: [paths.pool_sources(config, w.dataset)[w.pool]],
                "{source}",
                flag="--source",
            ),
        },
        {"pool": File(paths.POOL, flag="--out")},
        runs="colt",
    ),
    Stage(
        "make_split",
        "make_split.py",
        "One long-tail split: D_i, D_b, S_b, the probe pools, validation.",
        ("dataset", "split"),
        {"settings": _settings("split"), "data": File(paths.DATASET)},
        {"split": File(paths.SPLIT, flag="--out")},
        args={"split": "{split}"},
    ),
    Stage(
        "select_difficult",
        "select_difficult.py",
        "A removal run's difficult examples, scored with its selector's encoder.",
        _RUN,
        {
            "settings": _settings("removal/{method}"),
            **_MODEL_INPUTS,
            "model": File(paths.MODEL.replace("{method}", "{selector}")),
        },
        {"record": File(paths.REMOVAL, flag="--out")},
        args={"seed": "{seed}"},
        runs="removal",
        threads=True,
        gpu_jobs="selections",
    ),
    Stage(
        "pretrain",
        "pretrain.py",
        "One method on one split and seed; resumes from the run directory's resume.pt.",
        _RUN,
        {
            "settings": _settings("pretrain/{method}"),
            **_MODEL_INPUTS,
            "removal": File(paths.REMOVAL, only="removal"),
            "pool": File(paths.POOL, only="pool"),
        },
        {
            "model": File(paths.MODEL, flag=None),
            "train_log": File(paths.TRAIN_LOG, flag=None),
            "checkpoint": File(f"{paths.RUN_DIR}/{paths.CHECKPOINT_NAME}", flag=None, persist=True),
            "colt_record": File(paths.COLT_RECORD, flag=None, only="colt"),
        },
        args={"seed": "{seed}", "out_dir": paths.RUN_DIR},
        threads=True,
        gpu_jobs="pretrainings",
    ),
    Stage(
        "features",
        "extract_features.py",
        "One pretrained model's dense features of the test set and the probe pool, once.",
        _RUN,
        {"settings": _settings("features"), **_MODEL_INPUTS, "model": File(paths.MODEL)},
        {"features": File(paths.FEATURES, flag="--out")},
        args={"seed": "{seed}"},
        threads=True,
        resources_of="probe",
        group="model",
        gpu_jobs="feature extractions",
    ),
    Stage(
        "probe",
        "evaluate.py",
        "One probe of one pretrained model: per-class and group test accuracy.",
        (*_RUN, "probe"),
        {"settings": _settings("probe/{probe}"), **_MODEL_INPUTS, **_FEATURES},
        {"record": File(paths.EVAL, flag="--out")},
        args={"seed": "{seed}"},
        threads=True,
        group="model",
        gpu_jobs="probes",
    ),
    Stage(
        "analyse",
        "analyse.py",
        "The analyses of one pretrained model (PIE, geometry, difficult pairs): one record.",
        _RUN,
        {"settings": _settings("analysis"), **_MODEL_INPUTS, **_FEATURES},
        {"record": File(paths.ANALYSIS, flag="--out")},
        args={"seed": "{seed}"},
        threads=True,
        group="model",
        gpu_jobs="analyses",
    ),
    Stage(
        "make_tables",
        "make_tables.py",
        "One probe's mean ± std tables over splits, and per split.",
        ("probe",),
        {
            "settings": _report_settings("make_tables"),
            "evals": Collected(lambda config, w: paths.eval_files(config, w.probe), "results/eval"),
        },
        {
            **{
                ext: File(paths.TABLE.replace("{ext}", ext), report=_TABLE if ext == "md" else None)
                for ext in paths.TABLE_FORMATS
            },
            **{
                f"splits_{ext}": File(
                    paths.SPLIT_TABLE.replace("{ext}", ext),
                    report=("Tables per split", _TABLE[1]) if ext == "md" else None,
                )
                for ext in paths.SPLIT_TABLE_FORMATS
            },
        },
        args={"probe": "{probe}"},
        local=True,
    ),
    Stage(
        "make_figures",
        "make_figures.py",
        "Group accuracies, class profiles of the splits, accuracy against frequency.",
        (),
        {
            "settings": _report_settings("make_figures"),
            "evals": _EVALS,
            "splits": Collected(lambda config, _: paths.split_files(config), "results/splits"),
        },
        {name: File(path, dvc="plot", report=_FIGURES) for name, path in paths.FIGURES.items()},
        local=True,
    ),
    Stage(
        "compare_with_paper",
        "compare_with_paper.py",
        "Our mean ± std beside the paper's reported numbers.",
        (),
        {
            "settings": _report_settings("compare_with_paper"),
            "evals": _EVALS,
            "reported": RepoFile(paths.REPORTED_FILE),
        },
        {},  # one table per probe the paper reports: :func:`stage_outputs`
        local=True,
    ),
    Stage(
        "make_analysis_report",
        "make_analysis_report.py",
        "One analysis of every model: its table and figure.",
        ("analysis",),
        {
            "settings": _report_settings("make_analysis_report"),
            "records": Collected(
                lambda config, _: paths.analysis_files(config), "results/analysis"
            ),
        },
        {
            "md": File(paths.ANALYSIS_TABLE.replace("{ext}", "md"), report=_ANALYSIS),
            "csv": File(paths.ANALYSIS_TABLE.replace("{ext}", "csv")),
            "figure": File(paths.ANALYSIS_FIGURE, dvc="plot", report=_ANALYSIS),
        },
        args={"analysis": "{analysis}"},
        local=True,
    ),
    Stage(
        "removal_figure",
        "make_removal_figure.py",
        "Where a removal run's difficult examples come from, by D_i frequency.",
        ("dataset", "method"),
        {
            "settings": _report_settings("removal_figure"),
            "records": Collected(
                lambda config, w: paths.removal_records(config, w.dataset, w.method),
                "results/removal/{dataset}/{method}",
                flag="--records",
            ),
        },
        {"figure": File(paths.REMOVAL_FIGURE, flag="--out", dvc="plot", report=_FIGURES)},
        runs="removal",
        local=True,
    ),
    Stage(
        "summarize",
        "summarize.py",
        "results/metrics.json and the data of dvc.yaml's plots.",
        (),
        {
            "settings": _report_settings("summarize"),
            "tables": Collected(_probe_tables, "results/tables"),
            "train_logs": Collected(_train_logs, "results/checkpoints"),
        },
        {
            "metrics": File(paths.SUMMARY["metrics"], dvc="metric"),
            "loss": File(paths.SUMMARY["loss"]),
            "groups": File(paths.SUMMARY["groups"]),
        },
        local=True,
    ),
)

STAGES_BY_NAME = {stage.name: stage for stage in STAGES}

#: The script of each kind of job settings file (``sdclr.pipeline.paths.SETTINGS``): the code its
#: settings file records.
SETTINGS_SCRIPTS = {
    "dataset": "prepare_dataset.py",
    "split": "make_split.py",
    "pretrain": "pretrain.py",
    "features": "extract_features.py",
    "probe": "evaluate.py",
    "analysis": "analyse.py",
    "removal": "select_difficult.py",
    "pool": "prepare_pool.py",
}
#: The report stages (one settings file each, ``sdclr.pipeline.paths.REPORT_SETTINGS``) and scripts.
REPORT_STAGES = {
    stage.name: stage.script
    for stage in STAGES
    if any(
        isinstance(spec, File) and spec.path.startswith("results/settings/report/")
        for spec in stage.inputs.values()
    )
}


def stage_outputs(stage: Stage, config: dict[str, Any]) -> dict[str, File]:
    """A stage's outputs for a normalised config (the comparison's depend on its registry)."""
    if stage.name != "compare_with_paper":
        return stage.outputs
    return {
        key: File(path, report=None if key.endswith("_csv") else _COMPARISON)
        for key, path in paths.comparison_files(config).items()
    } | {"figure": File(paths.COMPARISON_FIGURE, dvc="plot", report=_COMPARISON)}


def stage_needed(stage: Stage, config: dict[str, Any]) -> bool:
    """Whether a normalised config has jobs of ``stage`` (removal stages need removal runs,
    the analyses' need analyses)."""
    if stage.runs == "removal":
        return bool(paths.removal_runs(config))
    if stage.runs == "colt":
        return bool(paths.pool_runs(config))
    if stage.name in ("analyse", "make_analysis_report"):
        return bool(paths.analyses(config))
    return True
