"""CIFAR-10 / CIFAR-100: torchvision's on-disk batches, read here directly (torchvision's own
classes check md5 sums) with an allow-list unpickler. The train order is torchvision's
(``data_batch_1..5`` concatenated), which the reference split index files index into."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.datasets as tvd

from sdclr.data.image_dataset import ImageDataset
from sdclr.data.sources.base import Source, register_source
from sdclr.errors import InputError

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR100_FOLDER = "cifar-100-python"
_CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}


def _cifar_layout(name: str) -> tuple[str, list[str], str, str, str, str]:
    """(folder, train files, test file, meta file, label key, class-name key)."""
    if name == "cifar10":
        return (
            CIFAR10_FOLDER,
            list(CIFAR10_TRAIN_FILES),
            "test_batch",
            "batches.meta",
            "labels",
            "label_names",
        )
    return CIFAR100_FOLDER, ["train"], "test", "meta", "fine_labels", "fine_label_names"


def load_cifar(name: str, root: Path, download: bool) -> ImageDataset:
    folder, train_files, test_file, meta_file, label_key, names_key = _cifar_layout(name)
    base = root / folder
    needed = [*train_files, test_file, meta_file]
    if not base.is_dir():
        if not download:
            raise FileNotFoundError(
                f"{name} not found: expected the folder {base} (with {', '.join(needed)}). "
                f"Load with download=True, or download {_CIFAR_URLS[name]} and extract it "
                f"into {root}."
            )
        _download_cifar(name, root, folder)
    missing = [f for f in needed if not (base / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name} folder {base} is incomplete: {base / missing[0]} is missing. Delete {base} "
            f"and load with download=True, or re-extract {_CIFAR_URLS[name]} into {root}."
        )
    train = [_read_cifar_batch(base / f, label_key) for f in train_files]
    test_images, test_labels = _read_cifar_batch(base / test_file, label_key)
    meta = _read_pickle(base / meta_file)
    if names_key not in meta:
        raise ValueError(
            f"{base / meta_file} has no '{names_key}' entry; is it a {name} meta file?"
        )
    classes = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in meta[names_key]]
    return ImageDataset(
        name=name,
        train_images=torch.cat([images for images, _ in train]),
        train_labels=torch.cat([labels for _, labels in train]),
        test_images=test_images,
        test_labels=test_labels,
        classes=classes,
    )


def _download_cifar(name: str, root: Path, folder: str) -> None:
    """Let torchvision download and verify into a scratch folder, then move ``folder`` in."""
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        cls(str(scratch), train=True, download=True)
        os.replace(scratch / folder, root / folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR batch holds (dicts, lists, strings, numbers, numpy arrays) and
    refuses every other global, so a crafted file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict[str, Any]:
    """Unpickle a CIFAR file with :class:`_CifarUnpickler`; keys come back as ``str`` whether
    stored as bytes or str."""
    try:
        with open(path, "rb") as handle:
            obj = _CifarUnpickler(handle, encoding="latin1").load()
    except Exception as err:  # pickle raises many types for a damaged file
        raise InputError(
            f"{path} is not a readable CIFAR batch ({type(err).__name__}: {err}); delete the "
            "folder and download it again"
        ) from None
    if not isinstance(obj, dict):
        raise InputError(f"{path} holds a {type(obj).__name__}, expected a CIFAR dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _read_cifar_batch(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    entry = _read_pickle(path)
    if "data" not in entry or label_key not in entry:
        raise ValueError(f"{path} lacks 'data' or '{label_key}'; is it a CIFAR batch file?")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' must be uint8 [n, 3072], got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.size} labels")
    images = torch.from_numpy(np.ascontiguousarray(data.reshape(-1, 3, 32, 32)))
    return images, torch.from_numpy(labels)


@register_source
class Cifar10(Source):
    """CIFAR-10: 10 classes, 5,000 training images each (32 x 32)."""

    name = "cifar10"
    geometry = (10, 5000)

    def load(self, settings: Source.Settings, root: Path, download: bool) -> ImageDataset:
        return load_cifar(self.name, root, download)


@register_source
class Cifar100(Cifar10):
    """CIFAR-100: 100 classes, 500 training images each (32 x 32)."""

    name = "cifar100"
    geometry = (100, 500)
