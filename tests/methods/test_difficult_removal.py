"""Removing difficult examples (arXiv 2501.01317) as a stage of its own: the sample selection
by hand, the readable record, the checks on its use, and how removal runs enter the config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from sdclr.data.pretraining_set import kept_indices
from sdclr.errors import ConfigError, InputError
from sdclr.io import write_json
from sdclr.methods.difficult_removal import difficulty_scores, removal_record, select_difficult
from sdclr.pipeline.config import job_settings, load_config, pretrain_settings

TINY = "tests/configs/tiny.yaml"


def unit(degrees):
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def test_scores_count_each_samples_pairs_in_the_band():
    # angles 0, 10, 60, 180 degrees: s01 = .985, s12 = .643, s02 = .5, s23 = -.5, ...
    features = torch.tensor([unit(0), unit(10), unit(60), unit(180)])
    # 12 ordered pairs; Sim_{1/6} = 2nd largest = .985 (s01 is above the band),
    # Sim_{1/2} = 6th largest = .5: the band holds s12 and s02 (both ways)
    scores = difficulty_scores(features, pos_high=1 / 6, pos_low=0.5)
    assert scores.tolist() == [1, 1, 2, 0]
    assert select_difficult(scores, 0.25).tolist() == [2]
    assert select_difficult(scores, 0.5).tolist() == [0, 2]  # the tie goes to position 0


def test_the_record_counts_per_class_by_d_i_frequency_and_keeps_the_rest():
    labels = np.array([0, 0, 0, 1, 1, 2, 9, 9])  # training-set labels (index 6, 7: not in D_i)
    split = {
        "split": 3,
        "num_classes": 3,
        "classes": ["a", "b", "c"],
        "indices": {"D_i": [0, 1, 2, 3, 4, 5]},
    }
    settings = {
        "method": "m",
        "selector": "simclr",
        "dataset": "toy",
        "remove": {"fraction": 0.5},
        "groups": {"kind": "thirds"},
    }
    record = removal_record(split, labels, np.array([1, 3, 5]), settings)
    assert record["sizes"] == {"D_i": 6, "removed": 3, "kept": 3}
    assert record["removed_indices"] == [1, 3, 5] and record["kept_indices"] == [0, 2, 4]
    assert [(c["name"], c["D_i"], c["removed"], c["kept"]) for c in record["per_class"]] == [
        ("a", 3, 1, 2),
        ("b", 2, 1, 1),
        ("c", 1, 1, 0),
    ]
    assert [c["group"] for c in record["per_class"]] == ["Many", "Medium", "Few"]
    assert record["per_class"][2]["removed_percent"] == 100.0


def test_a_record_of_another_run_or_split_is_refused(tmp_path):
    split = {"split": 1, "indices": {"D_i": [4, 5, 6]}}
    path = tmp_path / "r.json"
    write_json(path, {"method": "m", "split": 1, "kept_indices": [4, 6], "removed_indices": [5]})
    assert kept_indices(path, split, "m") == [4, 6]
    with pytest.raises(InputError, match="another run or split"):
        kept_indices(path, split, "other")
    with pytest.raises(InputError, match="not this split's D_i"):
        kept_indices(path, {"split": 1, "indices": {"D_i": [4, 5, 7]}}, "m")


def tiny_with(tmp_path, removal_methods, extra_methods=None):
    config = yaml.safe_load(open(TINY).read())
    config["methods"].update(extra_methods or {})
    config["removal_methods"] = removal_methods
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_removal_run_becomes_a_method_with_its_own_selection_settings(tmp_path):
    run = {"name": "rm", "algorithm": "simclr", "selector": "simclr", "remove": {"fraction": 0.2}}
    config = load_config(tiny_with(tmp_path, [run]))
    assert list(config["datasets"]["fmnist_lt"]["methods"]) == ["simclr", "sdclr", "rm"]
    selection = job_settings(config, "fmnist_lt", "removal/rm")
    assert selection["selector"] == "simclr"
    assert selection["remove"] == {"fraction": 0.2, "pos_high": 0.1, "pos_low": 0.5}
    spec = pretrain_settings(config, "fmnist_lt", "rm")["method"]
    assert spec["pretrain_set"] == "D_i - 20% difficult" and "remove_difficult" in spec
    assert "remove_difficult" not in pretrain_settings(config, "fmnist_lt", "simclr")["method"]
    with pytest.raises(ConfigError, match="no settings for job"):
        job_settings(config, "fmnist_lt", "removal/simclr")


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"name": "rm", "selector": "nope"}, "'nope' is not a method of this config"),
        ({"name": "rm", "selector": "rm"}, "cannot select its own difficult examples"),
        ({"name": "simclr", "selector": "sdclr"}, "is also a method"),
        ({"name": "rm", "selector": "simclr", "remove": {"pos_high": 0.6}}, "below pos_low"),
        ({"name": "rm", "selector": "simclr", "remove": {"fractoin": 0.1}}, "fractoin"),
        ({"name": "rm", "selector": "simclr", "pretrain_set": "D_b"}, "pretrains on D_i"),
        ({"name": "rm"}, "selector"),
    ],
)
def test_bad_removal_runs_are_config_errors_naming_the_key(tmp_path, run, message):
    run = {"algorithm": "simclr", **run}
    with pytest.raises(ConfigError, match=message):
        load_config(tiny_with(tmp_path, [run]))


def test_a_selector_must_not_remove_examples_itself(tmp_path):
    runs = [
        {"name": "a", "algorithm": "simclr", "selector": "simclr"},
        {"name": "b", "algorithm": "simclr", "selector": "a"},
    ]
    with pytest.raises(ConfigError, match="'a' removes examples itself"):
        load_config(tiny_with(tmp_path, runs))
