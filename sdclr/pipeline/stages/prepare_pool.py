"""Stage prepare_pool: COLT's out-of-distribution pool file (``colt.pool``, a ``.npy`` of
``N x H x W x C`` uint8 images), checked against the dataset's geometry and written in the
project's tensor format, once per dataset and pool file; the COLT runs that name the file take
it as an input (``sdclr.data.ood_pool``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sdclr.data.image_dataset import load_saved_dataset
from sdclr.data.ood_pool import read_pool_file, save_pool

log = logging.getLogger(__name__)


def prepare_pool_stage(
    settings: dict[str, Any], data: str | Path, source: str | Path, out: str | Path
) -> int:
    """Check ``source`` (shape ``N x size x size x channels``, dtype uint8: a one-line error
    naming the file otherwise) against the dataset ``data``; write it to ``out``; return N."""
    dataset = load_saved_dataset(data)
    images = read_pool_file(source, dataset.channels, dataset.image_size)
    save_pool(images, source, out)
    log.info("%s: %d pool images for %s", source, images.shape[0], settings["dataset"])
    return int(images.shape[0])
