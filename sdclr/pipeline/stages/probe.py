"""Stage probe: one probe (linear, few-shot, kNN, ...) of one pretrained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.device import describe_device, float32_arithmetic
from sdclr.io import write_json
from sdclr.pipeline.stages.common import job_inputs
from sdclr.probes.record import run_probe
from sdclr.provenance import provenance


def probe_stage(
    data: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out: str | Path,
    threads: int | None = None,
    progress: bool = True,
    features: str | Path | None = None,
) -> dict[str, Any]:
    """Run the probe the settings name on one pretrained model (reading its feature file
    ``features``, if given) and write its record."""
    dataset, split, device = job_inputs(data, split_path, settings, threads)
    record = run_probe(model_path, dataset, split, settings, seed, device, progress, features)
    record["provenance"] = provenance(describe_device(device), float32_arithmetic(device))
    write_json(out, record)
    return record
