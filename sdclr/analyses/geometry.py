"""Class-mean geometry of a representation on the test set (the "minority collapse" question:
optimal representations of imbalanced data collapse to class means whose angles are set by the
class proportions, and under extreme imbalance the minority classes' means merge).

With f_i the L2-normalised dense test features, mu_c the mean of class c's normalised features
(:func:`sdclr.probes.mean_classifier.class_means`) and mu_G the mean of all the test
images' normalised features (the global mean; on a balanced test set, the mean of the mu_c)::

    cos_ab   = <mu_a - mu_G, mu_b - mu_G> / (|mu_a - mu_G| |mu_b - mu_G|)   centred (default)
    cos_ab   = <mu_a, mu_b> / (|mu_a| |mu_b|)                             uncentred
    cos(G)   = mean over pairs {a, b} in G, a != b, of cos_ab      (G = Few, Many or all)
    spread   = mean over classes c of mean_{i in c} (1 - <f_i, mu_c> / |mu_c|)

Centring is how the neural- and minority-collapse literature measures the angles between
class means (e.g. Papyan, Han, Donoho, PNAS 2020): the backbone's features come out of a ReLU
and an average pool, so they are non-negative, every raw cosine is >= 0 and the shared mean
direction pulls them all towards 1; centred, C class means spread as far apart as possible (a
simplex) have cos_ab = -1/(C - 1). On a balanced test set the centred means sum to zero, so
their mean cosine over all pairs is -1/(C - 1) whenever their norms are equal: the all-pairs
number says little there, the groups' numbers say where the tail's means point. The
uncentred cosines are kept next to the centred ones in the record
(``geometry_analysis.centre_class_means`` chooses which the table and figure show). The
spread is measured around the uncentred mean directions either way.

The matrix is reported with the classes ordered by their D_i count, most frequent first (ties
by class id, as the groups are cut). A group with fewer than two classes has no pairs: NaN.
Spread is 0 when every image of a class has the same direction and grows as a class's images
scatter around their mean direction; a method that fights minority collapse should show a lower
Few-Few cosine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from sdclr.analyses.base import Analysis, AnalysisContext, by_dataset_method, register
from sdclr.io import save_figure
from sdclr.plots import label_of
from sdclr.probes.base import ProbeInputs
from sdclr.probes.mean_classifier import class_means
from sdclr.settings import setting


def frequency_order(train_counts: Sequence[int]) -> list[int]:
    """Class ids from the most to the least frequent in D_i (ties by class id)."""
    return sorted(range(len(train_counts)), key=lambda c: (-train_counts[c], c))


def class_mean_cosines(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, centred: bool = True
) -> tuple[np.ndarray, float]:
    """(cosine matrix of the class means of the normalised ``features`` in class-id order,
    centred on their global mean or not, within-class spread), as defined above; a class
    without images has NaN cosines and is left out of the spread."""
    means = class_means(features, labels, num_classes)
    unit_means = F.normalize(means, dim=1)
    present = torch.bincount(labels, minlength=num_classes) > 0
    directions = unit_means
    if centred:
        global_mean = F.normalize(features.float(), dim=1).mean(dim=0)
        directions = F.normalize(means - global_mean, dim=1)
    cosines = (directions @ directions.T).double()
    cosines[~present, :] = float("nan")
    cosines[:, ~present] = float("nan")
    to_mean = (F.normalize(features.float(), dim=1) * unit_means[labels]).sum(dim=1)
    spread_sum = torch.zeros(num_classes, dtype=torch.float64, device=features.device)
    spread_sum.index_add_(0, labels, (1.0 - to_mean).double())
    per_class = spread_sum[present] / torch.bincount(labels, minlength=num_classes)[present]
    return cosines.cpu().numpy(), float(per_class.mean())


def mean_pairwise_cosine(cosines: np.ndarray, classes: Sequence[int]) -> float:
    """Mean of ``cosines[a, b]`` over the unordered pairs a != b of ``classes`` (NaN: none)."""
    classes = list(classes)
    values = [cosines[a, b] for i, a in enumerate(classes) for b in classes[i + 1 :]]
    return float(np.mean(values)) if values else float("nan")


def geometry_summary(
    cosines: np.ndarray, spread: float, groups: dict[str, list[int]]
) -> dict[str, float]:
    """The table's numbers: mean pairwise cosine among Few, Medium, Many and all classes, and
    the within-class spread."""
    every = range(cosines.shape[0])
    return {
        "Few-Few cosine": mean_pairwise_cosine(cosines, groups["Few"]),
        "Medium-Medium cosine": mean_pairwise_cosine(cosines, groups["Medium"]),
        "Many-Many cosine": mean_pairwise_cosine(cosines, groups["Many"]),
        "All-pairs cosine": mean_pairwise_cosine(cosines, every),
        "Within-class spread": spread,
    }


@dataclasses.dataclass(frozen=True)
class GeometrySettings:
    """Settings of the class-mean geometry (config key ``geometry_analysis``)."""

    centre_class_means: bool = setting(
        True,
        doc="Geometry's table and figure: cosines of the class means minus their global mean "
        "(true) or of the raw class means (false); the record keeps both.",
    )


def geometry_record(
    test: torch.Tensor, inputs: ProbeInputs, split: dict, groups: dict, centred: bool = True
) -> dict:
    """The geometry record: ``summary`` and ``cosine_matrix`` as ``centred`` says, and the
    other kind's as ``summary_<kind>`` / ``cosine_matrix_<kind>``."""
    order = frequency_order(split["counts"]["D_i"])
    record: dict[str, Any] = {"class_order": order, "centred": centred}
    for centre in (centred, not centred):
        cosines, spread = class_mean_cosines(
            test, inputs.test_labels.to(test.device), inputs.num_classes, centred=centre
        )
        ordered = cosines[order][:, order]
        suffix = "" if centre == centred else ("_centred" if centre else "_uncentred")
        record[f"cosine_matrix{suffix}"] = [[round(float(v), 6) for v in row] for row in ordered]
        record[f"summary{suffix}"] = geometry_summary(cosines, spread, groups)
    return record


