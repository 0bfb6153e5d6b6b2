"""Pruning Identified Exemplars (PIEs): the test images on which a pruned network and its dense
parent disagree (Hooker, Courville, Clark, Dauphin, Frome, "What Do Compressed Deep Neural
Networks Forget?", 2019; the motivation of SDCLR, Jiang et al. 2021, whose claim is that PIEs
concentrate in the tail classes).

For one pretrained model: the dense network f and the pruned network f_p (the same weights
with the ``ceil(p * N)`` smallest-magnitude conv weights masked, by the pipeline's one global
magnitude pruning, :func:`sdclr.models.global_magnitude_prune`) are each probed with the same
non-trained probe fitted on their own features of the balanced train pool (the mean classifier
by default, or weighted kNN); with y(x) and y_p(x) their test predictions, the PIE rate of
class c is::

    PIE_c = 100 * |{x in test_c : y(x) != y_p(x)}| / |test_c|     (percent)

Choices the papers leave open, made here:

- The mask is recomputed from the *final* weights at the method's own ``prune_ratio`` (SDCLR's
  saved mask is the one of its last epoch's start); a method without one is pruned at the
  analysis setting ``prune_ratio`` (default 0.9, the paper's CIFAR ratio). The pruned network
  is not fine-tuned (Hooker et al. fine-tune while pruning; a pretrained SDCLR model's pruned
  branch is what SDCLR trains against, and we measure that branch).
- BatchNorm of the pruned network: SDCLR (and any method with dual BN) uses its pruned branch's
  own BatchNorm layers, as in its training. A method with one set of BN layers (SimCLR) has no
  statistics for its pruned network; ``bn_statistics: reestimate`` (default) recomputes the
  running means and variances of the backbone's BN layers from the pruned network's
  activations on the model's pretraining images (D_i, or D_b for a balanced control;
  centre crops, no augmentation, a cumulative average over batches) while keeping the dense
  affine parameters (SDCLR's pruned statistics, too, come from the pruned weights on D_i,
  though from augmented views and next to affine parameters of its own). ``dense`` keeps the
  dense statistics as they are: the pruned activations are then normalised with another
  network's statistics, a mismatch SDCLR's pruned branch does not have, and the rate mixes it
  with what pruning forgets (on the demo's SimCLR model of split 1, dense statistics raise the
  All PIE rate from 18 % to 31 % and lower the pruned network's mean-classifier accuracy from
  62 % to 51 %).
- The probe is fitted separately on each network's own pool features (class means, or the kNN
  memory bank), so a disagreement is a change in what the representation supports, not a
  classifier applied to features it was not fitted on. The default is the mean classifier (no
  hyperparameters; kNN's k and T come from ``knn_probe``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import matplotlib.pyplot as plt
import torch
from torch import nn

from sdclr.analyses.base import Analysis, AnalysisContext, by_dataset_method, register
from sdclr.groups import group_summary
from sdclr.io import save_figure
from sdclr.models import global_magnitude_prune, set_branch
from sdclr.models.dual_bn import DualBatchNorm
from sdclr.plots import label_of, plot_per_class_vs_frequency
from sdclr.probes.base import ProbeInputs
from sdclr.probes.features import extract_features, per_class_accuracy, to_float
from sdclr.probes.knn import KnnConfig, knn_predict
from sdclr.probes.mean_classifier import class_means, mean_classifier_predict
from sdclr.settings import load, setting


def has_pruned_branch(model: nn.Module) -> bool:
    """Whether ``model`` keeps separate BatchNorm layers for a pruned branch (SDCLR's dual BN)."""
    return any(isinstance(m, DualBatchNorm) for m in model.modules())


def prune_for_analysis(model: nn.Module, ratio: float) -> int:
    """Recompute the global magnitude mask of ``model`` from its current weights at ``ratio``
    and switch it to its pruned branch (masked convs; the pruned BN where it has dual BN).
    Returns the number of masked weights, ``ceil(ratio * N)``."""
    masked = global_magnitude_prune(model, ratio)
    set_branch(model, pruned=True)
    return masked


@torch.no_grad()
def reestimate_bn(
    backbone: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256
) -> None:
    """Recompute the running mean and variance of every BatchNorm in ``backbone`` from its
    activations on uint8 ``images`` (a cumulative average over batches; affine parameters
    kept), then put it back in eval mode."""
    norms = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    backbone.train()
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size]
            if batch.shape[0] > 1:  # BN cannot take the statistics of one image
                backbone(to_float(batch.to(device)))
    finally:
        backbone.eval()
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum


