"""Raw datasets on disk -> uint8 image tensors and int64 labels.

Every source ends up as an :class:`ImageDataset`: ``uint8`` images ``[N, C, H, W]`` and
``int64`` labels ``[N]`` for a train and a test split, plus class names. Sources:

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

Every file this module writes is written atomically (see :mod:`sdclr.io`).
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sdclr.errors import InputError
from sdclr.io import atomic_path, torch_load, torch_save

SOURCES = ("fashion_mnist", "cifar10", "cifar100", "image_list")
#: (classes, training images per class) of the sources whose geometry is known before loading.
SOURCE_GEOMETRY = {"fashion_mnist": (10, 6000), "cifar10": (10, 5000), "cifar100": (100, 500)}

#: Where Debian's ``dataset-fashion-mnist`` package installs the gzipped IDX files.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Environment variable that overrides :data:`DEBIAN_FASHION_MNIST_DIR` (read at call time).
FASHION_MNIST_DIR_ENV = "SDCLR_FASHION_MNIST_DIR"
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR100_FOLDER = "cifar-100-python"
_CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}

DEFAULT_IMAGE_SIZE = 256
_SOURCE_KEYS = {
    "fashion_mnist": {"name"},
    "cifar10": {"name"},
    "cifar100": {"name"},
    "image_list": {"name", "image_root", "train_list", "test_list", "image_size"},
}
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


# --------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------


def load_dataset(source: dict, root: str | os.PathLike, download: bool = True) -> ImageDataset:
    """Load the dataset described by ``source``; raw files live (or are fetched) under ``root``.

    ``source["name"]`` is one of :data:`SOURCES`. ``image_list`` additionally needs
    ``image_root``, ``train_list`` and ``test_list`` and takes an optional ``image_size``
    (default 256); it ignores ``root`` and ``download`` (ImageNet cannot be fetched).
    Raises ``ValueError`` for a bad ``source`` and ``FileNotFoundError`` (naming the path
    expected and how to obtain it) when the data is absent and cannot be downloaded.
    """
    if not isinstance(source, dict) or "name" not in source:
        raise ValueError(
            f"dataset source must be a dict with a 'name' (one of {SOURCES}), got {source!r}"
        )
    name = source["name"]
    if name not in SOURCES:
        raise ValueError(f"unknown dataset source {name!r}; known sources: {', '.join(SOURCES)}")
    unknown = sorted(set(source) - _SOURCE_KEYS[name])
    if unknown:
        raise ValueError(
            f"dataset source {name!r} got unknown key(s) {unknown}; "
            f"allowed keys: {sorted(_SOURCE_KEYS[name])}"
        )
    root = Path(root).expanduser()
    if name == "fashion_mnist":
        return _load_fashion_mnist(root, download)
    if name in ("cifar10", "cifar100"):
        return _load_cifar(name, root, download)
    return _load_image_list_source(source)


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


# --------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------


def fashion_mnist_system_dir() -> Path:
    """Directory holding Debian-style ``*-ubyte.gz`` files (``$SDCLR_FASHION_MNIST_DIR`` wins)."""
    override = os.environ.get(FASHION_MNIST_DIR_ENV)
    return Path(override).expanduser() if override else DEBIAN_FASHION_MNIST_DIR


def _load_fashion_mnist(root: Path, download: bool) -> ImageDataset:
    import torchvision.datasets as tvd

    raw = root / "FashionMNIST" / "raw"
    missing = [n for n in FASHION_MNIST_FILES if not (raw / n).is_file()]
    if missing:
        system_dir = fashion_mnist_system_dir()
        if all((system_dir / f"{n}.gz").is_file() for n in missing):
            for n in missing:
                _gunzip(system_dir / f"{n}.gz", raw / n)
        elif download:
            _download_fashion_mnist(raw)
        else:
            raise FileNotFoundError(
                f"Fashion-MNIST not found: expected {raw / missing[0]} (or the gzipped files "
                f"{system_dir}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte.gz). Install "
                f"Debian's 'dataset-fashion-mnist' package, point ${FASHION_MNIST_DIR_ENV} at a "
                "directory holding those .gz files, or load with download=True."
            )
    splits = {}
    for train in (True, False):
        try:
            tv = tvd.FashionMNIST(str(root), train=train, download=False)
        except (AssertionError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"Fashion-MNIST files in {raw} are malformed ({type(err).__name__}: {err}); "
                "delete them and load again"
            ) from err
        splits[train] = (tv.data.unsqueeze(1).contiguous(), tv.targets.long())
        classes = list(tv.classes)
    return ImageDataset(
        name="fashion_mnist",
        train_images=splits[True][0],
        train_labels=splits[True][1],
        test_images=splits[False][0],
        test_labels=splits[False][1],
        classes=classes,
    )


def _gunzip(src: Path, dst: Path) -> None:
    try:
        with gzip.open(src, "rb") as fin, atomic_path(dst) as tmp, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot decompress {src} ({type(err).__name__}: {err})") from err


def _download_fashion_mnist(raw: Path) -> None:
    """Let torchvision download into a scratch folder, then move the raw files into ``raw``."""
    import torchvision.datasets as tvd

    raw.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=raw.parent))
    try:
        tvd.FashionMNIST(str(scratch), train=True, download=True)
        for n in FASHION_MNIST_FILES:
            os.replace(scratch / "FashionMNIST" / "raw" / n, raw / n)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100
# --------------------------------------------------------------------------------------


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


def _load_cifar(name: str, root: Path, download: bool) -> ImageDataset:
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
    import torchvision.datasets as tvd

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


# --------------------------------------------------------------------------------------
# Image lists (ImageNet-100-LT)
# --------------------------------------------------------------------------------------


def read_image_list(path: str | os.PathLike) -> tuple[list[str], torch.Tensor]:
    """Parse a list file of ``relative/path label`` lines; blank lines are skipped.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and
    line number for a malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list {path} does not exist")
    paths: list[str] = []
    labels: list[int] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            label = None
            if len(parts) == 2:
                try:
                    label = int(parts[1])
                except ValueError:
                    label = None
            if label is None or label < 0:
                raise ValueError(
                    f"{path}, line {number}: expected 'relative/path non-negative-integer-label', "
                    f"got {line.rstrip()!r}"
                )
            paths.append(parts[0])
            labels.append(label)
    if not paths:
        raise ValueError(f"image list {path} has no entries")
    return paths, torch.tensor(labels, dtype=torch.int64)


def _load_image_list_source(source: dict) -> ImageDataset:
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
    from PIL import Image

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
    from tqdm import tqdm

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
