"""Stage prepare_dataset: the raw dataset as one uint8 tensor file and a JSON summary."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sdclr.data.image_dataset import dataset_summary, save_dataset
from sdclr.data.sources import load_dataset
from sdclr.io import write_json

log = logging.getLogger(__name__)


def prepare_dataset_stage(
    settings: dict[str, Any], out: str | Path, summary_out: str | Path
) -> None:
    """Raw dataset -> one uint8 tensor file plus a JSON summary (sizes, per-class counts)."""
    source = settings["source"]
    dataset = load_dataset(source, settings["data_root"], download=settings["download"])
    save_dataset(dataset, out)
    write_json(summary_out, dataset_summary(dataset))
    log.info(
        "%s: %d train / %d test images, %d classes",
        source["name"],
        len(dataset.train_labels),
        len(dataset.test_labels),
        dataset.num_classes,
    )
