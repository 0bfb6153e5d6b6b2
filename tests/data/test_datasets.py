"""Tests for sdclr.data.image_dataset: raw on-disk datasets -> uint8 tensors + labels."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import (
    class_means,
    write_fake_cifar10,
    write_fake_cifar100,
    write_fake_fashion_mnist_gz,
    write_fake_image_list,
)
from PIL import Image

from sdclr.data.image_dataset import ImageDataset, dataset_summary, load_saved_dataset, save_dataset
from sdclr.data.image_list_file import read_image_list
from sdclr.data.sources import SOURCES, load_dataset
from sdclr.data.sources import fashion_mnist as D
from sdclr.torch_files import torch_save

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.fixture
def no_system_fmnist(monkeypatch, tmp_path):
    """Point the Debian Fashion-MNIST directory at an empty folder."""
    empty = tmp_path / "no-debian-files"
    empty.mkdir()
    monkeypatch.setenv(D.FASHION_MNIST_DIR_ENV, str(empty))
    return empty


def assert_matches(ds: ImageDataset, fake) -> None:
    for split in ("train", "test"):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert torch.equal(images, getattr(fake, f"{split}_images"))
        assert torch.equal(labels, getattr(fake, f"{split}_labels"))
    assert ds.classes == fake.classes


# --------------------------------------------------------------------------------------
# Array sources
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar10_round_trip_keeps_batch_order(tmp_path, bytes_keys):
    """CIFAR-10 pickles load pixel-exact as [N,3,32,32] uint8 with the train set in torchvision's
    order (data_batch_1..5 concatenated), which external split index files rely on; works
    whether the pickles' keys load as bytes (real files) or str."""
    fake = write_fake_cifar10(tmp_path, per_class=3, test_per_class=2, bytes_keys=bytes_keys)
    ds = load_dataset({"name": "cifar10"}, tmp_path, download=False)
    assert ds.name == "cifar10"
    assert ds.train_images.shape == (30, 3, 32, 32) and ds.test_images.shape == (20, 3, 32, 32)
    assert (ds.num_classes, ds.channels, ds.image_size) == (10, 3, 32)
    assert_matches(ds, fake)
    # independently: the first train rows are data_batch_1's rows, in its order
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as handle:
        batch1 = pickle.load(handle, encoding="latin1")
    data = batch1[b"data" if bytes_keys else "data"]
    assert torch.equal(ds.train_images[: len(data)].reshape(len(data), -1), torch.from_numpy(data))


def test_cifar100_round_trip_uses_fine_labels(tmp_path):
    """CIFAR-100 loads with its 100 fine labels and fine class names, pixel-exact and in order."""
    fake = write_fake_cifar100(tmp_path, per_class=2, test_per_class=1)
    ds = load_dataset({"name": "cifar100"}, tmp_path, download=False)
    assert ds.train_images.shape == (200, 3, 32, 32) and ds.num_classes == 100
    assert_matches(ds, fake)


def test_fashion_mnist_from_debian_style_gz(tmp_path, monkeypatch):
    """When $SDCLR_FASHION_MNIST_DIR holds the Debian .gz files they are gunzipped into
    <root>/FashionMNIST/raw and read as [N,1,28,28] uint8 with torchvision's class names,
    without any download."""
    gz_dir = tmp_path / "debian"
    fake = write_fake_fashion_mnist_gz(gz_dir, per_class=4, test_per_class=2)
    monkeypatch.setenv(D.FASHION_MNIST_DIR_ENV, str(gz_dir))
    root = tmp_path / "data"
    ds = load_dataset({"name": "fashion_mnist"}, root, download=False)
    assert ds.train_images.shape == (40, 1, 28, 28) and ds.test_images.shape == (20, 1, 28, 28)
    assert_matches(ds, fake)
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(D.FASHION_MNIST_FILES)
    # once unpacked, the .gz files are no longer needed
    monkeypatch.setenv(D.FASHION_MNIST_DIR_ENV, str(tmp_path / "gone"))
    assert torch.equal(
        load_dataset({"name": "fashion_mnist"}, root, False).train_images, fake.train_images
    )


def test_fashion_mnist_download_goes_through_torchvision(tmp_path, monkeypatch, no_system_fmnist):
    """Without Debian files and with download=True, torchvision's downloader is used and its
    raw files end up in <root>/FashionMNIST/raw (network replaced by a fake)."""
    import gzip

    import torchvision.datasets as tvd

    gz_dir = tmp_path / "mirror"
    fake = write_fake_fashion_mnist_gz(gz_dir, per_class=2, test_per_class=1)
    calls = []

    def fake_download(self):
        calls.append(self.root)
        raw = Path(self.raw_folder)
        raw.mkdir(parents=True, exist_ok=True)
        for name in D.FASHION_MNIST_FILES:
            (raw / name).write_bytes(gzip.decompress((gz_dir / f"{name}.gz").read_bytes()))

    monkeypatch.setattr(tvd.FashionMNIST, "download", fake_download)
    ds = load_dataset({"name": "fashion_mnist"}, tmp_path / "data", download=True)
    assert len(calls) == 1
    assert_matches(ds, fake)
    assert not list((tmp_path / "data" / "FashionMNIST").glob(".download-*"))


