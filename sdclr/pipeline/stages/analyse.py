"""Stage analyse: the analyses (PIE rates, class-mean geometry, difficult pairs) of one
pretrained model, as one record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.analyses.run import run_analysis
from sdclr.device import describe_device, float32_arithmetic
from sdclr.io import write_json
from sdclr.pipeline.stages.common import job_inputs
from sdclr.provenance import provenance


def analysis_stage(
    data: str | Path,
    split_path: str | Path,
    model_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out: str | Path,
    threads: int | None = None,
    features: str | Path | None = None,
) -> dict[str, Any]:
    """Run the analyses the settings list on one pretrained model (reading its feature file
    ``features``, if given) and write its record."""
    dataset, split, device = job_inputs(data, split_path, settings, threads)
    record = run_analysis(model_path, dataset, split, settings, seed, device, features)
    record["provenance"] = provenance(describe_device(device), float32_arithmetic(device))
    write_json(out, record)
    return record
