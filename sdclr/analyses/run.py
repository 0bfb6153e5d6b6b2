"""The analysis job of one pretrained model: the analyses the config's ``analyses:`` lists
(``sdclr.analyses``), from one feature pass, as one record.

The dense network's features of the test set and of the balanced train pool are read from the
model's feature file (stage ``features``) or computed once
(:class:`~sdclr.analyses.base.AnalysisContext`), when an analysis first asks for them; an
analysis that changes the model (PIE prunes it) runs after the others. The record
(``sdclr.pipeline.paths.ANALYSIS``) is a JSON file with class names and D_i counts next to
every per-class number, and each analysis's part under its name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from sdclr.analyses import ANALYSES, AnalysisContext, get_analysis
from sdclr.groups import class_groups
from sdclr.probes.model_job import open_model_job

log = logging.getLogger(__name__)


def run_analysis(
    model_path: str | Path,
    dataset: Any,
    split: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    device: torch.device,
    features: str | Path | None = None,
) -> dict[str, Any]:
    """Run the ``settings["analyses"]`` of one pretrained model; return its analysis record.
    ``features``: the model's feature file (``sdclr.probes.feature_file``), whose dense
    features the analyses read (None: computed once)."""
    job = open_model_job(model_path, dataset, split, settings, seed, device, False, features)
    model, method, meta, inputs = job.model, job.method, job.meta, job.inputs
    groups = class_groups(split["counts"]["D_i"], settings["groups"])
    context = AnalysisContext(model, method, meta, str(model_path), inputs, groups, settings)
    record: dict[str, Any] = {
        "dataset": settings["dataset"],
        "method": meta["method"]["name"],
        "algorithm": meta["algorithm"],
        "pretrain_set": meta["method"].get("pretrain_set", "D_i"),
        "split": split["split"],
        "seed": seed,
        "analyses": list(settings["analyses"]),
        "classes": list(split.get("classes") or dataset.classes),
        "train_counts": list(split["counts"]["D_i"]),
        "test_counts": torch.bincount(inputs.test_labels, minlength=inputs.num_classes).tolist(),
        "groups": groups,
    }
    chosen = [get_analysis(name) for name in ANALYSES if name in settings["analyses"]]
    for analysis in sorted(chosen, key=lambda a: a.mutates_model):  # the model changers last
        part = analysis.compute(context)
        if part is None:
            continue
        record[analysis.name] = part
        summary = ", ".join(f"{k} {v:.2f}" for k, v in part["summary"].items())
        log.info("%s: %s", analysis.name, summary)
    return record
