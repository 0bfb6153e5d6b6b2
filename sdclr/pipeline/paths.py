"""Where every stage writes: the one set of path templates the stages (``sdclr.pipeline.dag``),
and through them the Snakefile and dvc.yaml, and the scripts share.

Pure: no torch, no registry import. What the registries hold (the probes, which of them the
paper reports, the analyses) comes with the normalised config, under ``registry``
(``sdclr.pipeline.resolve``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sdclr.errors import ConfigError
from sdclr.training.run_files import CHECKPOINT_NAME, LOG_NAME, MODEL_NAME

__all__ = ["CHECKPOINT_NAME", "LOG_NAME", "MODEL_NAME"]  # and the templates below

# Each job's resolved settings (``sdclr.pipeline.resolve``), written by the settings rule:
# ``job`` is dataset, split, analysis, features, pretrain/<method>, probe/<probe> or
# removal/<method>;
# each report stage's (its inputs' list, labels, row order) in REPORT_SETTINGS.
SETTINGS_DIR = "results/settings"
SETTINGS = "results/settings/{dataset}/{job}.json"
REPORT_SETTINGS = "results/settings/report/{stage}.json"
DATASET = "results/data/{dataset}/dataset.pt"
DATASET_SUMMARY = "results/data/{dataset}/summary.json"
# COLT's out-of-distribution pool as the config names it (``colt.pool``: a ``.npy`` file),
# checked and written in the dataset's format, one per dataset and pool file (``{pool}``: the
# file's stem), shared by the COLT runs that name it (``sdclr.pipeline.stages.prepare_pool``).
POOL = "results/data/{dataset}/pool/{pool}.pt"
SPLIT = "results/splits/{dataset}/split{split}.json"
RUN_DIR = "results/checkpoints/{dataset}/{method}/split{split}/seed{seed}"
MODEL = f"{RUN_DIR}/{MODEL_NAME}"
TRAIN_LOG = f"{RUN_DIR}/{LOG_NAME}"
# A COLT run's record of its resamplings (``sdclr.methods.colt.RECORD_NAME``, which imports
# torch: a test checks the two names agree), written by its pretraining.
COLT_RECORD = f"{RUN_DIR}/colt_resampling.json"
# A removal run's record of the difficult examples it removes from D_i
# (sdclr.methods.difficult_removal)
# and the figure of where they come from, by class ordered by D_i frequency.
REMOVAL = "results/removal/{dataset}/{method}/split{split}/seed{seed}.json"
REMOVAL_FIGURE = "results/figures/removal/{dataset}/{method}.png"
# Each model's un-augmented dense backbone features of the test set and of the balanced train
# pool (sdclr.probes.feature_file), extracted once and read by its probes and analyses.
FEATURES = "results/features/{dataset}/{method}/split{split}/seed{seed}.pt"
EVAL = "results/eval/{dataset}/{method}/split{split}/seed{seed}/{probe}.json"
TABLE = "results/tables/{probe}.{ext}"
TABLE_FORMATS = ("md", "csv", "tex", "json")
# Per-split tables (the numbers behind each mean ± std), next to the aggregated ones.
SPLIT_TABLE = "results/tables/{probe}_splits.{ext}"
SPLIT_TABLE_FORMATS = ("md", "csv")
# The analyses of each pretrained model (PIE rates, class-mean geometry: one job, one file),
# and their aggregation: a table and a figure per analysis.
ANALYSIS = "results/analysis/{dataset}/{method}/split{split}/seed{seed}.json"
ANALYSIS_TABLE = "results/tables/{analysis}.{ext}"
ANALYSIS_TABLE_FORMATS = ("md", "csv")
ANALYSIS_FIGURE = "results/figures/{analysis}.png"
FIGURES = {
    "group_accuracy": "results/figures/group_accuracy.png",
    "class_profile": "results/figures/class_profile.png",
    "accuracy_vs_frequency": "results/figures/accuracy_vs_frequency.png",
}
COMPARISON_TABLE = "results/tables/{probe}_vs_paper.{ext}"
COMPARISON_FIGURE = "results/figures/paper_comparison.png"
# What `dvc exp show` and `dvc plots show` read (sdclr/reporting/summary.py).
SUMMARY = {
    "metrics": "results/metrics.json",
    "loss": "results/plots/pretrain_loss.csv",
    "groups": "results/plots/group_accuracy.csv",
}  # The paper's reported numbers (data in the repository, not a pipeline output).
REPORTED_FILE = "config/paper/reported.yaml"  # in the repository
REPORTED = Path(__file__).resolve().parents[2] / REPORTED_FILE
OUTSIDE_POOL = "outside_pretraining_set"  # COLT's pool of the demo (sdclr.data.ood_pool)


def registry(config: dict[str, Any], kind: str) -> list[str]:
    """The registered names of ``kind`` (``probes``, ``paper_probes``, ``compared_probes``,
    ``analyses``), in
    registration order, as the normalised config carries them."""
    return list(config["registry"][kind])


def compared_probes(config: dict[str, Any]) -> list[str]:
    """The probes the comparison stage sets beside reported numbers: every probe the SDCLR
    paper reports (an empty table where the config runs none of it) and the other probes with
    reported numbers (BCL's) that the config runs."""
    ran = set(probes(config))
    return [
        p
        for p in registry(config, "compared_probes")
        if p in registry(config, "paper_probes") or p in ran
    ]


def comparison_files(config: dict[str, Any]) -> dict[str, str]:
    """The paper comparison's outputs: ``<probe>_md``, ``<probe>_csv`` of every probe of
    :func:`compared_probes` and ``figure``."""
    files = {
        f"{probe}_{ext}": COMPARISON_TABLE.format(probe=probe, ext=ext)
        for probe in compared_probes(config)
        for ext in ("md", "csv")
    }
    return {**files, "figure": COMPARISON_FIGURE}


def runs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (dataset, method, split, seed) of a normalised config, in config order."""
    return [
        {"dataset": d, "method": m, "split": s, "seed": seed}
        for d, entry in config["datasets"].items()
        for m in entry["methods"]
        for s in entry["splits"]
        for seed in entry["seeds"]
    ]


def probes(config: dict[str, Any]) -> list[str]:
    """The probes a normalised config runs (on some dataset), in the registry's order."""
    named = {p for entry in config["datasets"].values() for p in entry["probes"]}
    return [p for p in registry(config, "probes") if p in named]


def eval_files(config: dict[str, Any], probe: str) -> list[str]:
    """The evaluation records of ``probe`` for every run of a dataset that runs it."""
    return [
        EVAL.format(probe=probe, **run)
        for run in runs(config)
        if probe in config["datasets"][run["dataset"]]["probes"]
    ]


def all_eval_files(config: dict[str, Any]) -> list[str]:
    """The evaluation records of every probe of every run of a normalised config."""
    return [f for probe in probes(config) for f in eval_files(config, probe)]


def table_files(config: dict[str, Any]) -> list[str]:
    """Every table of every probe the config runs (aggregated and per split)."""
    return [
        template.format(probe=probe, ext=ext)
        for probe in probes(config)
        for template, formats in ((TABLE, TABLE_FORMATS), (SPLIT_TABLE, SPLIT_TABLE_FORMATS))
        for ext in formats
    ]


def analyses(config: dict[str, Any]) -> list[str]:
    """The analyses a normalised config runs (on some dataset), in registration order."""
    named = {a for entry in config["datasets"].values() for a in entry["analyses"]}
    return [a for a in registry(config, "analyses") if a in named]


def analysis_files(config: dict[str, Any]) -> list[str]:
    """The analysis record of every run of a dataset that runs an analysis."""
    return [
        ANALYSIS.format(**run)
        for run in runs(config)
        if config["datasets"][run["dataset"]]["analyses"]
    ]


def analysis_outputs(analysis: str) -> dict[str, str]:
    """The aggregated files of one analysis: ``md``, ``csv`` (tables) and ``figure``."""
    files = {
        ext: ANALYSIS_TABLE.format(analysis=analysis, ext=ext) for ext in ANALYSIS_TABLE_FORMATS
    }
    return {**files, "figure": ANALYSIS_FIGURE.format(analysis=analysis)}


def analysis_report_files(config: dict[str, Any]) -> list[str]:
    """Every table and figure of the analyses the config runs."""
    return [path for a in analyses(config) for path in analysis_outputs(a).values()]


def split_files(config: dict[str, Any]) -> list[str]:
    """Every split file of a normalised config."""
    return [
        SPLIT.format(dataset=d, split=s)
        for d, entry in config["datasets"].items()
        for s in entry["splits"]
    ]


def row_order(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(dataset, method) pairs in config order: the row order of the tables."""
    return [(d, m) for d, entry in config["datasets"].items() for m in entry["methods"]]


def group_rules(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each dataset's Many / Medium / Few rule."""
    return {d: dict(entry["groups"]) for d, entry in config["datasets"].items()}


def paper_names(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Which rows are reported ones: ``{dataset: {"names": [reported table, ...], "methods":
    {method: name}}}`` (a dataset's ``paper:`` is one table name or a list of them)."""
    return {
        d: {
            "names": [entry["paper"]] if isinstance(entry["paper"], str) else entry["paper"],
            "methods": {m: v["paper"] for m, v in entry["methods"].items() if "paper" in v},
        }
        for d, entry in config["datasets"].items()
        if "paper" in entry
    }


def removal_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(dataset, method) of every removal run of a normalised config, in config order."""
    return [
        (d, m)
        for d, entry in config["datasets"].items()
        for m, method in entry["methods"].items()
        if "remove_difficult" in method
    ]


def removal_records(config: dict[str, Any], dataset: str, method: str) -> list[str]:
    """The removal records of one removal run, every split and seed."""
    entry = config["datasets"][dataset]
    return [
        REMOVAL.format(dataset=dataset, method=method, split=s, seed=seed)
        for s in entry["splits"]
        for seed in entry["seeds"]
    ]


def removal_figures(config: dict[str, Any]) -> list[str]:
    """The removal figure of every removal run."""
    return [REMOVAL_FIGURE.format(dataset=d, method=m) for d, m in removal_runs(config)]


def pool_name(source: str) -> str:
    """The ``{pool}`` of a pool file: its stem, with what the name rule forbids as ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", Path(source).stem).lstrip("-") or "pool"


def pool_sources(config: dict[str, Any], dataset: str) -> dict[str, str]:
    """``{pool name: file}`` of the pool files the COLT runs of ``dataset`` name (a run whose
    pool is ``outside_pretraining_set`` derives it from its split's D_i in its own job)."""
    sources: dict[str, str] = {}
    for method in config["datasets"][dataset]["methods"].values():
        source = method.get("colt", {}).get("pool", OUTSIDE_POOL)
        if source == OUTSIDE_POOL:
            continue
        name = pool_name(source)
        if sources.setdefault(name, source) != source:
            raise ConfigError(
                f"datasets.{dataset}: COLT pools {sources[name]} and {source} share the name "
                f"{name!r}; rename one file"
            )
    return sources


def pool_of(config: dict[str, Any], dataset: str, method: str) -> str | None:
    """The prepared pool file a COLT run reads (None: not a COLT run with a pool file)."""
    source = config["datasets"][dataset]["methods"][method].get("colt", {}).get("pool")
    if source is None or source == OUTSIDE_POOL:
        return None
    return POOL.format(dataset=dataset, pool=pool_name(source))


def is_colt_run(config: dict[str, Any], dataset: str, method: str) -> bool:
    """Whether a run of a normalised config is a COLT run (it writes ``COLT_RECORD``)."""
    return "colt" in config["datasets"][dataset]["methods"][method]


def pool_runs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(dataset, pool name) of every pool file of a normalised config, in config order."""
    return [(d, name) for d in config["datasets"] for name in pool_sources(config, d)]