def test_cifar_download_goes_through_torchvision(tmp_path, monkeypatch):
    """A missing CIFAR folder with download=True is fetched by torchvision into a scratch
    folder, moved into <root>, and then read by our own reader (network replaced by a fake)."""
    import torchvision.datasets as tvd

    made = {}

    def fake_cifar10(root, train=True, download=False):
        assert download
        made["fake"] = write_fake_cifar10(root, per_class=1, test_per_class=1)

    monkeypatch.setattr(tvd, "CIFAR10", fake_cifar10)
    ds = load_dataset({"name": "cifar10"}, tmp_path, download=True)
    assert_matches(ds, made["fake"])
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not list(tmp_path.glob(".download-*"))


@pytest.mark.skipif(not REAL_FASHION_MNIST.exists(), reason="Debian dataset-fashion-mnist absent")
def test_real_fashion_mnist(tmp_path, monkeypatch):
    """The real Debian Fashion-MNIST loads as 60000/10000 images with 6000 per class."""
    monkeypatch.delenv(D.FASHION_MNIST_DIR_ENV, raising=False)
    ds = load_dataset({"name": "fashion_mnist"}, tmp_path, download=False)
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (
        10000,
        1,
        28,
        28,
    )
    summary = dataset_summary(ds)
    assert summary["train_class_counts"] == [6000] * 10
    assert summary["test_class_counts"] == [1000] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


# --------------------------------------------------------------------------------------
# Image lists
# --------------------------------------------------------------------------------------


def test_image_list_round_trip(tmp_path):
    """Images listed in the list files load as uint8 [N,3,S,S] in list order, with the labels
    from the lists and each label named after the wnid folder of its first file."""
    fake = write_fake_image_list(tmp_path, [5, 3, 1, 2], test_per_class=2, image_size=20)
    ds = load_dataset(fake.source, tmp_path / "unused")
    assert ds.name == "image_list"
    assert ds.train_images.shape == (11, 3, 20, 20) and ds.test_images.shape == (8, 3, 20, 20)
    assert torch.equal(ds.train_labels, fake.train_labels)
    assert torch.equal(ds.test_labels, fake.test_labels)
    assert ds.classes == fake.classes
    assert dataset_summary(ds)["train_class_counts"] == torch.bincount(fake.train_labels).tolist()
    # JPEG is lossy, but each image must still look like its own class (colour + grating)
    means = torch.from_numpy(class_means(4, 3, 20, 20))
    dist = ((ds.train_images.float()[:, None] - means[None]) ** 2).mean(dim=(2, 3, 4))
    assert torch.equal(dist.argmin(dim=1), ds.train_labels)


def test_image_list_exact_size_png_is_pixel_exact(tmp_path):
    """A lossless image already at image_size x image_size is loaded unchanged."""
    fake = write_fake_image_list(
        tmp_path, [2, 2], test_per_class=1, image_size=16, size_range=(16, 16), ext=".png"
    )
    ds = load_dataset(fake.source, tmp_path)
    expected = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in fake.train_arrays])
    assert torch.equal(ds.train_images, expected)


def test_image_list_resizes_shorter_side_and_center_crops(tmp_path):
    """A wide image is scaled so its shorter side is image_size, then its center is kept:
    a 24x72 image red in its middle half and blue at both ends comes out red."""
    rgb = np.zeros((24, 72, 3), dtype=np.uint8)
    rgb[:, :, 2] = 255
    rgb[:, 18:54] = (255, 0, 0)  # the middle half: bilinear blending stays off the crop
    (tmp_path / "img" / "train" / "n1").mkdir(parents=True)
    Image.fromarray(rgb).save(tmp_path / "img" / "train" / "n1" / "a.png")
    Image.fromarray(rgb.transpose(1, 0, 2).copy()).save(tmp_path / "img" / "train" / "n1" / "b.png")
    (tmp_path / "list.txt").write_text("train/n1/a.png 0\ntrain/n1/b.png 0\n")
    source = {
        "name": "image_list",
        "image_root": str(tmp_path / "img"),
        "train_list": str(tmp_path / "list.txt"),
        "test_list": str(tmp_path / "list.txt"),
        "image_size": 12,
    }
    ds = load_dataset(source, tmp_path)
    assert ds.train_images.shape == (2, 3, 12, 12) and ds.classes == ["n1"]
    red = torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None].expand(3, 12, 12)
    for image in ds.train_images:  # wide and tall
        assert (image.int() - red.int()).abs().max() <= 2


def test_read_image_list_malformed_line_names_file_and_line(tmp_path):
    """A malformed list line is reported with the file name and its 1-based line number."""
    good = tmp_path / "good.txt"
    good.write_text("train/n1/a.JPEG 0\n\ntrain/n2/b.JPEG 3\n")
    paths, labels = read_image_list(good)
    assert paths == ["train/n1/a.JPEG", "train/n2/b.JPEG"] and labels.tolist() == [0, 3]
    for bad_line in ("train/n2/b.JPEG", "train/n2/b.JPEG x", "a b 1", "train/n2/b.JPEG -1"):
        bad = tmp_path / "bad.txt"
        bad.write_text(f"train/n1/a.JPEG 0\n{bad_line}\n")
        with pytest.raises(ValueError, match=r"bad\.txt, line 2") as info:
            read_image_list(bad)
        assert bad_line in str(info.value)


