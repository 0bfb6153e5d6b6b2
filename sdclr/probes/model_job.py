"""The start every job that reads one pretrained model shares (its features, probes and
analyses): the arithmetic, the model on its device and the inputs its probes see."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdclr.device import set_fp32_arithmetic
from sdclr.probes.base import ProbeInputs
from sdclr.probes.feature_file import read_features
from sdclr.probes.features import load_model


@dataclass(frozen=True)
class ModelJob:
    """One pretrained model, opened for a job: the whole model on its dense branch, its method
    (resolved hyperparameters), its ``model.pt`` metadata and the inputs of its probes."""

    model: nn.Module
    method: Any
    meta: dict[str, Any]
    inputs: ProbeInputs


def open_model_job(
    model_path: str | Path,
    dataset: Any,
    split: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    device: torch.device,
    progress: bool = False,
    features: str | Path | None = None,
) -> ModelJob:
    """Open the model of ``model_path`` on ``device`` for a features, probe or analysis job.

    CUDA computes float32 in IEEE arithmetic here, as the reference evaluates: PyTorch would
    otherwise run convolutions in TF32, and a dense pass of the features job and a pruned pass
    of an analysis job would not be computed alike. The crop is ``settings["crop_size"]`` (the
    images' own size when unset); ``features`` is the model's feature file
    (``sdclr.probes.feature_file``), checked against the split's pool and the crop, or None
    (the features are computed when first asked for).
    """
    set_fp32_arithmetic(conv_tf32=False, matmul_tf32=False)
    model, method, meta = load_model(model_path)
    model.to(device)
    crop = settings.get("crop_size") or dataset.train_images.shape[-1]
    stored = None if features is None else read_features(features, split, crop)
    inputs = ProbeInputs(model.backbone, dataset, split, crop, seed, device, progress, stored)
    return ModelJob(model, method, meta, inputs)
