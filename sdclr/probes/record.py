"""Run one probe of one pretrained model and build its evaluation record."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from sdclr.device import set_fp32_arithmetic
from sdclr.groups import class_groups, group_summary
from sdclr.probes.base import ProbeInputs, get_probe
from sdclr.probes.feature_file import read_features
from sdclr.probes.features import load_backbone

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
    set_fp32_arithmetic(conv_tf32=False, matmul_tf32=False)  # probes: IEEE fp32, as the reference
    backbone, meta = load_backbone(model_path)
    backbone.to(device)
    crop = settings.get("crop_size") or dataset.train_images.shape[-1]
    stored = None if features is None else read_features(features, split, crop)
    inputs = ProbeInputs(backbone, dataset, split, crop, seed, device, progress, stored)
    result = probe.evaluate(inputs, settings)
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
