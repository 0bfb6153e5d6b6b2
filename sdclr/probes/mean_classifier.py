"""The mean classifier (Arora, Khandeparkar, Khodak, Plevrakis, Saunshi, "A Theoretical
Analysis of Contrastive Unsupervised Representation Learning", ICML 2019).

Each class's weight is the mean of its L2-normalised training features, and a test image is
assigned the class of the largest inner product::

    mu_c = mean_{i: y_i = c} f(x_i) / ||f(x_i)||,    prediction(x) = argmax_c <f(x), mu_c>

No training. (The paper defines the mean of the representation f; normalising each feature
first, as the issue asks, keeps a few large-norm features from dominating a class mean; the
test feature's norm does not change the argmax.) Two probes: on the balanced train pool
(``mean``) and on the few-shot set ``S_b`` (``mean_fewshot``). A class with no training image
gets a zero weight and is never predicted.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sdclr.probes.base import Probe, ProbeInputs, register
from sdclr.probes.features import per_class_accuracy


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[num_classes, d]``: the mean of each class's L2-normalised features (0 if absent)."""
    normalised = F.normalize(features.float(), dim=1)
    sums = torch.zeros(num_classes, normalised.shape[1], device=normalised.device)
    sums.index_add_(0, labels, normalised)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).unsqueeze(1)
    return sums / counts


def mean_classifier_predict(means: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``argmax_c <f(x), mu_c>`` for every row of ``features``."""
    return (features.float() @ means.T).argmax(dim=1)


@register
class MeanClassifierProbe(Probe):
    """The mean classifier of the balanced train pool."""

    name = "mean"
    title = "Mean classifier"
    train_subset = "train"
    train_set = "D_b pool"

    def evaluate(self, inputs: ProbeInputs, settings: dict[str, Any]) -> dict[str, Any]:
        labels = inputs.subset(self.train_subset)[1]
        features = inputs.subset_features(self.train_subset)
        means = class_means(features, labels.to(inputs.device), inputs.num_classes)
        test = inputs.test_features()
        predictions = mean_classifier_predict(means, test)
        test_labels = inputs.test_labels.to(inputs.device)
        return {
            "per_class_accuracy": per_class_accuracy(predictions, test_labels, inputs.num_classes)
        }


@register
class FewShotMeanClassifierProbe(MeanClassifierProbe):
    """The mean classifier of the few-shot set ``S_b``."""

    name = "mean_fewshot"
    title = "Mean classifier (S_b)"
    train_subset = "S_b"
    train_set = "S_b"
