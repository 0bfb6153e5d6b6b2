"""Weighted k-nearest-neighbour probe on L2-normalised backbone features (the convention of
InstDisc, Wu et al. 2018, and of solo-learn and lightly).

The memory bank is the split's balanced train pool. For a test feature ``q`` (normalised) and
bank features ``b_j`` (normalised) with labels ``y_j``, the k most similar neighbours by cosine
similarity ``s_j = q . b_j`` vote with weights ``exp(s_j / T)``::

    score_c(q) = sum_{j in top-k(q)} exp(s_j / T) [y_j = c],    prediction = argmax_c score_c

k = 200, T = 0.1. No training, so no validation set is used. With fewer than k bank images,
all of them vote.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from sdclr.probes.base import Probe, ProbeInputs, register
from sdclr.probes.features import per_class_accuracy
from sdclr.settings import setting


@dataclasses.dataclass(frozen=True)
class KnnConfig:
    """The weighted kNN probe (config key ``knn_probe``)."""

    k: int = setting(200, doc="Neighbours that vote.", minimum=1)
    temperature: float = setting(0.1, doc="T of the vote weights exp(s / T).", exclusive_minimum=0)


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    k: int,
    temperature: float,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted kNN predictions of ``queries`` against the ``bank`` (formula above)."""
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, bank.shape[0])
    predictions = []
    for start in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        similarity, neighbour = (q @ bank.T).topk(k, dim=1)
        weights = (similarity / temperature).exp()
        scores = torch.zeros(q.shape[0], num_classes, device=q.device, dtype=weights.dtype)
        scores.scatter_add_(1, bank_labels[neighbour], weights)
        predictions.append(scores.argmax(dim=1))
    return torch.cat(predictions)


@register
class KnnProbe(Probe):
    """Weighted kNN with the balanced train pool as the memory bank."""

    name = "knn"
    title = "Weighted kNN"
    train_subset = "train"
    train_set = "D_b pool (memory bank)"
    Settings = KnnConfig

    def title_of(self, settings: KnnConfig) -> str:
        return f"Weighted kNN (k = {settings.k})"

    def evaluate(self, inputs: ProbeInputs, settings: dict[str, Any]) -> dict[str, Any]:
        config = self.settings(settings)
        labels = inputs.subset(self.train_subset)[1].to(inputs.device)
        bank = inputs.subset_features(self.train_subset)
        queries = inputs.test_features()
        predictions = knn_predict(
            bank, labels, queries, inputs.num_classes, config.k, config.temperature
        )
        test_labels = inputs.test_labels.to(inputs.device)
        return {
            "per_class_accuracy": per_class_accuracy(predictions, test_labels, inputs.num_classes)
        }
