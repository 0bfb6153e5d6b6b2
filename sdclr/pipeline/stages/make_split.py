"""Stage make_split: one long-tail split (D_i, D_b, S_b, the probe pools) as JSON."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sdclr.data.image_dataset import load_saved_dataset
from sdclr.data.reference_splits import import_reference_split
from sdclr.data.splits import LongTailConfig, check_split, make_longtail_split, save_split
from sdclr.settings import load

log = logging.getLogger(__name__)


def make_split_stage(
    data: str | Path, settings: dict[str, Any], split: int, out: str | Path
) -> None:
    """Cut long-tail split ``split`` of the prepared dataset (or import the reference
    implementation's files when ``reference_splits`` is set) and write it as JSON."""
    dataset = load_saved_dataset(data)
    longtail = dict(settings["longtail"])
    reference = longtail.pop("reference_splits", None)
    if reference:
        record = import_reference_split(reference, dataset, settings["dataset"], split)
    else:
        config = load(LongTailConfig, longtail, "longtail")
        record = make_longtail_split(
            dataset.train_labels.numpy(), dataset.num_classes, config, settings["dataset"], split
        )
    check_split(record, len(dataset.train_labels), str(out), record.get("fewshot_inside_di", True))
    record["classes"] = list(dataset.classes)
    save_split(record, out)
    log.info("split %d: %s", split, record["sizes"])
