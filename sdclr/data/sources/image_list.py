"""ImageNet-style list files (``relative/path.JPEG label`` per line) resolved against an image
root: every image is resized (shorter side) and center-cropped to a square, decoded in
parallel threads, into an :class:`~sdclr.data.image_dataset.ImageDataset`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from sdclr.data.image_dataset import ImageDataset
from sdclr.data.image_list_file import read_image_list
from sdclr.data.sources.base import Source, register_source
from sdclr.settings import setting

DEFAULT_IMAGE_SIZE = 256


def load_image_list_source(source: dict) -> ImageDataset:
    for key in ("image_root", "train_list", "test_list"):
        if key not in source:
            raise ValueError(f"dataset source 'image_list' needs '{key}'")
    image_size = source.get("image_size", DEFAULT_IMAGE_SIZE)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_list 'image_size' must be a positive integer, got {image_size!r}")
    image_root = Path(source["image_root"]).expanduser()
    how = (
        "ImageNet cannot be downloaded automatically: obtain ILSVRC2012 from image-net.org, "
        "extract train/ and val/ into one folder per class (wnid), and take the "
        "ImageNet-100-LT list files from the SDCLR repository (split/imagenet-100/)"
    )
    if not image_root.is_dir():
        raise FileNotFoundError(f"image_root {image_root} does not exist. {how}")
    train_lists = source["train_list"]
    if isinstance(train_lists, str):
        train_lists = [train_lists]
    lists = {
        "train": _merge_image_lists([_checked_list(p, "train_list", how) for p in train_lists]),
        "test": _checked_list(source["test_list"], "test_list", how),
    }

    num_classes = int(max(int(lists[s][2].max()) for s in lists)) + 1
    classes: list[str | None] = [None] * num_classes
    for split in ("train", "test"):  # name each label after the wnid folder of its first file
        _, rel_paths, labels = lists[split]
        for rel, label in zip(rel_paths, labels.tolist(), strict=True):
            if classes[label] is None:
                classes[label] = Path(rel).parent.name or f"class_{label}"
    class_names = [c if c is not None else f"class_{i}" for i, c in enumerate(classes)]

    images = {
        split: load_images(
            [image_root / rel for rel in lists[split][1]],
            image_size,
            desc=f"{split} images ({lists[split][0].name})",
        )
        for split in ("train", "test")
    }
    return ImageDataset(
        name="image_list",
        train_images=images["train"],
        train_labels=lists["train"][2],
        test_images=images["test"],
        test_labels=lists["test"][2],
        classes=class_names,
        train_paths=list(lists["train"][1]),
    )


def _checked_list(path: str, key: str, how: str) -> tuple[Path, list[str], torch.Tensor]:
    list_path = Path(path).expanduser()
    if not list_path.is_file():
        raise FileNotFoundError(f"{key} {list_path} does not exist. {how}")
    return (list_path, *read_image_list(list_path))


def _merge_image_lists(
    lists: Sequence[tuple[Path, list[str], torch.Tensor]],
) -> tuple[Path, list[str], torch.Tensor]:
    """Union of several list files, first occurrence first; a path listed with two different
    labels is an error naming both files."""
    seen: dict[str, tuple[int, Path]] = {}
    paths: list[str] = []
    for list_path, rel_paths, labels in lists:
        for rel, label in zip(rel_paths, labels.tolist(), strict=True):
            if rel in seen:
                if seen[rel][0] != label:
                    raise ValueError(
                        f"{rel} has label {seen[rel][0]} in {seen[rel][1]} but {label} in "
                        f"{list_path}"
                    )
                continue
            seen[rel] = (label, list_path)
            paths.append(rel)
    labels = torch.tensor([seen[p][0] for p in paths], dtype=torch.int64)
    return lists[0][0], paths, labels


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))  # respects SLURM/cgroup CPU binding
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))


def load_image(path: str | os.PathLike, image_size: int) -> np.ndarray:
    """Decode ``path`` as RGB, resize its shorter side to ``image_size`` (bilinear, antialiased)
    and center-crop to ``image_size`` square. Returns uint8 ``[image_size, image_size, 3]``."""
    with Image.open(path) as img:
        img = img.convert("RGB")
    width, height = img.size
    # Same output size and crop offsets as torchvision's Resize(int) + CenterCrop.
    if width <= height:
        new_w, new_h = image_size, int(image_size * height / width)
    else:
        new_w, new_h = int(image_size * width / height), image_size
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), Image.BILINEAR)  # PIL antialiases when shrinking
    top = int(round((new_h - image_size) / 2.0))
    left = int(round((new_w - image_size) / 2.0))
    img = img.crop((left, top, left + image_size, top + image_size))
    return np.array(img, dtype=np.uint8)  # a writable copy


def load_images(
    paths: Sequence[str | os.PathLike],
    image_size: int,
    num_workers: int | None = None,
    desc: str = "images",
) -> torch.Tensor:
    """Load many images with :func:`load_image` in a thread pool -> uint8 ``[N, 3, S, S]``.

    Every path is checked before any decoding, so a missing file fails fast.
    """
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise FileNotFoundError(f"{len(missing)} of {len(paths)} {desc} are missing, e.g. {shown}")
    out = torch.empty((len(paths), 3, image_size, image_size), dtype=torch.uint8)

    def fill(index: int) -> None:
        try:
            array = load_image(paths[index], image_size)
        except Exception as err:  # PIL raises several types for a damaged image
            raise ValueError(
                f"cannot read image {paths[index]} ({type(err).__name__}: {err})"
            ) from err
        out[index] = torch.from_numpy(array).permute(2, 0, 1)

    workers = num_workers or _default_workers()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for _ in tqdm(
            pool.map(fill, range(len(paths))), total=len(paths), desc=desc, mininterval=2
        ):
            pass
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # fail now, not after the whole list
        raise
    pool.shutdown(wait=True)
    return out


IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def full_train_list(
    image_root: str | os.PathLike, label_lists: Sequence[str | os.PathLike], exclude: str | None
) -> str:
    """The full ImageNet-100 train list the reference's linear probe trains on: every image
    under ``<image_root>/train/<wnid>/`` of the classes the ``label_lists`` name, labelled as
    they label that wnid, minus the images of the ``exclude`` list (the validation list), as
    sorted ``train/<wnid>/<file> label`` lines. A wnid given two labels is an error."""
    label_of: dict[str, int] = {}
    for path in label_lists:
        for rel, label in zip(*read_image_list(path), strict=True):
            wnid = Path(rel).parent.name
            if label_of.setdefault(wnid, int(label)) != int(label):
                raise ValueError(f"{path}: {wnid} has label {int(label)} and {label_of[wnid]}")
    excluded = set(read_image_list(exclude)[0]) if exclude else set()
    lines = []
    for wnid, label in sorted(label_of.items()):
        folder = Path(image_root) / "train" / wnid
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist; extract ILSVRC-2012 train there")
        for image in sorted(folder.iterdir()):
            rel = f"train/{wnid}/{image.name}"
            if image.suffix.lower() in IMAGE_SUFFIXES and rel not in excluded:
                lines.append(f"{rel} {label}\n")
    return "".join(lines)


@register_source
class ImageList(Source):
    """ImageNet-style list files resolved against an image folder (ImageNet-100-LT)."""

    name = "image_list"

    @dataclasses.dataclass(frozen=True)
    class Settings:
        """An image-list dataset (``source: {name: image_list, ...}``)."""

        image_root: str = setting(doc="The folder the list files' paths are relative to.")
        train_list: str | tuple[str, ...] = setting(
            doc="One list file, or several whose union is the train pool."
        )
        test_list: str = setting(doc="The test list file.")
        image_size: int = setting(
            DEFAULT_IMAGE_SIZE,
            doc="Images are resized (shorter side) and center-cropped to this size.",
            minimum=8,
        )

    def load(self, settings: Settings, root: Path, download: bool) -> ImageDataset:
        return load_image_list_source(dataclasses.asdict(settings))
