"""The colt_resampling analysis: where a COLT run's pool images went and its samples'
tailness, by D_i frequency, computed by hand on a small record, read from a run's files, and
drawn; a config without COLT runs cannot ask for it."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from sdclr.analyses import get_analysis
from sdclr.analyses.colt_resampling import colt_resampling_analysis, pool_images_by_class
from sdclr.errors import ConfigError
from sdclr.io import write_json
from sdclr.methods.colt import RECORD_NAME
from sdclr.pipeline.config import normalize_config
from tests.helpers import TINY

#: Two resamplings of two clusters each: cluster (pool images, [[class, members], ...]).
RESAMPLINGS = [
    {"before_epoch": 2, "clusters": [
        {"pool_images": 9, "top_classes": [[2, 5], [0, 1]]},
        {"pool_images": 3, "top_classes": [[0, 6]]},
    ]},
    {"before_epoch": 4, "clusters": [
        {"pool_images": 6, "top_classes": [[2, 4]]},
        {"pool_images": 6, "top_classes": [[1, 3], [2, 3]]},
    ]},
]  # fmt: skip
D_I = [6, 3, 2]  # class 0 Many, 1 Medium, 2 Few
GROUPS = {"Many": [0], "Medium": [1], "Few": [2]}
CLASSES = np.array([0] * 6 + [1] * 3 + [2] * 2)
TAILNESS = np.array([0.1] * 6 + [0.2, 0.3, 0.4] + [0.5, 0.7])


def test_pool_images_go_to_each_clusters_dominant_class():
    """Class 2 dominates clusters of 9 and 6 images (15), class 0 one of 3, class 1 one of 6."""
    assert pool_images_by_class(RESAMPLINGS, 3).tolist() == [3.0, 6.0, 15.0]


def test_shares_and_tailness_by_class_and_group_by_hand():
    """Of 24 pool images the Few class took 15 (62.5 %), Medium 6 (25 %), Many 3 (12.5 %); the
    mean tailness is 0.1, 0.3 and 0.6; classes listed most frequent first."""
    record = colt_resampling_analysis(TAILNESS, CLASSES, RESAMPLINGS, D_I, GROUPS)
    assert record["resamplings"] == 2 and record["pool_images"] == 24
    assert [c["class"] for c in record["per_class"]] == [0, 1, 2]
    assert [c["pool_percent"] for c in record["per_class"]] == [12.5, 25.0, 62.5]
    assert [c["tailness"] for c in record["per_class"]] == pytest.approx([0.1, 0.3, 0.6])
    summary = record["summary"]
    assert summary["Few pool %"] == 62.5 and summary["Many pool %"] == 12.5
    assert summary["Few tailness"] == pytest.approx(0.6)
    assert summary["Medium tailness"] == pytest.approx(0.3)


def test_a_runs_files_give_its_record_and_a_run_without_colt_none(tmp_path):
    """compute reads the tailness from model.pt's metadata and the resamplings from the record
    beside it; a model without COLT's statistics has no part in the record."""
    analysis = get_analysis("colt_resampling")
    write_json(tmp_path / RECORD_NAME, {"budget": 24, "resamplings": RESAMPLINGS})
    positions = np.array([10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])  # pretraining position -> index
    labels = np.zeros(11, dtype=np.int64)
    labels[positions] = CLASSES
    meta = {"sample_statistics": {
        "pretrain_indices": torch.as_tensor(positions),
        "colt": {"tail_score": torch.as_tensor(TAILNESS, dtype=torch.float32)},
    }}  # fmt: skip
    inputs = SimpleNamespace(
        dataset=SimpleNamespace(train_labels=torch.as_tensor(labels)),
        split={"counts": {"D_i": D_I}},
    )
    context = SimpleNamespace(
        meta=meta, model_path=str(tmp_path / "model.pt"), inputs=inputs, groups=GROUPS
    )
    record = analysis.compute(context)
    assert record["summary"]["Few pool %"] == 62.5
    assert record["summary"]["Few tailness"] == pytest.approx(0.6)
    assert analysis.compute(SimpleNamespace(**{**vars(context), "meta": {}})) is None


def test_the_figure_is_drawn_from_the_records(tmp_path):
    analysis = get_analysis("colt_resampling")
    part = colt_resampling_analysis(TAILNESS, CLASSES, RESAMPLINGS, D_I, GROUPS)
    records = [
        {"dataset": "toy", "method": "sdclr_colt", "split": s, "colt_resampling": part}
        for s in (1, 2)
    ]
    analysis.plot(records, tmp_path / "colt.png", None)
    assert (tmp_path / "colt.png").stat().st_size > 10_000


def test_a_config_without_colt_runs_cannot_ask_for_it():
    config = yaml.safe_load(TINY.read_text())
    bad = copy.deepcopy(config)
    bad["analyses"] = ["pie", "colt_resampling"]
    with pytest.raises(ConfigError, match="colt_resampling reads COLT runs"):
        normalize_config(bad)
