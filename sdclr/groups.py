"""Many / Medium / Few class groups and the paper's per-split summary numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

GROUPS = ("Many", "Medium", "Few")


def class_groups(train_counts: Sequence[int], rule: dict[str, Any]) -> dict[str, list[int]]:
    """Assign every class to Many, Medium or Few from its count in the split's ``D_i``.

    ``rule = {"kind": "thirds"}`` (CIFAR): classes sorted by count, descending (ties by class
    id); Few and Medium get ``C // 3`` classes each, the bottom and middle, and Many the top
    ``C - 2 * (C // 3)`` (the remainder goes to Many: 4/3/3 for 10 classes, 34/33/33 for 100).

    ``rule = {"kind": "thresholds", "many_above": 100, "few_below": 20}`` (ImageNet-100-LT):
    Many has more than ``many_above`` images, Few fewer than ``few_below``, Medium the rest.
    """
    counts = np.asarray(train_counts)
    kind = rule.get("kind", "thirds")
    if kind == "thirds":
        num_classes = len(counts)
        order = sorted(range(num_classes), key=lambda c: (-counts[c], c))
        third = num_classes // 3
        n_many = num_classes - 2 * third
        groups = {
            "Many": order[:n_many],
            "Medium": order[n_many : n_many + third],
            "Few": order[n_many + third :],
        }
    elif kind == "thresholds":
        many_above, few_below = rule["many_above"], rule["few_below"]
        groups = {
            "Many": [c for c, n in enumerate(counts) if n > many_above],
            "Medium": [c for c, n in enumerate(counts) if few_below <= n <= many_above],
            "Few": [c for c, n in enumerate(counts) if n < few_below],
        }
    else:
        raise ValueError(f"unknown group rule kind {kind!r}; use 'thirds' or 'thresholds'")
    return {name: sorted(int(c) for c in members) for name, members in groups.items()}


def group_summary(
    per_class_accuracy: Sequence[float], groups: dict[str, list[int]]
) -> dict[str, float]:
    """Many / Medium / Few / Std / All for one split, all in the accuracy's unit.

    Each group's accuracy is the mean per-class accuracy over its classes; ``All`` is the mean
    per-class accuracy over every class; ``Std`` is the population std (ddof = 0) of
    ``[Many, Medium, Few]``. An empty group has accuracy NaN and is left out of ``Std``.
    """
    acc = np.asarray(per_class_accuracy, dtype=np.float64)
    summary = {
        name: float(acc[groups[name]].mean()) if groups[name] else float("nan") for name in GROUPS
    }
    present = [summary[name] for name in GROUPS if groups[name]]
    summary["Std"] = float(np.std(present, ddof=0))
    summary["All"] = float(acc.mean())
    return summary
