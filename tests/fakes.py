"""Small, deterministic datasets written in the real on-disk formats, for tests.

Each writer puts files where and how the real dataset has them (torchvision's CIFAR pickles,
gzipped IDX files as Debian ships Fashion-MNIST, ImageNet-style folders and list files) and
returns what a loader should read back. Images carry class-dependent signal: a class colour
plus a class-specific sinusoidal grating (orientation and frequency), with Gaussian noise,
so that downstream tests can train something on them and see it learn.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass
class FakeArrays:
    """What a loader should produce from an array-format fake (CIFAR, Fashion-MNIST)."""

    train_images: torch.Tensor  # uint8 [N, C, H, W], in file order
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]


@dataclass
class FakeImageList:
    """An ImageNet-style fake: ``source`` can be passed straight to ``load_dataset``."""

    source: dict
    train_paths: list[str]  # relative to source["image_root"], in list-file order
    train_labels: torch.Tensor
    test_paths: list[str]
    test_labels: torch.Tensor
    classes: list[str]  # wnid of each label
    train_arrays: list[np.ndarray]  # uint8 [h, w, 3] as written (before JPEG compression)
    test_arrays: list[np.ndarray]


# --------------------------------------------------------------------------------------
# Class-dependent image content
# --------------------------------------------------------------------------------------


def class_means(num_classes: int, channels: int, height: int, width: int) -> np.ndarray:
    """Noise-free float32 image of each class, ``[K, C, H, W]`` in [0, 255]."""
    palette = np.random.default_rng(1000 + 7 * num_classes + channels)
    colours = palette.uniform(50.0, 205.0, size=(num_classes, channels))
    yy, xx = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
    k = np.arange(num_classes)
    angle = ((k * 0.618034) % 1.0) * np.pi
    freq = 1.0 + (k % 4)
    phase = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    grating = 40.0 * np.sin(2 * np.pi * freq[:, None, None] * phase)
    return (colours[:, :, None, None] + grating[:, None]).astype(np.float32)


def class_images(
    labels: np.ndarray,
    num_classes: int,
    channels: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    noise: float = 20.0,
) -> np.ndarray:
    """uint8 ``[N, C, H, W]``: each image is its class mean plus Gaussian noise."""
    means = class_means(num_classes, channels, height, width)
    pixels = means[labels] + rng.normal(0.0, noise, size=(len(labels), channels, height, width))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def balanced_labels(num_classes: int, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` of each class, in a seeded random order (so order matters in tests)."""
    return rng.permutation(np.repeat(np.arange(num_classes), per_class)).astype(np.int64)


def _split_arrays(num_classes, channels, size, per_class, test_per_class, seed):
    rng = np.random.default_rng(seed)
    train_labels = balanced_labels(num_classes, per_class, rng)
    test_labels = balanced_labels(num_classes, test_per_class, rng)
    train = class_images(train_labels, num_classes, channels, size, size, rng)
    test = class_images(test_labels, num_classes, channels, size, size, rng)
    return train, train_labels, test, test_labels


def _fake_arrays(train, train_labels, test, test_labels, classes) -> FakeArrays:
    return FakeArrays(
        train_images=torch.from_numpy(train),
        train_labels=torch.from_numpy(train_labels),
        test_images=torch.from_numpy(test),
        test_labels=torch.from_numpy(test_labels),
        classes=list(classes),
    )


# --------------------------------------------------------------------------------------
# CIFAR (torchvision's python pickles)
# --------------------------------------------------------------------------------------


def _pickle(path: Path, obj: dict, bytes_keys: bool) -> None:
    def conv(value):
        if bytes_keys and isinstance(value, str):
            return value.encode("latin1")
        if isinstance(value, list):
            return [conv(v) for v in value]
        return value

    data = {conv(k): conv(v) for k, v in obj.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=2)


def _cifar_batch(images: np.ndarray, labels: np.ndarray, label_key: str, batch: str) -> dict:
    return {
        "batch_label": batch,
        label_key: [int(v) for v in labels],
        "data": images.reshape(len(images), -1),
        "filenames": [f"img_{i:05d}.png" for i in range(len(images))],
    }


def write_fake_cifar10(
    root: str | Path,
    per_class: int = 5,
    test_per_class: int = 2,
    seed: int = 0,
    bytes_keys: bool = True,
) -> FakeArrays:
    """Write ``<root>/cifar-10-batches-py`` (data_batch_1..5, test_batch, batches.meta).

    The train set is split over the five batches in order; ``bytes_keys`` mimics how the
    original Python 2 pickles load (``b"data"``), ``False`` writes ``str`` keys instead.
    """
    base = Path(root) / "cifar-10-batches-py"
    train, train_labels, test, test_labels = _split_arrays(
        10, 3, 32, per_class, test_per_class, seed
    )
    chunks = np.array_split(np.arange(len(train)), 5)
    for i, idx in enumerate(chunks, start=1):
        batch = _cifar_batch(train[idx], train_labels[idx], "labels", f"training batch {i} of 5")
        _pickle(base / f"data_batch_{i}", batch, bytes_keys)
    _pickle(
        base / "test_batch",
        _cifar_batch(test, test_labels, "labels", "testing batch 1 of 1"),
        bytes_keys,
    )
    meta = {"num_cases_per_batch": len(chunks[0]), "label_names": CIFAR10_CLASSES, "num_vis": 3072}
    _pickle(base / "batches.meta", meta, bytes_keys)
    return _fake_arrays(train, train_labels, test, test_labels, CIFAR10_CLASSES)


