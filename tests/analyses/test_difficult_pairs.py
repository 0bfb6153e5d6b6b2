"""Which samples difficult-pair tuning re-weights: the per-sample counts a run keeps (in its
checkpoint and model.pt) and the ``difficult_pairs`` analysis and report built from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from sdclr.analyses.difficult_pairs import difficult_pairs_analysis, sample_counts
from sdclr.analyses.run import run_analysis
from sdclr.errors import ConfigError, InputError
from sdclr.methods import create_method
from sdclr.methods.difficult_examples import difficult_band
from sdclr.pipeline.config import normalize_config
from sdclr.reporting.analyses import write_analysis_report
from sdclr.torch_files import torch_load
from sdclr.training.loop import CHECKPOINT_NAME, MODEL_NAME
from tests.analyses.test_analysis import TINY
from tests.helpers import difficult_settings, pretrain, toy_dataset, toy_images, toy_split


def test_each_sample_counts_the_difficult_pairs_of_its_two_view_rows():
    """After a step on samples [7, 2, 5] (N = 3): sample indices[k] gains the flagged pairs of
    rows k and k + 3 of the step's mask, and 2 (2N - 2) = 8 candidate pairs."""
    method = create_method(
        "simclr", {}, "methods.x.hyperparameters", {"difficult_examples": {"margin": 0.1}}
    )
    method.setup(9, torch.device("cpu"))
    extension = method.extensions[0]
    gen = torch.Generator().manual_seed(0)
    h1, h2, z1, z2 = (torch.randn(3, 5, generator=gen) for _ in range(4))
    extension.contrastive_loss(method, z1, z2, h1, h2, per_sample=False)
    mask = difficult_band(h1, h2, 0.1, 0.9)[0]
    extension.observe_step(torch.tensor([7, 2, 5]))
    rows = mask.sum(dim=1)
    expected = torch.zeros(9, dtype=torch.long)
    for k, sample in enumerate([7, 2, 5]):
        expected[sample] = rows[k] + rows[k + 3]
    assert torch.equal(extension.difficult_pairs, expected)
    assert extension.candidate_pairs.tolist() == [0, 0, 8, 0, 0, 8, 0, 8, 0]
    assert int(extension.difficult_pairs.sum()) == int(mask.sum()) > 0


def test_a_run_leaves_its_counts_in_model_pt_with_the_training_set_indices(tmp_path):
    """Over a real run (40 images, batch 16: steps of 16, 16, 8) each sample is a candidate in
    2 (2N - 2) pairs a step, and the flagged share is posLow - posHigh of all pairs; model.pt
    names the images by their training-set indices, and the checkpoint holds the counts."""
    ids = torch.arange(100, 140)
    pretrain(difficult_settings(epochs=2), toy_images(40), tmp_path, 0, progress=False,
             sample_ids=ids)  # fmt: skip
    saved = torch_load(tmp_path / MODEL_NAME)
    counts = sample_counts(saved, "model.pt")
    assert counts is not None and counts["pretrain_indices"].tolist() == ids.tolist()
    assert int(counts["counted_epochs"]) == 2
    # a sample is in the partial batch of 0, 1 or 2 of the epochs: 60 or 28 pairs a step
    assert set(counts["candidate_pairs"].tolist()) <= {120, 88, 56}
    assert counts["candidate_pairs"].sum() == 2 * (32 * 2 * (2 * 16 - 2) + 8 * 2 * (2 * 8 - 2))
    # the band holds the pairs ranked from posHigh 10 % to posLow 90 % of every step's pairs
    share = counts["difficult_pairs"].sum() / counts["candidate_pairs"].sum()
    assert share == pytest.approx(0.8, abs=0.005)
    state = torch_load(tmp_path / CHECKPOINT_NAME)["method_state"]["difficult_examples"]
    assert torch.equal(state["difficult_pairs"], torch.as_tensor(counts["difficult_pairs"]))


def test_a_plain_run_keeps_no_sample_statistics(tmp_path):
    from tests.helpers import tiny_settings

    pretrain(tiny_settings("simclr", epochs=1), toy_images(32), tmp_path, 0, progress=False)
    saved = torch_load(tmp_path / MODEL_NAME)
    assert "sample_statistics" not in saved and sample_counts(saved, "model.pt") is None


def test_per_class_rates_and_top_tenth_follow_the_formulas():
    """Hand-made counts on 10 samples of 3 classes (D_i counts 5, 3, 2): class 2's samples
    have twice the pair fraction of the others; the top tenth (one sample) is the most
    flagged sample (ties: the lower position first)."""
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 9])  # training set; index 10 unused
    counts = {
        "pretrain_indices": np.arange(10),
        "difficult_pairs": np.array([2, 2, 2, 2, 2, 2, 2, 2, 4, 4]),
        "candidate_pairs": np.full(10, 10),
        "counted_epochs": np.array(3),
    }
    groups = {"Many": [0], "Medium": [1], "Few": [2]}
    part = difficult_pairs_analysis(counts, labels, [5, 3, 2], groups)
    f = 24 / 100
    by_class = {row["class"]: row for row in part["per_class"]}
    assert [row["class"] for row in part["per_class"]] == [0, 1, 2]  # by D_i frequency
    assert by_class[0]["rate"] == pytest.approx(0.2 / f, abs=1e-6)
    assert by_class[2]["rate"] == pytest.approx(0.4 / f, abs=1e-6)
    assert by_class[2]["difficult_percent"] == pytest.approx(40.0)
    assert by_class[2]["top_tenth"] == pytest.approx(50.0)  # sample 8 of samples 8 and 9
    assert by_class[0]["top_tenth"] == 0 and by_class[1]["images"] == 3
    assert part["summary"]["Few rate"] == pytest.approx(0.4 / f, abs=1e-6)
    assert part["summary"]["Many top 10 %"] == 0 and part["difficult_percent"] == 24.0
    assert part["counted_epochs"] == 3


