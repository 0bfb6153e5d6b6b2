"""Class-mean geometry of a representation on the test set (the "minority collapse" question:
optimal representations of imbalanced data collapse to class means whose angles are set by the
class proportions, and under extreme imbalance the minority classes' means merge).

With f_i the L2-normalised dense test features and mu_c the mean of class c's normalised
features (:func:`sdclr.probes.mean_classifier.class_means`)::

    cos_ab   = <mu_a, mu_b> / (|mu_a| |mu_b|)            the class-mean cosine matrix
    cos(G)   = mean over pairs {a, b} in G, a != b, of cos_ab      (G = Few, Many or all)
    spread   = mean over classes c of mean_{i in c} (1 - <f_i, mu_c> / |mu_c|)

The matrix is reported with the classes ordered by their D_i count, most frequent first (ties
by class id, as the groups are cut). A group with fewer than two classes has no pairs: NaN.
Spread is 0 when every image of a class has the same direction and grows as a class's images
scatter around their mean direction; a method that fights minority collapse should show a lower
Few-Few cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sdclr.probes.mean_classifier import class_means


def frequency_order(train_counts: Sequence[int]) -> list[int]:
    """Class ids from the most to the least frequent in D_i (ties by class id)."""
    return sorted(range(len(train_counts)), key=lambda c: (-train_counts[c], c))


def class_mean_cosines(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[np.ndarray, float]:
    """(cosine matrix of the class means of the normalised ``features`` in class-id order,
    within-class spread), as defined above; a class without images has NaN cosines and is left
    out of the spread."""
    means = class_means(features, labels, num_classes)
    unit_means = F.normalize(means, dim=1)
    present = torch.bincount(labels, minlength=num_classes) > 0
    cosines = (unit_means @ unit_means.T).double()
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
