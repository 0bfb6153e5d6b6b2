"""Stage features: one pretrained model's dense features of the test set and of the balanced
train pool, written once for its probes and analyses (``sdclr.probes.feature_file``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.pipeline.stages.common import job_inputs
from sdclr.probes.feature_file import write_features
from sdclr.probes.model_job import open_model_job


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
    job = open_model_job(model_path, dataset, split, settings, seed, device)
    return write_features(out, job.inputs)
