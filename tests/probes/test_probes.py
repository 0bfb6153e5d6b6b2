"""Probes beyond the linear one: weighted kNN, the mean classifier, k-shot linear probes; the
probe list in the config; per-split tables and headers that name what a table holds."""

import math

import pytest
import torch
import yaml

from sdclr.errors import ConfigError
from sdclr.pipeline.config import normalize_config
from sdclr.pipeline.paths import all_eval_files, table_files
from sdclr.probes import DEFAULT_PROBES, run_probe
from sdclr.probes.knn import knn_predict
from sdclr.probes.kshot import balanced_subset
from sdclr.probes.mean_classifier import class_means, mean_classifier_predict
from sdclr.reporting.tables import per_split_markdown, per_split_table, records_frame, to_markdown
from tests.helpers import saved_model, toy_dataset, toy_split
from tests.pipeline.test_config import ROOT

TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def test_knn_weights_and_votes_by_hand():
    """Query q = (1, 0); bank (1,0) class 0, (0.8, 0.6) class 1, (0.6, 0.8) class 1,
    (-1, 0) class 0. With k = 3 and T = 0.1 the votes are class 0: e^10, class 1:
    e^8 + e^6 > e^10? No: e^10 wins. With T = 1: class 0: e^1 = 2.72, class 1: e^0.8 +
    e^0.6 = 4.05, class 1 wins. k = 1 always picks the nearest (class 0)."""
    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    q = torch.tensor([[2.0, 0.0]])  # normalised inside: the norm does not matter
    assert math.exp(10) > math.exp(8) + math.exp(6)
    assert knn_predict(bank, labels, q, 2, k=3, temperature=0.1).tolist() == [0]
    assert math.exp(1) < math.exp(0.8) + math.exp(0.6)
    assert knn_predict(bank, labels, q, 2, k=3, temperature=1.0).tolist() == [1]
    assert knn_predict(bank, labels, q, 2, k=1, temperature=1.0).tolist() == [0]
    assert knn_predict(bank, labels, q, 2, k=200, temperature=1.0).tolist() == [1]  # all vote


def test_class_means_of_normalised_features_and_inner_product_prediction():
    """mu_c is the mean of the class's L2-normalised features; prediction = argmax <f, mu_c>."""
    features = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 5.0], [4.0, 3.0]])
    labels = torch.tensor([0, 0, 1, 1])
    means = class_means(features, labels, 3)
    expected = torch.tensor([[0.5, 0.5], [0.4, 0.8], [0.0, 0.0]])  # class 2: absent
    assert torch.allclose(means, expected)
    test = torch.tensor([[1.0, 0.1], [0.1, 1.0], [10.0, 9.0]])
    # <(1, .1), mu> = .55, .48 -> 0; <(.1, 1), mu> = .55, .84 -> 1; <(10, 9)> = 9.5, 11.2 -> 1
    assert mean_classifier_predict(means, test).tolist() == [0, 1, 1]


