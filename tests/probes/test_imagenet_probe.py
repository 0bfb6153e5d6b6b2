"""The reference's ImageNet-100-LT linear probe: the full train list as the probe pool,
RandomResizedCrop + flip on the device, batch 512, the best epoch by validation top-5; and the
balanced-list fallback, named in the tables' header. On small generated image-list folders."""

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from sdclr.data.augment import random_resized_crop_flip, sample_crop_boxes
from sdclr.data.augment._common import _bernoulli
from sdclr.data.reference_splits import import_reference_split
from sdclr.data.sources import load_dataset
from sdclr.probes import run_probe
from sdclr.probes._probe_data import ImageRows, per_class_topk_accuracy
from sdclr.reporting.tables import write_tables
from tests.fakes import write_fake_image_list


def test_random_resized_crop_flip_is_torchvisions_per_image():
    """Each view is torchvision's resized_crop (bilinear, antialiased) of a box drawn as
    RandomResizedCrop.get_params draws it, at scale 0.08-1, then flipped with p = 0.5."""
    images = torch.randint(0, 256, (6, 3, 30, 26), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    out = random_resized_crop_flip(images, 16, (0.08, 1.0), torch.Generator().manual_seed(3))
    assert out.shape == (6, 3, 16, 16) and out.dtype == torch.float32
    again = torch.Generator().manual_seed(3)
    boxes = sample_crop_boxes(6, 30, 26, (0.08, 1.0), (3 / 4, 4 / 3), again)
    flips = _bernoulli(6, 0.5, again, "cpu")
    for i in range(6):
        expected = TF.resized_crop(
            images[i].float() / 255, *boxes[i].tolist(), [16, 16],
            interpolation=TF.InterpolationMode.BILINEAR, antialias=True,
        )  # fmt: skip
        expected = TF.horizontal_flip(expected) if flips[i] else expected
        torch.testing.assert_close(out[i], expected.clamp(0, 1), atol=1e-5, rtol=0)


def test_validation_top5_by_hand_and_image_rows_gather_without_copying():
    """Top-k per class by hand; ImageRows returns the selected (centre-cropped) images."""
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [0, 0, 9, 0, 0, 0]])
    labels = torch.tensor([5, 5, 2])  # class 5: top-2 hit once of twice; class 2: hit
    top2 = per_class_topk_accuracy(logits, labels, 6, 2)
    assert top2[5] == 50.0 and top2[2] == 100.0 and np.isnan(top2[0])
    images = torch.arange(5 * 1 * 4 * 4, dtype=torch.uint8).view(5, 1, 4, 4)
    rows = ImageRows(images, torch.tensor([4, 1, 3]), crop=2)
    assert rows.shape == (3, 1, 2, 2)
    assert torch.equal(rows[torch.tensor([2, 0])], images[[3, 4], :, 1:3, 1:3])
    assert torch.equal(rows[0:2], images[[4, 1], :, 1:3, 1:3])


def _write_lists(tmp_path):
    """A 4-class ImageNet-style folder and the reference's list files for it: a long-tail
    list, a balanced list, a few-shot list, a validation list and the full train list (every
    train image except the validation list's)."""
    fake = write_fake_image_list(tmp_path, [14, 12, 11, 10], test_per_class=4, image_size=24)
    paths, labels = fake.train_paths, fake.train_labels.tolist()
    by_class = {c: [p for p, lab in zip(paths, labels, strict=True) if lab == c] for c in range(4)}
    lists = {
        "val": [(p, c) for c, ps in by_class.items() for p in ps[:3]],
        "LT": [(p, c) for c, ps in by_class.items() for p in ps[3 : 3 + [8, 4, 2, 1][c]]],
        "BL": [(p, c) for c, ps in by_class.items() for p in ps[3:6]],
        "fewshot": [(p, c) for c, ps in by_class.items() for p in ps[6:7]],
        "full": [(p, c) for c, ps in by_class.items() for p in ps[3:]],
    }
    files = {}
    for name, entries in lists.items():
        files[name] = tmp_path / f"{name}.txt"
        files[name].write_text("".join(f"{p} {c}\n" for p, c in entries))
    source = {**fake.source, "train_list": [str(files[k]) for k in ("full", "LT", "BL", "val")]}
    return load_dataset(source, tmp_path / "unused"), files, len(lists["full"])


def _split(dataset, files, train):
    names = {"train": train, "validation": "val", "D_i": "LT", "D_b": "BL", "S_b": "fewshot"}
    return import_reference_split({k: str(files[v]) for k, v in names.items()}, dataset, "inet", 1)


