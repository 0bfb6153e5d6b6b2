"""The analyses of one pretrained model: PIE rates (``pie.py``), class-mean geometry
(``geometry.py``) and, for a run that tunes difficult pairs, which classes they re-weighted
(``difficult_pairs.py``), computed by one job from one feature pass.

The dense network's features of the balanced train pool and of the test set are computed once;
the geometry reads the test features, the PIE analysis fits its probe on the pool features,
then prunes the network and computes the pool and test features once more (after re-estimating
BatchNorm on the pretraining images where the method has no pruned branch). Which analyses run
is the config's ``analyses`` list; their settings are a dataset's ``analysis`` section. The
record (``sdclr.pipeline.paths.ANALYSIS``) is a JSON file with class names and D_i counts next to
every
per-class number.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Literal

import torch

from sdclr.analyses.difficult_pairs import difficult_pairs_analysis, sample_counts
from sdclr.analyses.geometry import class_mean_cosines, frequency_order, geometry_summary
from sdclr.analyses.pie import has_pruned_branch, pie_rates, prune_for_analysis, reestimate_bn
from sdclr.groups import class_groups, group_summary
from sdclr.probes.base import ProbeInputs
from sdclr.probes.features import extract_features, load_model, per_class_accuracy
from sdclr.probes.knn import KnnConfig, knn_predict
from sdclr.probes.mean_classifier import class_means, mean_classifier_predict
from sdclr.settings import load, setting

log = logging.getLogger(__name__)

#: The analyses a config can list, in report order: the one home of this list.
ANALYSES = ("pie", "geometry", "difficult_pairs")
#: What a config runs when it names none: the two every model has.
DEFAULT_ANALYSES = ("pie", "geometry")
ANALYSIS_TITLES = {
    "pie": "PIE rate: test images where the pruned and the dense network disagree",
    "geometry": "Class-mean geometry of the normalised test features",
    "difficult_pairs": "Where the difficult pairs fall: each group's share of the margin and "
    "temperature, relative to the run's",
}


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """The PIE and geometry analyses (config key ``analysis`` of a dataset)."""

    probe: Literal["mean", "knn"] = setting(
        "mean",
        doc="The non-trained probe PIE compares the dense and pruned network with: the mean "
        "classifier of the balanced pool, or weighted kNN (settings: knn_probe).",
    )
    prune_ratio: float = setting(
        0.9,
        doc="Prune ratio for a method without its own prune_ratio hyperparameter (SimCLR); "
        "SDCLR is pruned at its own.",
        minimum=0,
        exclusive_maximum=1,
    )
    bn_statistics: Literal["reestimate", "dense"] = setting(
        "reestimate",
        doc="BatchNorm statistics of the pruned network of a method without a pruned branch: "
        "re-estimated on its pretraining images, or the dense ones as they are.",
    )
    bn_batch_size: int = setting(256, doc="Batch size of the BN re-estimation.", minimum=2)


def _classify(
    config: AnalysisConfig,
    knn: KnnConfig,
    bank: tuple[torch.Tensor, torch.Tensor],
    queries: torch.Tensor,
    num_classes: int,
) -> torch.Tensor:
    """The probe's test predictions, fitted on ``bank`` (features, labels)."""
    if config.probe == "knn":
        return knn_predict(bank[0], bank[1], queries, num_classes, knn.k, knn.temperature)
    return mean_classifier_predict(class_means(bank[0], bank[1], num_classes), queries)


def _geometry(test: torch.Tensor, inputs: ProbeInputs, split: dict, groups: dict) -> dict:
    cosines, spread = class_mean_cosines(
        test, inputs.test_labels.to(test.device), inputs.num_classes
    )
    order = frequency_order(split["counts"]["D_i"])
    ordered = cosines[order][:, order]
    return {
        "class_order": order,
        "cosine_matrix": [[round(float(v), 6) for v in row] for row in ordered],
        "summary": geometry_summary(cosines, spread, groups),
    }


def _bn_subset(method: dict[str, Any]) -> str:
    """The split subset a single-BN network's statistics are re-estimated on: its pretraining
    set; a removal run (which trained on D_i less its difficult examples) uses D_i, the set it
    was cut from (its kept indices are in the removal record, not an input of this job)."""
    if "remove_difficult" in method:
        return "D_i"
    return method.get("pretrain_set", "D_i")