def pie_rates(
    dense: torch.Tensor, pruned: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> list[float]:
    """Per-class PIE rate (%): the share of a class's test images whose dense and pruned
    predictions differ (NaN for a class with no test image)."""
    dense, pruned, labels = dense.cpu(), pruned.cpu(), labels.cpu()
    disagree = torch.bincount(labels[dense != pruned], minlength=num_classes).double()
    total = torch.bincount(labels, minlength=num_classes).double()
    rate = torch.where(total > 0, 100.0 * disagree / total.clamp(min=1), float("nan"))
    return [float(r) for r in rate]


@dataclasses.dataclass(frozen=True)
class PieSettings:
    """The PIE analysis (config key ``pie_analysis`` of a dataset)."""

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
    config: PieSettings,
    knn: KnnConfig,
    bank: tuple[torch.Tensor, torch.Tensor],
    queries: torch.Tensor,
    num_classes: int,
) -> torch.Tensor:
    """The probe's test predictions, fitted on ``bank`` (features, labels)."""
    if config.probe == "knn":
        return knn_predict(bank[0], bank[1], queries, num_classes, knn.k, knn.temperature)
    return mean_classifier_predict(class_means(bank[0], bank[1], num_classes), queries)


def _bn_subset(method: dict[str, Any]) -> str:
    """The split subset a single-BN network's statistics are re-estimated on: its pretraining
    set; a removal run (which trained on D_i less its difficult examples) uses D_i, the set it
    was cut from (its kept indices are in the removal record, not an input of this job)."""
    if "remove_difficult" in method:
        return "D_i"
    return method.get("pretrain_set", "D_i")


def _pie_rates_of(
    model: Any,
    method: Any,
    meta: dict,
    inputs: ProbeInputs,
    dense: tuple[torch.Tensor, torch.Tensor],
    settings: dict[str, Any],
    groups: dict,
) -> dict[str, Any]:
    config = load(PieSettings, settings.get("pie_analysis"), "pie_analysis")
    knn = load(KnnConfig, settings.get("knn_probe"), "knn_probe")
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


@register
class PieAnalysis(Analysis):
    """PIE rates of the pruned network against the dense one (this module's docstring)."""

    name = "pie"
    title = "PIE rate: test images where the pruned and the dense network disagree"
    columns = ("Many", "Medium", "Few", "All")
    info = {"probe": ("Probe", "probe", "{}"), "ratio": ("Ratio", "prune_ratio", "{:g}"),
            "bn": ("BN", "batchnorm", "{}")}  # fmt: skip
    note = (
        "PIE rate (%): share of a class's test images on which the probe's predictions from "
        "the pruned and the dense network differ; Many/Medium/Few/All: mean over the classes "
        "of the group (thirds by D_i frequency) or over all classes. Ratio: the share of conv "
        "weights pruned; BN: the pruned network's BatchNorm."
    )
    unit = "%, "
    default = True
    mutates_model = True
    Settings: ClassVar[type] = PieSettings
    reads = ("knn_probe",)

    def compute(self, context: AnalysisContext) -> dict[str, Any]:
        dense = (context.pool_features, context.test_features)
        return _pie_rates_of(
            context.model, context.method, context.meta, context.inputs, dense,
            context.settings, context.groups,
        )  # fmt: skip

    def plot(
        self, records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None
    ) -> None:
        _plot_pie_vs_frequency(records, path, labels)


def _plot_pie_vs_frequency(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """Per-class PIE rate against the class's D_i count (log x), one panel per dataset: every
    class of every split a point, each method's trend the mean rate at each frequency rank."""
    grouped = by_dataset_method(records, "pie")
    fig, axes = plt.subplots(1, len(grouped), figsize=(6.5 * len(grouped), 4.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (dataset, methods) in zip(axes[0], grouped.items(), strict=True):
        for k, (method, runs) in enumerate(methods.items()):
            ratio = runs[0]["pie"]["prune_ratio"]
            plot_per_class_vs_frequency(
                ax,
                runs,
                [r["pie"]["per_class_pie_rate"] for r in runs],
                cmap(k % 10),
                f"{label_of(labels, 'methods', method)} (p = {ratio:g})",
            )
        ax.set_ylabel("PIE rate (% of the class's test images)")
        ax.set_title(f"{label_of(labels, 'datasets', dataset)}: pruned vs dense disagreement")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(path, fig)
    plt.close(fig)
