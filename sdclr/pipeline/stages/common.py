"""What the stages on one split's pretrained model start from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sdclr.data.image_dataset import ImageDataset, load_saved_dataset
from sdclr.data.splits import load_split
from sdclr.device import pick_device


def job_inputs(
    data: str | Path, split_path: str | Path, settings: dict[str, Any], threads: int | None
) -> tuple[ImageDataset, dict[str, Any], torch.device]:
    """Torch's threads set, then the prepared dataset, the split record and the device."""
    if threads:
        torch.set_num_threads(threads)
    dataset = load_saved_dataset(data)
    return (
        dataset,
        load_split(split_path, dataset),
        pick_device(settings.get("device", "auto")),
    )
