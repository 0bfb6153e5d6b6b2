"""Stage select_difficult: a removal run's difficult examples, scored with its selector's
encoder (``sdclr.methods.difficult_removal``), as a record a person can open."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from sdclr.device import describe_device, float32_arithmetic
from sdclr.io import write_json
from sdclr.methods.difficult_removal import (
    RemovalSettings,
    difficulty_scores,
    removal_record,
    select_difficult,
)
from sdclr.pipeline.stages.common import job_inputs
from sdclr.probes.features import center_crop, extract_features, load_backbone
from sdclr.provenance import provenance
from sdclr.settings import load

log = logging.getLogger(__name__)


def select_difficult_stage(
    data: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    settings: dict[str, Any],
    out: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Score D_i with the selector's features, pick the difficult examples and write the
    removal record (``sdclr.methods.difficult_removal``)."""
    dataset, split, device = job_inputs(data, split_path, settings, threads)
    rule = load(RemovalSettings, settings["remove"], f"removal_methods.{settings['method']}")
    backbone, _ = load_backbone(model_path)
    d_i = torch.as_tensor(split["indices"]["D_i"], dtype=torch.long)
    images = center_crop(dataset.train_images[d_i], settings["crop_size"])
    features = extract_features(backbone.to(device), images, device)
    scores = difficulty_scores(features, rule.pos_high, rule.pos_low)
    removed = select_difficult(scores, rule.fraction)
    record = removal_record(split, dataset.train_labels.numpy(), removed, settings)
    record["provenance"] = provenance(describe_device(device), float32_arithmetic(device))
    write_json(out, record)
    log.info("%s: removed %d of %d D_i images", settings["method"], len(removed), len(d_i))
    return record
