"""Linear / few-shot probes of a frozen backbone."""

import numpy as np
import pytest
import torch

from sdclr.probes import load_backbone, per_class_accuracy, run_probe
from tests.helpers import saved_model, toy_dataset, toy_split


def test_per_class_accuracy_in_percent():
    """Accuracy of each class separately, in percent."""
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 0, 0, 1, 1, 0, 2, 2])
    assert per_class_accuracy(preds, labels, 3).tolist() == [75.0, 50.0, 100.0]


@pytest.mark.parametrize(("probe", "augment"), [("linear", False), ("fewshot", True)])
def test_probe_record_has_groups_per_class_and_best_epoch(tmp_path, probe, augment):
    """A probe writes per-class test accuracy, Many/Medium/Few/Std/All from the split's D_i
    counts, the best validation epoch, and trains on the right subset."""
    dataset = toy_dataset()
    split = toy_split(dataset)
    saved_model(tmp_path / "model.pt")
    settings = {
        "dataset": "toy",
        "probe": probe,
        "groups": {"kind": "thirds"},
        "crop_size": 12,
        f"{probe}_probe": {
            "epochs": 40,
            "lr": 1.0,
            "milestones": [30],
            "batch_size": 32,
            "augment": augment,
        },
    }
    record = run_probe(
        tmp_path / "model.pt",
        dataset,
        split,
        settings,
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    assert record["probe"] == probe and record["method"] == "sdclr"
    assert record["probe_train_size"] == (12 if probe == "fewshot" else 200)
    assert 1 <= record["best_epoch"] <= 40
    best_val = max(h["val_accuracy"] for h in record["history"])
    assert record["validation_accuracy"] == best_val
    assert len(record["per_class_accuracy"]) == 4
    assert record["summary"]["All"] == pytest.approx(np.mean(record["per_class_accuracy"]))
    assert {len(v) for v in record["groups"].values()} == {2, 1}  # 4 classes: 2/1/1
    assert record["summary"]["All"] > 50  # separable data: the probe really learns


def test_backbone_uses_dense_branch_and_is_frozen(tmp_path):
    """The evaluated backbone is the dense branch in eval mode with no trainable parameters."""
    model = saved_model(tmp_path / "model.pt").eval()
    backbone, meta = load_backbone(tmp_path / "model.pt")
    x = torch.rand(3, 1, 12, 12)
    assert torch.allclose(backbone(x), model.backbone(x))
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    assert meta["algorithm"] == "sdclr"


def test_corrupt_or_foreign_model_file_is_reported(tmp_path):
    """A damaged model file, or a torch file that is not a pretrained model, names the file."""
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_backbone(tmp_path / "bad.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pretrained model"):
        load_backbone(tmp_path / "other.pt")


def test_probe_is_reproducible(tmp_path):
    """The same model, split and seed give the same probe record, whatever ran before (the
    linear layer's initialisation is seeded too)."""
    dataset = toy_dataset()
    split = toy_split(dataset)
    saved_model(tmp_path / "model.pt")
    settings = {
        "dataset": "toy",
        "probe": "linear",
        "groups": {"kind": "thirds"},
        "crop_size": 12,
        "linear_probe": {"epochs": 3, "lr": 1.0, "augment": False},
    }
    first = run_probe(
        tmp_path / "model.pt",
        dataset,
        split,
        settings,
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    torch.rand(100)  # move the global RNG on
    second = run_probe(
        tmp_path / "model.pt",
        dataset,
        split,
        settings,
        seed=0,
        device=torch.device("cpu"),
        progress=False,
    )
    assert first == second