def test_kshot_subsets_are_balanced_seeded_and_differ_between_subsets():
    """k images of every class, the same for the same generator seed, another draw for
    another seed; a class with fewer than k images is a config error naming the fix."""
    labels = torch.arange(4).repeat_interleave(10)
    a = balanced_subset(labels, 3, 4, torch.Generator().manual_seed(1))
    b = balanced_subset(labels, 3, 4, torch.Generator().manual_seed(1))
    c = balanced_subset(labels, 3, 4, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.bincount(labels[a], minlength=4).tolist() == [3, 3, 3, 3]
    assert len(set(a.tolist())) == 12
    with pytest.raises(ConfigError, match="kshot_11: class 0 has only 10 images"):
        balanced_subset(labels, 11, 4, torch.Generator().manual_seed(1))


@pytest.mark.parametrize("probe", ["knn", "mean", "mean_fewshot", "kshot_100"])
def test_every_probe_runs_on_a_pretrained_model_and_fills_a_record(tmp_path, probe):
    """Each registered probe turns a saved model into an evaluation record with per-class
    accuracy and the group summary. (The toy classes differ in brightness, which feature
    normalisation removes, so kNN and the mean classifier are not expected above chance here;
    their arithmetic is checked by hand above.)"""
    dataset = toy_dataset()
    split = toy_split(dataset)
    model = tmp_path / "model.pt"
    saved_model(model)
    settings = {
        "dataset": "toy",
        "probe": probe,
        f"{probe}_probe": {"epochs": 3, "subsets": 2, "lr": 1.0} if probe == "kshot_100" else {},
        "groups": {"kind": "thirds"},
        "crop_size": 12,
        "device": "cpu",
    }
    if probe == "kshot_100":
        with pytest.raises(ConfigError, match="fewer than 100"):  # the toy pool: 20 per class
            run_probe(model, dataset, split, settings, 0, torch.device("cpu"), progress=False)
        return
    record = run_probe(model, dataset, split, settings, 0, torch.device("cpu"), progress=False)
    assert record["probe"] == probe and len(record["per_class_accuracy"]) == 4
    assert record["probe_train_size"] == len(
        split["indices"]["S_b" if "fewshot" in probe else "train"]
    )
    assert set(record["summary"]) == {"Many", "Medium", "Few", "Std", "All"}
    assert 0 <= record["summary"]["All"] <= 100


def test_the_probe_list_is_config_and_defaults_to_the_papers():
    """`probes:` chooses the probes (default the paper's linear and few-shot); each probe's
    evaluation files and tables follow the list; an unknown probe is a config error."""
    config = yaml.safe_load(TINY.read_text())
    default = normalize_config(config)
    assert default["datasets"]["fmnist_lt"]["probes"] == list(DEFAULT_PROBES)
    config["probes"] = ["linear", "knn", "mean"]
    chosen = normalize_config(config)
    files = all_eval_files(chosen)
    assert {f.rsplit("/", 1)[1] for f in files} == {"linear.json", "knn.json", "mean.json"}
    assert "results/tables/knn_splits.md" in table_files(chosen)
    assert not any("fewshot" in f for f in table_files(chosen))
    config["probes"] = ["linear", "pie"]
    with pytest.raises(ConfigError, match=r"probes\.1: 'pie' is not a choice"):
        normalize_config(config)


def _records():
    records = []
    for method, pretrain_set, base in (("simclr", "D_i", 70), ("simclr_balanced", "D_b", 80)):
        for split in (1, 2):
            summary = {
                "Many": base + split,
                "Medium": base,
                "Few": base - 10,
                "Std": 5,
                "All": base,
            }
            records.append(
                {
                    "dataset": "toy",
                    "method": method,
                    "split": split,
                    "seed": 0,
                    "probe": "knn",
                    "pretrain_set": pretrain_set,
                    "summary": summary,
                }
            )
    return records


def test_per_split_tables_and_headers_name_probe_train_set_and_pretraining_set():
    """The per-split table lists every split's numbers; every table's title names the probe
    and its train set, and a column names each row's pretraining set."""
    frame = records_frame(_records())
    splits = per_split_table(frame, [("toy", "simclr"), ("toy", "simclr_balanced")])
    assert splits[["method", "split", "Many"]].values.tolist() == [
        ["simclr", 1, 71.0],
        ["simclr", 2, 72.0],
        ["simclr_balanced", 1, 81.0],
        ["simclr_balanced", 2, 82.0],
    ]
    md = per_split_markdown(splits, "knn", titles=["Weighted kNN (k = 50)"])  # the records'
    assert md.startswith(
        "## Weighted kNN (k = 50), trained on D_b pool (memory bank) (%, per split)"
    )
    assert per_split_markdown(splits, "knn").startswith("## Weighted kNN, trained on D_b pool")
    from sdclr.probes import get_probe
    from sdclr.probes.knn import KnnConfig

    assert get_probe("knn").title_of(KnnConfig(k=7)) == "Weighted kNN (k = 7)"  # from settings
    assert "| toy | simclr_balanced | D_b | 2 | 82.00 | 80.00 | 70.00 | 5.00 | 80.00 |" in md
    from sdclr.reporting.tables import aggregate

    table = to_markdown(aggregate(frame), "knn")
    assert "| Dataset | Method | Pretrained on | Many |" in table
    assert "| toy | simclr | D_i | 71.50 ± 0.50 |" in table
