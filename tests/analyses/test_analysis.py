"""The per-model analyses: PIE rates of the pruned vs the dense network and the class-mean
geometry, checked against hand calculations; the pruning they use; their config and tables."""

import copy
import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from sdclr.analyses.geometry import (
    class_mean_cosines,
    frequency_order,
    geometry_summary,
    mean_pairwise_cosine,
)
from sdclr.analyses.pie import pie_rates, prune_for_analysis, reestimate_bn
from sdclr.analyses.run import run_analysis
from sdclr.errors import ConfigError
from sdclr.methods import create_method
from sdclr.models import ModelConfig, global_magnitude_prune, masked_convs
from sdclr.models.dual_bn import PRUNED, DualBatchNorm
from sdclr.pipeline.config import job_settings, normalize_config
from sdclr.pipeline.paths import analysis_files, analysis_report_files
from sdclr.reporting.analyses import aggregate_analysis, analysis_frame, analysis_markdown
from sdclr.torch_files import torch_save
from tests.helpers import toy_dataset, toy_split
from tests.pipeline.test_config import ROOT

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
R2 = 1 / math.sqrt(2)


def test_pie_rate_is_the_share_of_a_class_where_dense_and_pruned_disagree():
    """Class 0: 1 of 2 images disagree (50 %); class 1: 1 of 3 (33.3 %); class 2: none (0 %);
    class 3 has no test image (NaN)."""
    dense = torch.tensor([0, 1, 1, 2, 1, 2])
    pruned = torch.tensor([0, 0, 1, 1, 1, 2])
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    rates = pie_rates(dense, pruned, labels, 4)
    assert rates[:3] == pytest.approx([50.0, 100 / 3, 0.0]) and math.isnan(rates[3])


