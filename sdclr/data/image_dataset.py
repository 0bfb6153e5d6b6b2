"""The in-memory form of every dataset: uint8 image tensors ``[N, C, H, W]``, int64 labels and
class names for a train and a test split (:class:`ImageDataset`), and its one file on disk
(:func:`save_dataset`, :func:`load_saved_dataset`), written atomically and read without
running code. The readers of raw datasets are in ``sdclr.data.sources``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from sdclr.torch_files import torch_load, torch_save

_SAVED_FORMAT = "sdclr.ImageDataset"
_SAVED_VERSION = 1
_SAVED_KEYS = (
    "format",
    "version",
    "name",
    "classes",
    "train_images",
    "train_labels",
    "test_images",
    "test_labels",
)


@dataclass
class ImageDataset:
    """A labelled image dataset held in memory as uint8 tensors.

    Construction validates dtypes, shapes and label ranges and raises ``ValueError``.
    """

    name: str
    train_images: torch.Tensor = field(repr=False)  # uint8 [N, C, H, W]
    train_labels: torch.Tensor = field(repr=False)  # int64 [N]
    test_images: torch.Tensor = field(repr=False)  # uint8 [M, C, H, W]
    test_labels: torch.Tensor = field(repr=False)  # int64 [M]
    classes: list[str]
    # For list-file sources: the list path of every training image, so that external subset
    # lists (ImageNet-100-LT's D_i / D_b / S_b files) can be mapped to indices.
    train_paths: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise ValueError(f"dataset {self.name!r} has no classes")
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
                raise ValueError(
                    f"dataset {self.name!r}: {split} images and labels must be tensors"
                )
            if images.dtype != torch.uint8 or images.dim() != 4:
                raise ValueError(
                    f"dataset {self.name!r}: {split}_images must be uint8 [N, C, H, W], "
                    f"got {images.dtype} {list(images.shape)}"
                )
            if labels.dtype != torch.int64 or labels.dim() != 1:
                raise ValueError(
                    f"dataset {self.name!r}: {split}_labels must be int64 [N], "
                    f"got {labels.dtype} {list(labels.shape)}"
                )
            if len(images) != len(labels):
                raise ValueError(
                    f"dataset {self.name!r}: {len(images)} {split} images but {len(labels)} labels"
                )
            if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise ValueError(
                    f"dataset {self.name!r}: {split} labels span [{int(labels.min())}, "
                    f"{int(labels.max())}] but there are {len(self.classes)} classes"
                )
        if self.train_paths is not None and len(self.train_paths) != len(self.train_labels):
            raise ValueError(
                f"dataset {self.name!r}: {len(self.train_paths)} train paths for "
                f"{len(self.train_labels)} train images"
            )
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(
                f"dataset {self.name!r}: train images are {list(self.train_images.shape[1:])} "
                f"but test images are {list(self.test_images.shape[1:])}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> int:
        """Image height (all sources produce square images)."""
        return int(self.train_images.shape[2])


def save_dataset(ds: ImageDataset, path: str | os.PathLike) -> None:
    """Write ``ds`` to one ``.pt`` file atomically; read it with :func:`load_saved_dataset`."""
    torch_save(
        path,
        {
            "format": _SAVED_FORMAT,
            "version": _SAVED_VERSION,
            "name": ds.name,
            "classes": list(ds.classes),
            "train_images": ds.train_images.contiguous(),
            "train_labels": ds.train_labels.contiguous(),
            "test_images": ds.test_images.contiguous(),
            "test_labels": ds.test_labels.contiguous(),
            "train_paths": ds.train_paths,
        },
    )


def load_saved_dataset(path: str | os.PathLike) -> ImageDataset:
    """Read a file written by :func:`save_dataset`.

    Raises ``FileNotFoundError`` when absent and ``ValueError`` (naming the file) when it is
    corrupt, not a saved dataset, or its contents are inconsistent.
    """
    obj = torch_load(path, what="saved dataset")
    hint = "delete it and re-run the rule that writes it"
    if not isinstance(obj, dict) or obj.get("format") != _SAVED_FORMAT:
        raise ValueError(
            f"{path} is not a saved ImageDataset (no '{_SAVED_FORMAT}' marker); {hint}"
        )
    missing = [k for k in _SAVED_KEYS if k not in obj]
    if missing:
        raise ValueError(f"saved dataset {path} lacks {missing}; {hint}")
    if obj["version"] != _SAVED_VERSION:
        raise ValueError(
            f"saved dataset {path} has format version {obj['version']}, "
            f"this code reads version {_SAVED_VERSION}; {hint}"
        )
    try:
        return ImageDataset(
            name=obj["name"],
            train_images=obj["train_images"],
            train_labels=obj["train_labels"],
            test_images=obj["test_images"],
            test_labels=obj["test_labels"],
            classes=list(obj["classes"]),
            train_paths=obj.get("train_paths"),
        )
    except (ValueError, TypeError) as err:
        raise ValueError(f"saved dataset {path} is inconsistent ({err}); {hint}") from err


def dataset_summary(ds: ImageDataset) -> dict[str, Any]:
    """JSON-able description: name, sizes, geometry and per-class counts."""
    return {
        "name": ds.name,
        "num_classes": ds.num_classes,
        "channels": ds.channels,
        "image_size": ds.image_size,
        "train_size": len(ds.train_labels),
        "test_size": len(ds.test_labels),
        "classes": list(ds.classes),
        "train_class_counts": _class_counts(ds.train_labels, ds.num_classes),
        "test_class_counts": _class_counts(ds.test_labels, ds.num_classes),
    }


def _class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    return [int(c) for c in torch.bincount(labels, minlength=num_classes)]
