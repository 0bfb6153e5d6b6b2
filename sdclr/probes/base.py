"""The contract of a probe, and the name -> probe registry.

A probe measures a frozen pretrained representation and returns per-class test accuracy (and
whatever else it wants in the evaluation record). Adding one means a module in
``sdclr/probes/`` with a class decorated by ``@register``, and its settings under
``<name>_probe`` in the config; the probe rule, the tables and the figures are generic over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from sdclr.probes.features import center_crop, extract_features, per_class_accuracy
from sdclr.registry import Registry
from sdclr.settings import load

PROBES: Registry[Probe] = Registry("probe", "probes", "sdclr/probes/", "register")
#: The split subset of the balanced train pool, whose features a model's feature file holds.
POOL = "train"


@dataclass
class ProbeInputs:
    """What a probe of one pretrained model sees: its backbone, the data and the split."""

    backbone: nn.Module
    dataset: Any  # ImageDataset
    split: dict[str, Any]
    crop_size: int
    seed: int
    device: torch.device
    progress: bool = True
    #: The model's stored features, ``test`` and ``pool`` (``sdclr.probes.feature_file``);
    #: None: computed from the backbone when asked for.
    features: dict[str, torch.Tensor] | None = None

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def subset(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(center-cropped uint8 images, labels) of one split subset."""
        idx = torch.as_tensor(self.split["indices"][name], dtype=torch.long)
        images = center_crop(self.dataset.train_images[idx], self.crop_size)
        return images, self.dataset.train_labels[idx]

    @property
    def test_images(self) -> torch.Tensor:
        return center_crop(self.dataset.test_images, self.crop_size)

    @property
    def test_labels(self) -> torch.Tensor:
        return self.dataset.test_labels

    def stored_features(self, name: str) -> torch.Tensor | None:
        """The stored features of the test set (``name`` ``"test"``) or of the pool (split
        subset :data:`POOL`) on the device; None where none are stored."""
        key = {"test": "test", POOL: "pool"}.get(name)
        if self.features is None or key is None:
            return None
        return self.features[key].to(self.device)

    def test_features(self) -> torch.Tensor:
        """The dense backbone's features of the centre-cropped test images (stored or
        computed: the same numbers)."""
        stored = self.stored_features("test")
        if stored is not None:
            return stored
        return extract_features(self.backbone, self.test_images, self.device)

    def subset_features(self, name: str) -> torch.Tensor:
        """The dense backbone's features of split subset ``name`` (centre-cropped)."""
        stored = self.stored_features(name)
        if stored is not None:
            return stored
        return extract_features(self.backbone, self.subset(name)[0], self.device)

    def test_accuracy(self, predictions: torch.Tensor) -> np.ndarray:
        """Per-class accuracy (%) of ``predictions`` of the test images."""
        labels = self.test_labels.to(predictions.device)
        return per_class_accuracy(predictions, labels, self.num_classes)


class Probe:
    """Base class: subclasses set ``name``, ``title``, ``train_subset`` and ``evaluate``."""

    name: ClassVar[str]
    title: ClassVar[str]  # how tables and figures name it
    train_subset: ClassVar[str]  # the split subset it learns from (for the record and tables)
    train_set: ClassVar[str]  # that set as table headers name it ("D_b pool", "S_b", ...)
    in_paper: ClassVar[bool] = False  # whether the SDCLR paper reports it (the default probes)
    #: Whether config/paper/reported.yaml has numbers of it (the paper's probes, BCL's).
    compared: ClassVar[bool] = False
    #: Its settings (config key ``<name>_probe``); None: it has none.
    Settings: ClassVar[type | None] = None

    @property
    def config_key(self) -> str:
        """Its settings' key in a dataset's config entry."""
        return f"{self.name}_probe"

    def settings(self, settings: dict[str, Any]) -> Any:
        """Its settings object from a probe job's settings (validated, naming the key)."""
        if self.Settings is None:
            return None
        return load(self.Settings, settings.get(self.config_key), self.config_key)

    def title_of(self, settings: Any) -> str:
        """How tables and figures name it, given its settings object (``self.settings``)."""
        return self.title

    def evaluate(self, inputs: ProbeInputs, settings: dict[str, Any]) -> dict[str, Any]:
        """Return at least ``per_class_accuracy`` (percent, one per class)."""
        raise NotImplementedError


def register(cls: type[Probe]) -> type[Probe]:
    """Class decorator adding a probe (one instance) to the registry under ``cls.name``."""
    return PROBES.register(cls)


def get_probe(name: str) -> Probe:
    """The probe registered as ``name``; an unknown name lists the known ones."""
    return PROBES.lookup(name)