def test_image_list_missing_image_is_named(tmp_path):
    """A listed image that does not exist fails before decoding, naming the file."""
    fake = write_fake_image_list(tmp_path, [1, 1], test_per_class=1, image_size=8)
    missing = Path(fake.source["image_root"]) / fake.train_paths[0]
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_dataset(fake.source, tmp_path)


# --------------------------------------------------------------------------------------
# Errors for bad sources / missing data
# --------------------------------------------------------------------------------------


def test_unknown_source_lists_known_sources(tmp_path):
    """An unknown source name is a ValueError that lists every known source."""
    with pytest.raises(ValueError) as info:
        load_dataset({"name": "svhn"}, tmp_path)
    for name in SOURCES:
        assert name in str(info.value)


def test_unknown_source_key_is_rejected(tmp_path):
    """A misspelt source key (here image_szie) is an error, not silently ignored."""
    with pytest.raises(ValueError, match="image_szie"):
        load_dataset({"name": "image_list", "image_szie": 64}, tmp_path)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
    ],
)
def test_missing_data_without_download_names_path(tmp_path, no_system_fmnist, name, expected):
    """Absent data with download=False is a FileNotFoundError naming the expected path and
    how to get it; nothing is fetched."""
    with pytest.raises(FileNotFoundError) as info:
        load_dataset({"name": name}, tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / expected) in message
    assert "download=True" in message


def test_missing_image_list_names_path(tmp_path):
    """A missing list file is a FileNotFoundError naming it and saying how to get ImageNet."""
    (tmp_path / "imagenet").mkdir()
    source = {
        "name": "image_list",
        "image_root": str(tmp_path / "imagenet"),
        "train_list": str(tmp_path / "train.txt"),
        "test_list": str(tmp_path / "test.txt"),
    }
    with pytest.raises(FileNotFoundError, match="train.txt") as info:
        load_dataset(source, tmp_path, download=False)
    assert "image-net.org" in str(info.value)


def test_incomplete_cifar_folder_is_reported(tmp_path):
    """A CIFAR folder lacking one of its files names the missing file (never half-loads)."""
    write_fake_cifar10(tmp_path, per_class=1, test_per_class=1)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_dataset({"name": "cifar10"}, tmp_path, download=True)


# --------------------------------------------------------------------------------------
# Saved datasets
# --------------------------------------------------------------------------------------


def test_save_load_round_trip_and_summary(tmp_path):
    """save_dataset/load_saved_dataset reproduce tensors, classes and name exactly, write no
    stray temporary files, and the summary is JSON-able with per-class counts."""
    fake = write_fake_cifar10(tmp_path, per_class=2, test_per_class=1)
    ds = load_dataset({"name": "cifar10"}, tmp_path)
    out = tmp_path / "out" / "cifar10.pt"
    save_dataset(ds, out)
    assert [p.name for p in out.parent.iterdir()] == ["cifar10.pt"]
    back = load_saved_dataset(out)
    assert back.name == "cifar10"
    assert_matches(back, fake)
    summary = dataset_summary(back)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["train_size"] == 20 and summary["test_size"] == 10
    assert summary["train_class_counts"] == [2] * 10 and summary["image_size"] == 32


def test_corrupt_or_foreign_saved_file_is_clear_value_error(tmp_path):
    """A truncated file, or a torch file that is not a saved dataset, gives a ValueError naming
    the file; a missing one gives FileNotFoundError."""
    write_fake_cifar10(tmp_path, per_class=1, test_per_class=1)
    path = tmp_path / "ds.pt"
    save_dataset(load_dataset({"name": "cifar10"}, tmp_path), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="ds.pt"):
        load_saved_dataset(path)
    torch_save(tmp_path / "other.pt", {"state_dict": {}})
    with pytest.raises(ValueError, match="other.pt.*not a saved ImageDataset"):
        load_saved_dataset(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_saved_dataset(tmp_path / "absent.pt")


def test_image_dataset_validates_contents():
    """ImageDataset rejects wrong dtypes and labels outside the class range."""
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    labels = torch.tensor([0, 1])
    ImageDataset("x", images, labels, images, labels, ["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset("x", images.float(), labels, images, labels, ["a", "b"])
    with pytest.raises(ValueError, match="labels span"):
        ImageDataset("x", images, labels, images, labels, ["a"])


def test_image_list_undecodable_image_is_named(tmp_path):
    """A listed file that is not an image gives a ValueError naming that file."""
    fake = write_fake_image_list(tmp_path, [2, 2], test_per_class=1, image_size=8)
    broken = Path(fake.source["image_root"]) / fake.train_paths[1]
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=str(broken)):
        load_dataset(fake.source, tmp_path)