def test_class_mean_cosines_spread_and_group_means_by_hand():
    """Class 0 = {(2, 0), (0, 3)} normalises to (1, 0), (0, 1): mean (.5, .5), direction
    (1, 1)/sqrt 2; class 1 = {(3, 0)}: (1, 0); class 2 = {(0, 5)}: (0, 1). Cosines: 0-1 and
    0-2 = 1/sqrt 2, 1-2 = 0. Spread: class 0's images are at cosine 1/sqrt 2 from their mean,
    so 1 - 1/sqrt 2 each; classes 1 and 2 have 0; the mean over classes is (1 - 1/sqrt 2) / 3.
    (Uncentred cosines; the centred ones are checked below.)"""
    features = torch.tensor([[2.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 1, 2])
    cosines, spread = class_mean_cosines(features, labels, 3, centred=False)
    expected = np.array([[1, R2, R2], [R2, 1, 0], [R2, 0, 1]])
    assert np.allclose(cosines, expected, atol=1e-6)
    assert spread == pytest.approx((1 - R2) / 3, abs=1e-6)
    assert mean_pairwise_cosine(cosines, [0, 2]) == pytest.approx(R2)
    assert math.isnan(mean_pairwise_cosine(cosines, [1]))  # one class: no pair
    summary = geometry_summary(cosines, spread, {"Many": [1], "Medium": [], "Few": [0, 2]})
    assert summary["Few-Few cosine"] == pytest.approx(R2)
    assert math.isnan(summary["Many-Many cosine"])
    assert summary["All-pairs cosine"] == pytest.approx((R2 + R2 + 0) / 3)
    assert summary["Within-class spread"] == pytest.approx((1 - R2) / 3, abs=1e-6)
    assert frequency_order([5, 9, 1, 9]) == [1, 3, 0, 2]  # ties by class id


def test_centred_class_mean_cosines_by_hand():
    """Class 0 = two images along e1, class 1 = e2, class 2 = e3 (norms do not matter): raw
    cosines all 0. The global mean of the four normalised features is mu_G = (1/2, 1/4, 1/4);
    centred means c0 = (1/2, -1/4, -1/4), c1 = (-1/2, 3/4, -1/4), c2 = (-1/2, -1/4, 3/4), so
    |c0|^2 = 3/8, |c1|^2 = |c2|^2 = 7/8, <c0, c1> = <c0, c2> = -3/8, <c1, c2> = -1/8:
    cos01 = cos02 = -3/8 / sqrt(3/8 * 7/8) = -sqrt(3/7), cos12 = -1/7. Equal counts would give
    the simplex's -1/(C - 1) = -1/2 for every pair. The spread is the uncentred one (0 here)."""
    features = torch.tensor([[2.0, 0, 0], [1.0, 0, 0], [0, 3.0, 0], [0, 0, 4.0]])
    labels = torch.tensor([0, 0, 1, 2])
    raw, _ = class_mean_cosines(features, labels, 3, centred=False)
    assert np.allclose(raw, np.eye(3), atol=1e-6)
    cosines, spread = class_mean_cosines(features, labels, 3)  # centred by default
    a, b = -math.sqrt(3 / 7), -1 / 7
    assert np.allclose(cosines, [[1, a, a], [a, 1, b], [a, b, 1]], atol=1e-6)
    assert spread == pytest.approx(0.0, abs=1e-6)
    balanced, _ = class_mean_cosines(features[1:], labels[1:], 3)
    off_diagonal = balanced[~np.eye(3, dtype=bool)]
    assert np.allclose(off_diagonal, -1 / 2, atol=1e-6)
    absent, _ = class_mean_cosines(features, labels, 4)  # class 3 has no image: NaN
    assert np.isnan(absent[3]).all() and np.allclose(absent[:3, :3], cosines, atol=1e-6)


def test_bn_reestimation_takes_the_statistics_of_the_given_images():
    """Running mean and (unbiased) variance after re-estimation are the averages of the batch
    statistics of the images (two equal batches: the overall mean); eval mode after."""
    bn = nn.BatchNorm2d(1)
    bn.running_mean.fill_(7.0)
    images = torch.tensor([0, 255, 51, 102], dtype=torch.uint8).view(4, 1, 1, 1)
    reestimate_bn(nn.Sequential(bn), images, torch.device("cpu"), batch_size=2)
    x = images.float().view(2, 2) / 255  # the two batches
    assert bn.running_mean.item() == pytest.approx(float(x.mean()))
    assert bn.running_var.item() == pytest.approx(float(x.var(dim=1, unbiased=True).mean()))
    assert not bn.training and bn.momentum == 0.1


def _saved(path, algorithm, hyperparameters):
    torch.manual_seed(0)
    method = create_method(algorithm, hyperparameters)
    config = ModelConfig(width=0.0625, projection_dim=8)
    model = method.build_model(config, in_channels=1)
    spec = {"name": algorithm, "algorithm": algorithm, "pretrain_set": "D_i"}
    torch_save(
        path,
        {
            "state_dict": model.state_dict(),
            "algorithm": algorithm,
            "method": {**spec, "hyperparameters": hyperparameters},
            "model_config": vars(config),
            "in_channels": 1,
        },
    )
    return model


def test_pruning_is_the_shared_global_magnitude_mask_on_the_pruned_branch():
    """prune_for_analysis masks exactly the ceil(p N) smallest |w| over all convs (the mask
    global_magnitude_prune gives), and switches to the pruned branch (masked convs, SDCLR's
    pruned BN)."""
    model = create_method("sdclr", {}).build_model(ModelConfig(width=0.0625), in_channels=1)
    reference = copy.deepcopy(model)
    global_magnitude_prune(reference, 0.6)
    weights = torch.cat([c.weight.abs().flatten() for c in masked_convs(model)])
    masked = prune_for_analysis(model, 0.6)
    assert masked == math.ceil(0.6 * weights.numel())
    mask = torch.cat([c.weight_mask.flatten() for c in masked_convs(model)])
    assert torch.equal(mask, torch.cat([c.weight_mask.flatten() for c in masked_convs(reference)]))
    assert int((mask == 0).sum()) == masked
    assert weights[mask == 0].max() <= weights[mask == 1].min()
    assert all(c.use_mask for c in masked_convs(model))
    assert all(m.active == PRUNED for m in model.modules() if isinstance(m, DualBatchNorm))


@pytest.mark.parametrize(
    ("algorithm", "hyperparameters", "ratio", "bn"),
    [
        ("sdclr", {"prune_ratio": 0.5}, 0.5, "pruned branch"),  # its own ratio, not 0.7
        ("simclr", {}, 0.7, "re-estimated on D_i"),  # no ratio of its own: the setting
    ],
)
def test_analysis_record_prunes_at_the_methods_ratio(
    tmp_path, algorithm, hyperparameters, ratio, bn
):
    """One job fills PIE and geometry: SDCLR is pruned at its own prune_ratio with its pruned
    BN, SimCLR at the analysis setting with BN re-estimated on D_i; every per-class list comes
    with class names and D_i counts."""
    dataset, model_path = toy_dataset(), tmp_path / "model.pt"
    split = toy_split(dataset)
    split["classes"] = list(dataset.classes)
    model = _saved(model_path, algorithm, hyperparameters)
    settings = {
        "dataset": "toy",
        "analyses": ["pie", "geometry"],
        "pie_analysis": {"prune_ratio": 0.7},
        "knn_probe": {},
        "groups": {"kind": "thirds"},
        "crop_size": 12,
    }
    record = run_analysis(model_path, dataset, split, settings, 0, torch.device("cpu"))
    n = sum(c.weight.numel() for c in masked_convs(model))
    assert record["pie"]["prune_ratio"] == ratio and record["pie"]["batchnorm"] == bn
    assert record["pie"]["masked_weights"] == math.ceil(ratio * n)
    assert record["classes"] == ["c0", "c1", "c2", "c3"]
    assert record["train_counts"] == split["counts"]["D_i"]
    rates = record["pie"]["per_class_pie_rate"]
    assert len(rates) == 4 and all(0 <= r <= 100 for r in rates)
    assert set(record["pie"]["summary"]) >= {"Many", "Medium", "Few", "All"}
    matrix = np.asarray(record["geometry"]["cosine_matrix"])
    assert matrix.shape == (4, 4) and np.allclose(np.diag(matrix), 1, atol=1e-5)
    assert record["geometry"]["class_order"] == frequency_order(split["counts"]["D_i"])
    only = run_analysis(
        model_path, dataset, split, {**settings, "analyses": ["geometry"]}, 0, torch.device("cpu")
    )
    assert "pie" not in only  # geometry alone: the same numbers, no pruning
    assert only["geometry"]["cosine_matrix"] == record["geometry"]["cosine_matrix"]
    geometry = record["geometry"]  # centred by default; the uncentred numbers kept beside
    assert geometry["centred"] and set(geometry["summary_uncentred"]) == set(geometry["summary"])
    assert np.asarray(geometry["cosine_matrix_uncentred"]).shape == (4, 4)
    raw = run_analysis(
        model_path, dataset, split,
        {**settings, "analyses": ["geometry"], "geometry_analysis": {"centre_class_means": False}},
        0, torch.device("cpu"),
    )["geometry"]  # fmt: skip
    assert not raw["centred"] and raw["cosine_matrix"] == geometry["cosine_matrix_uncentred"]
    assert raw["cosine_matrix_centred"] == geometry["cosine_matrix"]


def test_analyses_are_config_with_both_on_by_default():
    """`analyses:` chooses them (default: both); `[]` runs none; an unknown one and a bad
    analysis setting are config errors naming the key; the job's settings carry them."""
    config = yaml.safe_load(TINY.read_text())
    assert config["analyses"] == ["pie", "geometry"]
    del config["analyses"]
    default = normalize_config(config)
    assert default["datasets"]["fmnist_lt"]["analyses"] == ["pie", "geometry"]
    assert len(analysis_files(default)) == 4  # 2 methods x 2 splits, one job each
    assert "results/figures/pie.png" in analysis_report_files(default)
    settings = job_settings(default, "fmnist_lt", "analysis")
    assert settings["analyses"] == ["pie", "geometry"]
    assert settings["pie_analysis"] == {"probe": "mean", "prune_ratio": 0.9}
    assert settings["knn_probe"] == {}  # PIE's kNN option reads the kNN probe's settings
    off = normalize_config({**config, "analyses": []})
    assert analysis_files(off) == [] and analysis_report_files(off) == []
    with pytest.raises(ConfigError, match=r"analyses\.0: 'pies' is not a choice"):
        normalize_config({**config, "analyses": ["pies"]})
    config["datasets"]["fmnist_lt"]["pie_analysis"] = {"probe": "linear"}
    with pytest.raises(ConfigError, match="pie_analysis.probe"):
        normalize_config(config)


def _record(method, split, many, few, few_few):
    return {
        "dataset": "toy",
        "method": method,
        "split": split,
        "seed": 0,
        "pretrain_set": "D_i",
        "analyses": ["pie", "geometry"],
        "pie": {
            "probe": "mean",
            "prune_ratio": 0.9,
            "batchnorm": "pruned branch",
            "summary": {"Many": many, "Medium": 10.0, "Few": few, "All": (many + few) / 2},
        },
        "geometry": {
            "summary": {
                "Few-Few cosine": few_few,
                "Medium-Medium cosine": 0.5,
                "Many-Many cosine": 0.25,
                "All-pairs cosine": 0.4,
                "Within-class spread": 0.3,
            }
        },
    }


def test_analysis_tables_are_mean_and_population_std_over_splits():
    """PIE Few over splits 20 and 30: 25 ± 5; Few-Few cosine 0.6 and 0.8: 0.700 ± 0.100."""
    records = [_record("sdclr", 1, 5.0, 20.0, 0.6), _record("sdclr", 2, 7.0, 30.0, 0.8)]
    pie = aggregate_analysis(analysis_frame(records, "pie"), "pie")
    assert pie.loc[0, "Few_mean"] == 25 and pie.loc[0, "Few_std"] == 5
    md = analysis_markdown(pie, "pie", {"datasets": {}, "methods": {"sdclr": "SDCLR"}})
    assert "| toy | SDCLR | D_i | mean | 0.9 | pruned branch | 6.00 ± 1.00 |" in md
    assert "| 10.00 ± 0.00 | 25.00 ± 5.00 | 15.50 ± 3.00 | 2 |" in md
    geometry = aggregate_analysis(analysis_frame(records, "geometry"), "geometry")
    md = analysis_markdown(geometry, "geometry")
    assert "| toy | sdclr | D_i | 0.700 ± 0.100 | 0.500 ± 0.000 | 0.250 ± 0.000 |" in md


def test_bn_statistics_are_re_estimated_on_the_set_a_run_trained_on():
    """A single-BN network's statistics come from its pretraining set (D_i, or D_b for the
    balanced control); a removal run, whose pretraining set is D_i less its difficult examples,
    uses D_i (the demo's removal run once failed here on its descriptive set name)."""
    from sdclr.analyses.pie import _bn_subset

    assert _bn_subset({"pretrain_set": "D_b"}) == "D_b"
    assert _bn_subset({}) == "D_i"
    removal = {"pretrain_set": "D_i - 10% difficult", "remove_difficult": {"fraction": 0.1}}
    assert _bn_subset(removal) == "D_i"
