"""Every job of every stage of a normalised config, as the wildcards it runs with: the jobs
the Snakefile's rules make from the stage table (``sdclr.pipeline.dag``) and the config's
lists (``sdclr.pipeline.paths``), listed without Snakemake (the cost estimate,
``sdclr.pipeline.cost``). The settings rules (local, one per settings file) are not stages.

Pure: no torch.
"""

from __future__ import annotations

from typing import Any

from sdclr.pipeline import dag, paths

Wildcards = dict[str, Any]


def _removal_jobs(config: dict[str, Any]) -> list[Wildcards]:
    """(dataset, method, split, seed) of every removal run."""
    removal = set(paths.removal_runs(config))
    return [run for run in paths.runs(config) if (run["dataset"], run["method"]) in removal]


def _run_jobs(stage: dag.Stage, config: dict[str, Any]) -> list[Wildcards]:
    """The jobs of a stage over runs (pretraining, probes, analyses, selections)."""
    if stage.runs == "removal":
        return _removal_jobs(config)
    datasets = config["datasets"]
    if stage.name == "probe":
        return [
            {**run, "probe": probe}
            for run in paths.runs(config)
            for probe in paths.probes(config)
            if probe in datasets[run["dataset"]]["probes"]
        ]
    if stage.name == "analyse":
        return [run for run in paths.runs(config) if datasets[run["dataset"]]["analyses"]]
    return paths.runs(config)


def stage_jobs(stage: dag.Stage, config: dict[str, Any]) -> list[Wildcards]:
    """The wildcards of every job of ``stage`` for a normalised config (none when the config
    does not need the stage)."""
    if not dag.stage_needed(stage, config):
        return []
    if "seed" in stage.wildcards:
        return _run_jobs(stage, config)
    datasets = config["datasets"]
    if stage.wildcards == ("dataset",):
        return [{"dataset": d} for d in datasets]
    if stage.wildcards == ("dataset", "split"):
        return [
            {"dataset": d, "split": s} for d, entry in datasets.items() for s in entry["splits"]
        ]
    if stage.wildcards == ("dataset", "method"):  # a removal run's figure
        return [{"dataset": d, "method": m} for d, m in paths.removal_runs(config)]
    if stage.wildcards == ("dataset", "pool"):  # COLT's pool files
        return [
            {"dataset": d, "pool": pool} for d in datasets for pool in paths.pool_sources(config, d)
        ]
    if stage.wildcards == ("probe",):
        return [{"probe": p} for p in paths.probes(config)]
    if stage.wildcards == ("analysis",):
        return [{"analysis": a} for a in paths.analyses(config)]
    if not stage.wildcards:
        return [{}]
    raise ValueError(f"stage {stage.name}: no job list for wildcards {stage.wildcards}")


def all_jobs(config: dict[str, Any]) -> dict[str, list[Wildcards]]:
    """Each stage's jobs, in the stage table's order (stages without jobs left out)."""
    jobs = {stage.name: stage_jobs(stage, config) for stage in dag.STAGES}
    return {name: found for name, found in jobs.items() if found}