def _pie(
    model: Any,
    method: Any,
    meta: dict,
    inputs: ProbeInputs,
    dense: tuple[torch.Tensor, torch.Tensor],
    settings: dict[str, Any],
    groups: dict,
) -> dict[str, Any]:
    config = load(AnalysisConfig, settings.get("analysis_config"), "analysis")
    knn = load(KnnConfig, settings.get("knn_config"), "knn_probe")
    pool_images, pool_labels = inputs.subset("train")
    pool_labels = pool_labels.to(inputs.device)
    num_classes = inputs.num_classes
    dense_pred = _classify(config, knn, (dense[0], pool_labels), dense[1], num_classes)
    own_ratio = getattr(method.hparams, "prune_ratio", None)
    ratio = config.prune_ratio if own_ratio is None else own_ratio
    masked = prune_for_analysis(model, ratio)
    if has_pruned_branch(model):
        bn = "pruned branch"
    elif config.bn_statistics == "reestimate":
        pretrain_set = _bn_subset(meta["method"])
        images, _ = inputs.subset(pretrain_set)
        reestimate_bn(model.backbone, images, inputs.device, config.bn_batch_size)
        bn = f"re-estimated on {pretrain_set}"
    else:
        bn = "dense"
    pruned_pool = extract_features(model.backbone, pool_images, inputs.device)
    pruned_test = extract_features(model.backbone, inputs.test_images, inputs.device)
    pruned_pred = _classify(config, knn, (pruned_pool, pool_labels), pruned_test, num_classes)
    labels = inputs.test_labels
    rates = pie_rates(dense_pred, pruned_pred, labels, num_classes)
    dense_acc = per_class_accuracy(dense_pred, labels, num_classes)
    pruned_acc = per_class_accuracy(pruned_pred, labels, num_classes)
    return {
        "probe": config.probe,
        "prune_ratio": ratio,
        "prune_ratio_from": "method" if own_ratio is not None else "analysis.prune_ratio",
        "masked_weights": masked,
        "batchnorm": bn,
        "summary": group_summary(rates, groups),
        "per_class_pie_rate": rates,
        "dense_accuracy": group_summary(dense_acc, groups),
        "pruned_accuracy": group_summary(pruned_acc, groups),
        "per_class_dense_accuracy": [float(a) for a in dense_acc],
        "per_class_pruned_accuracy": [float(a) for a in pruned_acc],
    }


def run_analysis(
    model_path: str | Path,
    dataset: Any,
    split: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    device: torch.device,
) -> dict[str, Any]:
    """Run the ``settings["analyses"]`` of one pretrained model; return its analysis record."""
    model, method, meta = load_model(model_path)
    model.to(device)
    crop = settings.get("crop_size") or dataset.train_images.shape[-1]
    inputs = ProbeInputs(model.backbone, dataset, split, crop, seed, device, progress=False)
    groups = class_groups(split["counts"]["D_i"], settings["groups"])
    test = extract_features(model.backbone, inputs.test_images, device)
    record: dict[str, Any] = {
        "dataset": settings["dataset"],
        "method": meta["method"]["name"],
        "algorithm": meta["algorithm"],
        "pretrain_set": meta["method"].get("pretrain_set", "D_i"),
        "split": split["split"],
        "seed": seed,
        "analyses": list(settings["analyses"]),
        "classes": list(split.get("classes") or dataset.classes),
        "train_counts": list(split["counts"]["D_i"]),
        "test_counts": torch.bincount(inputs.test_labels, minlength=inputs.num_classes).tolist(),
        "groups": groups,
    }
    if "geometry" in settings["analyses"]:
        record["geometry"] = _geometry(test, inputs, split, groups)
    counts = (
        sample_counts(meta, str(model_path)) if "difficult_pairs" in settings["analyses"] else None
    )
    if counts is not None:  # only runs that tune difficult pairs have them
        labels = dataset.train_labels.numpy()
        part = difficult_pairs_analysis(counts, labels, split["counts"]["D_i"], groups)
        record["difficult_pairs"] = part
        log.info(
            "difficult pairs: %s", ", ".join(f"{k} {v:.2f}" for k, v in part["summary"].items())
        )
    if "pie" in settings["analyses"]:  # last: it prunes the model
        pool = extract_features(model.backbone, inputs.subset("train")[0], device)
        record["pie"] = _pie(model, method, meta, inputs, (pool, test), settings, groups)
        log.info(
            "PIE rate: %s", ", ".join(f"{k} {v:.2f}" for k, v in record["pie"]["summary"].items())
        )
    return record
