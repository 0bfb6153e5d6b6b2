"""Raw datasets on disk -> :class:`~sdclr.data.image_dataset.ImageDataset`, one module per
source, registered by name (``base.py``: the contract).

``fashion_mnist``
    Read from Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``,
    overridable with ``$SDCLR_FASHION_MNIST_DIR``) when present, else downloaded by torchvision.
``cifar10`` / ``cifar100``
    torchvision's on-disk pickles, read here directly (torchvision's own class checks md5 sums).
    The train order is torchvision's (``data_batch_1..5`` concatenated), which the external
    long-tailed split index files index into.
``image_list``
    ImageNet-style list files (``relative/path.JPEG label`` per line) resolved against
    ``image_root``; every image is resized (shorter side) and center-cropped to a square.

Importing this package imports every module in it, so a new source is one file here.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path
from typing import Any

from sdclr.data.image_dataset import ImageDataset
from sdclr.data.sources.base import SOURCES, Source, get_source, register_source

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def load_dataset(
    source: dict[str, Any], root: str | os.PathLike, download: bool = True
) -> ImageDataset:
    """Load the dataset a dataset's ``source`` entry describes; raw files live (or are fetched)
    under ``root``. Raises ``ConfigError`` for a bad ``source`` and ``FileNotFoundError``
    (naming the path expected and how to obtain it) when the data is absent and cannot be
    downloaded."""
    if not isinstance(source, dict) or "name" not in source:
        raise ValueError(
            f"dataset source must be a dict with a 'name' (one of {list(SOURCES)}), got {source!r}"
        )
    reader = get_source(source["name"])
    return reader.load(reader.settings(source), Path(root).expanduser(), download)


__all__ = ["SOURCES", "Source", "get_source", "load_dataset", "register_source"]