@register
class GeometryAnalysis(Analysis):
    """The class-mean geometry of the dense test features (this module's docstring)."""

    name = "geometry"
    title = (
        "Class-mean geometry of the normalised test features (class means centred on their "
        "global mean, unless geometry_analysis.centre_class_means is false)"
    )
    columns = (
        "Few-Few cosine",
        "Medium-Medium cosine",
        "Many-Many cosine",
        "All-pairs cosine",
        "Within-class spread",
    )
    note = (
        "Cosines between the class means of the L2-normalised dense test features, averaged "
        "over the pairs of distinct classes of a group; within-class spread: mean over classes "
        "of the mean (1 - cosine) of a class's features to its mean direction."
    )
    number_format = "{:.3f}"
    default = True
    Settings = GeometrySettings

    def compute(self, context: AnalysisContext) -> dict[str, Any]:
        centred = context.analysis_settings(self).centre_class_means
        split = context.inputs.split
        return geometry_record(
            context.test_features, context.inputs, split, context.groups, centred
        )

    def plot(
        self, records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None
    ) -> None:
        _plot_class_mean_cosines(records, path, labels)


def _plot_class_mean_cosines(
    records: Sequence[dict[str, Any]], path: str | Path, labels: dict | None = None
) -> None:
    """Heatmaps of the class-mean cosine matrix, one per method side by side (a row per
    dataset), classes ordered by D_i count (most frequent first). Each cell is the mean over
    the splits (and seeds) of the cosine between the classes at those frequency ranks: which
    class holds a rank differs between splits, its D_i count does not."""
    grouped = by_dataset_method(records, "geometry")
    ncols = max(len(m) for m in grouped.values())
    fig, axes = plt.subplots(
        len(grouped), ncols, figsize=(4.4 * ncols, 4.2 * len(grouped)), squeeze=False
    )
    image = None
    for i, (dataset, methods) in enumerate(grouped.items()):
        for j in range(len(methods), ncols):
            axes[i][j].set_visible(False)
        for j, (method, runs) in enumerate(methods.items()):
            ax = axes[i][j]
            matrix = np.nanmean([np.asarray(r["geometry"]["cosine_matrix"]) for r in runs], axis=0)
            image = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, np.nanmin(matrix)), vmax=1.0)
            counts = sorted(runs[0]["train_counts"], reverse=True)
            if len(counts) <= 20:
                ax.set_xticks(range(len(counts)), counts, rotation=90, fontsize=7)
                ax.set_yticks(range(len(counts)), counts, fontsize=7)
            few_few = np.nanmean([r["geometry"]["summary"]["Few-Few cosine"] for r in runs])
            ax.set_title(
                f"{label_of(labels, 'datasets', dataset)}: {label_of(labels, 'methods', method)}\n"
                f"Few-Few cosine {few_few:.3f}",
                fontsize=9,
            )
            ax.set_xlabel("class (D_i count, most frequent first)", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="cosine of class means (mean over splits)")
    save_figure(path, fig)
    plt.close(fig)
