"""Stage features: one pretrained model's dense features of the test set and of the balanced
train pool, written once for its probes and analyses (``sdclr.probes.feature_file``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.device import set_fp32_arithmetic
from sdclr.pipeline.stages.common import job_inputs
from sdclr.probes.base import ProbeInputs
from sdclr.probes.feature_file import write_features
from sdclr.probes.features import load_backbone


def features_stage(
    data: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out: str | Path,
    threads: int | None = None,
) -> dict[str, Any]:
    """Extract the model's features at the settings' crop size and write its feature file;
    return its content."""
    dataset, split, device = job_inputs(data, split_path, settings, threads)
    set_fp32_arithmetic(conv_tf32=False, matmul_tf32=False)  # IEEE fp32, as the probes
    backbone, _ = load_backbone(model_path)
    backbone.to(device)
    crop = settings.get("crop_size") or dataset.train_images.shape[-1]
    inputs = ProbeInputs(backbone, dataset, split, crop, seed, device, progress=False)
    return write_features(out, inputs)