def test_the_analysis_of_a_difficult_pairs_run_and_its_report(tmp_path):
    """The analysis job adds the difficult-pairs numbers for a model that kept counts (and
    none for one that did not); the report writes its table (a row per run, mean ± std over
    splits) and a figure."""
    dataset = toy_dataset()
    split = toy_split(dataset)
    split["classes"] = list(dataset.classes)
    d_i = torch.as_tensor(split["indices"]["D_i"])
    settings = difficult_settings(epochs=1)
    settings["model"]["stem"] = "cifar"
    pretrain(settings, dataset.train_images[d_i], tmp_path, 0, progress=False, sample_ids=d_i)
    analysis = {"dataset": "toy", "analyses": ["geometry", "difficult_pairs"],
                "groups": {"kind": "thirds"}, "crop_size": 12}  # fmt: skip
    record = run_analysis(tmp_path / MODEL_NAME, dataset, split, analysis, 0, torch.device("cpu"))
    part = record["difficult_pairs"]
    assert [row["D_i"] for row in part["per_class"]] == sorted(split["counts"]["D_i"], reverse=True)
    assert sum(row["images"] for row in part["per_class"]) == len(d_i)
    assert set(part["summary"]) == {f"{g} {k}" for g in ("Many", "Medium", "Few")
                                    for k in ("rate", "top 10 %")}  # fmt: skip
    records = [{**record, "split": s} for s in (1, 2)]
    outputs = {"md": tmp_path / "t.md", "csv": tmp_path / "t.csv", "figure": tmp_path / "f.png"}
    table = write_analysis_report(records, "difficult_pairs", outputs)
    assert len(table) == 1 and table["splits"][0] == 2
    assert table["Few rate_std"][0] == 0.0
    assert "Difficult (%)" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_the_analysis_needs_a_run_that_tunes_difficult_pairs():
    """`analyses: [difficult_pairs]` in a config where no method has difficult_examples is a
    config error that says so; with one such method it is accepted."""
    config = yaml.safe_load(TINY.read_text())
    config["analyses"] = ["pie", "difficult_pairs"]
    with pytest.raises(ConfigError, match="analyses: difficult_pairs .* no method has"):
        normalize_config(config)
    config["methods"]["simclr"]["difficult_examples"] = {"margin": 0.1}
    assert "difficult_pairs" in normalize_config(config)["datasets"]["fmnist_lt"]["analyses"]


def test_counts_of_no_epoch_are_none_and_a_report_without_counts_says_what_to_do(tmp_path):
    """A model resumed at its end from a checkpoint older than the counts counted no epoch:
    it has no numbers (not zeros read as rates); a report with no counts at all is one line
    that says which folders to delete."""
    zeros = torch.zeros(4, dtype=torch.long)
    meta = {
        "epochs": 5,
        "sample_statistics": {
            "pretrain_indices": torch.arange(4),
            "difficult_examples": {
                "difficult_pairs": zeros, "candidate_pairs": zeros,
                "counted_epochs": torch.tensor(0),
            },
        },
    }  # fmt: skip
    assert sample_counts(meta, "model.pt") is None
    record = {"dataset": "toy", "method": "m", "split": 1, "seed": 0, "analyses": ["pie"]}
    outputs = {"md": tmp_path / "t.md", "csv": tmp_path / "t.csv", "figure": tmp_path / "f.png"}
    with pytest.raises(InputError, match="delete those runs' folders in results/checkpoints/"):
        write_analysis_report([record], "difficult_pairs", outputs)
    assert not (tmp_path / "t.md").exists()


def test_counts_of_fewer_epochs_than_the_run_warn(caplog):
    """A run resumed mid-way from a checkpoint older than the counts has counts of its last
    epochs only: they are used, with a warning that says how many epochs they cover."""
    meta = {
        "epochs": 5,
        "sample_statistics": {
            "pretrain_indices": torch.arange(2),
            "difficult_examples": {
                "difficult_pairs": torch.tensor([3, 4]), "candidate_pairs": torch.tensor([6, 6]),
                "counted_epochs": torch.tensor(2),
            },
        },
    }  # fmt: skip
    with caplog.at_level("WARNING", logger="sdclr.analyses.difficult_pairs"):
        counts = sample_counts(meta, "run/model.pt")
    assert counts is not None and counts["difficult_pairs"].tolist() == [3, 4]
    assert "run/model.pt: its difficult pairs were counted over the last 2 of 5 epochs" in (
        caplog.text
    )