def _probe(tmp_path, dataset, split, **config):
    settings = {
        "dataset": "inet",
        "probe": "linear",
        "groups": {"kind": "thresholds", "many_above": 5, "few_below": 2},
        "crop_size": 20,
        "linear_probe": {"epochs": 4, "batch_size": 512, "lr": 1.0, **config},
    }
    return run_probe(
        tmp_path / "model.pt", dataset, split, settings, seed=0,
        device=torch.device("cpu"), progress=False,
    )  # fmt: skip


@pytest.mark.parametrize("select_by", ["top1", "top5"])
def test_the_reference_probe_trains_on_the_full_list_with_resized_crops(tmp_path, select_by):
    """With the full train list as ``train``, the linear probe trains on all its images
    (RandomResizedCrop + flip views of the stored images), names the list in its record, and
    keeps the epoch of the best validation top-5 (or top-1), the first of equals."""
    dataset, files, full = _write_lists(tmp_path)
    split = _split(dataset, files, "full")
    assert split["probe_pool"] == f"the list full.txt ({full} images)"
    _rgb_model(tmp_path / "model.pt")  # the fake images are RGB
    record = _probe(
        tmp_path, dataset, split, augment=True, crop="resized", scale=[0.08, 1.0],
        select_by=select_by,
    )  # fmt: skip
    assert record["probe_train_size"] == full
    assert record["probe_train_note"] == split["probe_pool"]
    assert record["selected_by"] == f"validation {select_by}"
    key = "val_top5" if select_by == "top5" else "val_accuracy"
    scores = [h[key] for h in record["history"]]
    assert record["best_epoch"] == 1 + int(np.argmax(scores))
    assert len(record["per_class_accuracy"]) == 4


def test_without_the_full_list_the_probe_trains_on_d_b_and_the_table_says_so(tmp_path):
    """The fallback: ``train`` is the balanced list; the split, the record and every table
    header name it, and a dataset with generated splits gets no note."""
    dataset, files, _ = _write_lists(tmp_path)
    split = _split(dataset, files, "BL")
    assert split["probe_pool"].startswith("the balanced list D_b (12 images; the reference")
    _rgb_model(tmp_path / "model.pt")
    record = _probe(tmp_path, dataset, split, augment=False)
    assert record["probe_train_note"] == split["probe_pool"] and record["probe_train_size"] == 12
    other = {k: v for k, v in record.items() if k != "probe_train_note"} | {"dataset": "cifar"}
    outputs = {"md": tmp_path / "t.md", "splits_md": tmp_path / "s.md", "csv": tmp_path / "t.csv"}
    labels = {"datasets": {"inet": "ImageNet-100-LT"}, "methods": {}}
    write_tables([record, other], "linear", outputs, labels=labels)
    for name in ("t.md", "s.md"):
        title = (tmp_path / name).read_text().splitlines()[0]
        assert "ImageNet-100-LT on the balanced list D_b (12 images" in title
        assert "cifar on" not in title
    plain = tmp_path / "plain.csv"
    write_tables([other], "linear", {"csv": plain, "md": tmp_path / "p.md"})
    assert "probe_note" not in plain.read_text().splitlines()[0]
    assert ";" not in (tmp_path / "p.md").read_text().splitlines()[0]


def _rgb_model(path):
    """A tiny pretrained SimCLR model for 3-channel images."""
    from sdclr.methods import create_method
    from sdclr.models import ModelConfig
    from sdclr.torch_files import torch_save

    torch.manual_seed(0)
    config = ModelConfig(width=0.0625, projection_dim=8)
    model = create_method("simclr", {}).build_model(config, in_channels=3)
    spec = {"name": "simclr", "algorithm": "simclr", "pretrain_set": "D_i", "hyperparameters": {}}
    torch_save(
        path,
        {"state_dict": model.state_dict(), "algorithm": "simclr", "method": spec,
         "model_config": vars(config), "in_channels": 3},
    )  # fmt: skip


def test_the_full_train_list_is_every_train_image_but_the_validation_lists(tmp_path):
    """scripts/make_imagenet100_train_list.py: every train image of the listed classes with
    the lists' labels, minus the validation list; it imports as the probe pool."""
    import subprocess
    import sys
    from pathlib import Path

    dataset, files, full = _write_lists(tmp_path)
    out = tmp_path / "generated.txt"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(root / "scripts/make_imagenet100_train_list.py"),
         "--image-root", str(tmp_path / "imagenet"), "--lists", str(files["LT"]),
         str(files["BL"]), "--exclude", str(files["val"]), "--out", str(out)],
        capture_output=True, text=True, cwd=root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    generated = sorted(out.read_text().splitlines())
    assert generated == sorted(files["full"].read_text().splitlines()) and len(generated) == full
