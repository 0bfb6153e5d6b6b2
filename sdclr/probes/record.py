"""Run one probe of one pretrained model and build its evaluation record."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from sdclr.groups import class_groups, group_summary
from sdclr.probes.base import get_probe
from sdclr.probes.model_job import open_model_job

log = logging.getLogger(__name__)


def _pool_note(split: dict[str, Any], subset: str) -> dict[str, str]:
    """What a list-file split's probe pool is (``probe_train_note``), for the table header."""
    if subset == "train" and "probe_pool" in split:
        return {"probe_train_note": split["probe_pool"]}
    return {}


def run_probe(
    model_path: str | Path,
    dataset: Any,
    split: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    device: torch.device,
    progress: bool = True,
    features: str | Path | None = None,
) -> dict[str, Any]:
    """Run the ``settings["probe"]`` probe (one of :data:`PROBES`); return the evaluation record.

    ``dataset`` is an ``ImageDataset`` (uint8 tensors), ``split`` a split record, ``features``
    the model's feature file (``sdclr.probes.feature_file``; None: computed where needed).
    Accuracies are percentages; groups come from the split's ``D_i`` counts with
    ``settings["groups"]``.
    """
    probe = get_probe(settings["probe"])
    job = open_model_job(model_path, dataset, split, settings, seed, device, progress, features)
    meta = job.meta
    result = probe.evaluate(job.inputs, settings)
    per_class = result.pop("per_class_accuracy")
    groups = class_groups(split["counts"]["D_i"], settings["groups"])
    summary = group_summary(per_class, groups)
    log.info("%s probe: test %s", probe.name, ", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    history = result.pop("history", None)
    return {
        "dataset": settings["dataset"],
        "method": meta["method"]["name"],
        "algorithm": meta["algorithm"],
        "pretrain_set": meta["method"].get("pretrain_set", "D_i"),
        "split": split["split"],
        "seed": seed,
        "probe": probe.name,
        "title": probe.title_of(probe.settings(settings)),
        "probe_train_size": len(split["indices"][probe.train_subset]),
        **_pool_note(split, probe.train_subset),
        **result,
        "summary": summary,
        "per_class_accuracy": [float(a) for a in per_class],
        "train_counts": list(split["counts"]["D_i"]),
        "groups": groups,
        **({"history": history} if history is not None else {}),
    }
