"""Our k-shot linear probes: the linear probe of ``sdclr.probes.linear`` trained on k images
per class drawn at random from the balanced train pool, repeated on several random subsets.

For subset s = 0 .. S-1, k images of every class are drawn from the split's train pool with a
generator seeded by :func:`subset_seed` (seed, k, s), the linear probe of
``sdclr.probes.linear`` is trained on them (its best epoch chosen on the split's validation
set), and the per-class test accuracies are averaged over the S subsets; the record keeps each
subset's All. ``kshot_100`` and ``kshot_50``: 100 and 50 shots over 5 subsets, BCL's budgets
but not BCL's protocol (BCL trains an Adam probe on fixed index files, one per split, with no
validation: ``bcl_100shot`` / ``bcl_50shot`` in ``sdclr.probes.bcl_probe``). The
optimisation defaults are our few-shot probe's (100 epochs, lr 30, decays at 40 and 60); a
class with fewer than k pool images is a config error naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from sdclr.errors import ConfigError
from sdclr.probes.base import Probe, ProbeInputs, register
from sdclr.probes.linear import ProbeConfig, fit_and_test
from sdclr.settings import setting


@dataclasses.dataclass(frozen=True)
class KShotConfig(ProbeConfig):
    """A k-shot probe (config keys ``kshot_100_probe``, ``kshot_50_probe``)."""

    epochs: int = setting(100, doc="Probe training epochs.", minimum=1)
    milestones: tuple[int, ...] = setting(
        (40, 60), doc="Epochs after which the lr is multiplied by gamma.", minimum=1
    )
    subsets: int = setting(5, doc="Random balanced subsets averaged over.", minimum=1)


def subset_seed(seed: int, shots: int, subset: int) -> int:
    """The seed of subset ``subset`` of the ``shots``-shot probe of a model of ``seed``."""
    return (seed * 1_000_003 + shots * 1_009 + subset) % 2**63


def balanced_subset(
    labels: torch.Tensor, shots: int, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Positions of ``shots`` images of every class in ``labels``, drawn without replacement
    (sorted)."""
    chosen = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        if members.numel() < shots:
            raise ConfigError(
                f"kshot_{shots}: class {c} has only {members.numel()} images in the probe's "
                f"train pool, fewer than {shots}; drop the probe or enlarge "
                "longtail.probe_train_per_class"
            )
        order = torch.randperm(members.numel(), generator=generator)[:shots]
        chosen.append(members[order])
    return torch.sort(torch.cat(chosen)).values


class KShotProbe(Probe):
    """Linear probes on ``shots`` images per class, averaged over random subsets."""

    shots: ClassVar[int]
    train_subset = "train"
    Settings = KShotConfig

    def evaluate(self, inputs: ProbeInputs, settings: dict[str, Any]) -> dict[str, Any]:
        config = self.settings(settings)
        images, labels = inputs.subset(self.train_subset)
        accuracies, alls = [], []
        for s in range(config.subsets):
            generator = torch.Generator().manual_seed(subset_seed(inputs.seed, self.shots, s))
            pick = balanced_subset(labels, self.shots, inputs.num_classes, generator)
            result = fit_and_test(
                inputs, (images[pick], labels[pick]), config, inputs.seed + s, self.name
            )
            accuracies.append(result["per_class_accuracy"])
            alls.append(float(np.nanmean(result["per_class_accuracy"])))
        return {
            "per_class_accuracy": np.mean(accuracies, axis=0),
            "subset_all_accuracy": alls,
        }


@register
class HundredShotProbe(KShotProbe):
    name = "kshot_100"
    title = "100-shot linear probe (ours: 5 random subsets)"
    shots = 100
    train_set = "100 per class of the D_b pool, 5 subsets"


@register
class FiftyShotProbe(KShotProbe):
    name = "kshot_50"
    title = "50-shot linear probe (ours: 5 random subsets)"
    shots = 50
    train_set = "50 per class of the D_b pool, 5 subsets"
