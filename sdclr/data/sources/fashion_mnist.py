"""Fashion-MNIST: read from Debian's ``dataset-fashion-mnist`` package when present, else
downloaded by torchvision."""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import torchvision.datasets as tvd

from sdclr.data.image_dataset import ImageDataset
from sdclr.data.sources.base import Source, register_source
from sdclr.io import atomic_path

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


def fashion_mnist_system_dir() -> Path:
    """Directory holding Debian-style ``*-ubyte.gz`` files (``$SDCLR_FASHION_MNIST_DIR`` wins)."""
    override = os.environ.get(FASHION_MNIST_DIR_ENV)
    return Path(override).expanduser() if override else DEBIAN_FASHION_MNIST_DIR


def load_fashion_mnist(root: Path, download: bool) -> ImageDataset:
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
    raw.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=raw.parent))
    try:
        tvd.FashionMNIST(str(scratch), train=True, download=True)
        for n in FASHION_MNIST_FILES:
            os.replace(scratch / "FashionMNIST" / "raw" / n, raw / n)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@register_source
class FashionMnist(Source):
    """Fashion-MNIST: 10 classes, 6,000 training images each (28 x 28, one channel)."""

    name = "fashion_mnist"
    geometry = (10, 6000)

    def load(self, settings: Source.Settings, root: Path, download: bool) -> ImageDataset:
        return load_fashion_mnist(root, download)