def write_fake_cifar100(
    root: str | Path,
    per_class: int = 2,
    test_per_class: int = 1,
    seed: int = 0,
    bytes_keys: bool = True,
) -> FakeArrays:
    """Write ``<root>/cifar-100-python`` (train, test, meta) with 100 fine classes."""
    base = Path(root) / "cifar-100-python"
    train, train_labels, test, test_labels = _split_arrays(
        100, 3, 32, per_class, test_per_class, seed
    )
    classes = [f"fine_class_{i:02d}" for i in range(100)]
    for name, images, labels in (("train", train, train_labels), ("test", test, test_labels)):
        batch = _cifar_batch(images, labels, "fine_labels", name)
        batch["coarse_labels"] = [int(v) // 5 for v in labels]
        _pickle(base / name, batch, bytes_keys)
    meta = {
        "fine_label_names": classes,
        "coarse_label_names": [f"coarse_class_{i:02d}" for i in range(20)],
    }
    _pickle(base / "meta", meta, bytes_keys)
    return _fake_arrays(train, train_labels, test, test_labels, classes)


# --------------------------------------------------------------------------------------
# Fashion-MNIST (gzipped IDX, as Debian's dataset-fashion-mnist installs it)
# --------------------------------------------------------------------------------------


def _write_idx_gz(path: Path, array: np.ndarray) -> None:
    """IDX: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_fashion_mnist_gz(
    directory: str | Path, per_class: int = 5, test_per_class: int = 2, seed: int = 0
) -> FakeArrays:
    """Write ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train, train_labels, test, test_labels = _split_arrays(
        10, 1, 28, per_class, test_per_class, seed
    )
    for prefix, images, labels in (("train", train, train_labels), ("t10k", test, test_labels)):
        _write_idx_gz(directory / f"{prefix}-images-idx3-ubyte.gz", images[:, 0])
        _write_idx_gz(directory / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return _fake_arrays(train, train_labels, test, test_labels, FASHION_MNIST_CLASSES)


# --------------------------------------------------------------------------------------
# Image lists (ImageNet-100-LT style)
# --------------------------------------------------------------------------------------


def write_fake_image_list(
    root: str | Path,
    per_class_counts: list[int],
    test_per_class: int = 2,
    image_size: int = 32,
    size_range: tuple[int, int] = (24, 48),
    ext: str = ".JPEG",
    seed: int = 0,
) -> FakeImageList:
    """Write ``<root>/imagenet/{train,val}/<wnid>/*`` images plus two list files.

    Class ``i`` (wnid order) has ``per_class_counts[i]`` train and ``test_per_class`` test
    images of random height and width in ``size_range``. Labels are a seeded permutation of
    the wnid order (as in the real ImageNet-100 lists) and list lines are shuffled.
    ``ext`` ``.png`` writes lossless PNG, anything else JPEG. ``image_size`` goes into the
    returned source dict.
    """
    root = Path(root)
    image_root = root / "imagenet"
    rng = np.random.default_rng(seed)
    num_classes = len(per_class_counts)
    wnids = [f"n{1440000 + 3571 * i:08d}" for i in range(num_classes)]
    label_of = rng.permutation(num_classes)
    classes = [""] * num_classes
    for i, wnid in enumerate(wnids):
        classes[label_of[i]] = wnid
    fmt = "PNG" if ext.lower() == ".png" else "JPEG"
    counter = 0

    def make(split_dir: str, counts: list[int]):
        nonlocal counter
        entries = []
        for i, count in enumerate(counts):
            for j in range(count):
                counter += 1
                if split_dir == "train":
                    rel = f"train/{wnids[i]}/{wnids[i]}_{j}{ext}"
                else:
                    rel = f"val/{wnids[i]}/ILSVRC2012_val_{counter:08d}{ext}"
                h, w = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
                label = int(label_of[i])
                chw = class_images(np.array([label]), num_classes, 3, h, w, rng)[0]
                hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
                path = image_root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(hwc).save(path, format=fmt)
                entries.append((rel, label, hwc))
        order = rng.permutation(len(entries))
        return [entries[k] for k in order]

    train = make("train", list(per_class_counts))
    test = make("val", [test_per_class] * num_classes)
    train_list = root / "ImageNet_100_LT_train.txt"
    test_list = root / "ImageNet_100_test.txt"
    for list_path, entries in ((train_list, train), (test_list, test)):
        list_path.write_text("".join(f"{rel} {label}\n" for rel, label, _ in entries))
    return FakeImageList(
        source={
            "name": "image_list",
            "image_root": str(image_root),
            "train_list": str(train_list),
            "test_list": str(test_list),
            "image_size": image_size,
        },
        train_paths=[rel for rel, _, _ in train],
        train_labels=torch.tensor([label for _, label, _ in train], dtype=torch.int64),
        test_paths=[rel for rel, _, _ in test],
        test_labels=torch.tensor([label for _, label, _ in test], dtype=torch.int64),
        classes=classes,
        train_arrays=[hwc for _, _, hwc in train],
        test_arrays=[hwc for _, _, hwc in test],
    )
