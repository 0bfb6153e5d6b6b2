"""BCL's linear probe (Zhou et al., "Contrastive Learning with Boosted Memorization", ICML 2022):
the probe behind BCL's README numbers, full-shot, 100-shot and 50-shot.

What BCL's public code does (MediaBrain-SJTU/BCL at a2342f8: ``eval_cifar.py``, ``eval`` and
``eval_sgd``; ``test.py``):

* Features: the encoder with its projection head replaced by ``nn.Identity`` (SimCLR's
  ``projector``, SDCLR's ``backbone.fc``), in eval mode (SDCLR's dense branch), of the
  un-augmented images (``ToTensor`` only; the network normalises its input itself), batch 1000
  (here 512, the batch of every probe's features: the model's feature file).
* The probe: ``nn.Linear(d, C)`` (PyTorch's default initialisation), Adam (lr 1e-2, weight
  decay 5e-6, PyTorch's default betas and eps), ``ExponentialLR`` with
  ``gamma = (1e-6 / 1e-2) ** (1 / 500)`` stepped after each of 500 epochs, so epoch e (from 0)
  trains at ``1e-2 * gamma**e``; each epoch a new ``torch.randperm`` order in batches of 1000
  (the last one partial), cross-entropy; no validation: the last epoch's layer is tested.
* Train sets: full-shot, the 40,000 images of ``split/cifar100/cifar100_trainIdxList.npy``;
  k-shot, the fixed files ``split/cifar100_imbSub_with_subsets/cifar100_split{1..5}_test_
  {100,50}shot.npy`` (10,000 and 5,000 indices, inside that train list): one probe per file,
  the five top-1 accuracies averaged, whichever split the model was pretrained on.
* Accuracy: top-1 over the test set (CIFAR-100's is balanced, so it equals the mean per-class
  accuracy reported here).

Here: features from ``sdclr.probes.features.extract_features`` (the dense backbone, eval
mode, centre crop = the whole image on CIFAR; the test set's and the pool's read from the
model's feature file, ``sdclr.probes.feature_file``); ``train_list`` names BCL's train list (null:
the split's train pool) and ``index_files`` the k-shot files, ``{file}`` replaced by 1 ..
``files``; each file is checked (``sdclr.data.reference_splits.kshot_indices_from_file``).
Choices: the initialisation and each epoch's order come from the model's seed (plus the file
number for k-shot) rather than BCL's one ``setup_seed(10)``; the train features are in index
order (BCL's sampler shuffles them once; each epoch's ``randperm`` reorders them anyway).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sdclr.data.reference_splits import kshot_indices_from_file, read_index_file
from sdclr.errors import ConfigError
from sdclr.probes.base import POOL, Probe, ProbeInputs, register
from sdclr.probes.features import center_crop, extract_features
from sdclr.settings import setting


@dataclasses.dataclass(frozen=True)
class BclProbeConfig:
    """BCL's full-shot probe (config key ``bcl_fullshot_probe``); defaults are BCL's."""

    epochs: int = setting(500, doc="Probe training epochs (the last one is kept).", minimum=1)
    batch_size: int = setting(1000, doc="Probe batch size.", minimum=1)
    lr: float = setting(1e-2, doc="Adam's learning rate in the first epoch.", exclusive_minimum=0)
    final_lr: float = setting(
        1e-6,
        doc="The lr the exponential decay reaches after the last epoch: gamma = "
        "(final_lr / lr)^(1 / epochs), stepped after every epoch.",
        exclusive_minimum=0,
    )
    weight_decay: float = setting(5e-6, doc="Adam's (L2) weight decay.", minimum=0)
    train_list: str | None = setting(
        None,
        doc="A .npy index file of the training images the full-shot probe trains on and the "
        "k-shot files must lie in (BCL: split/cifar100/cifar100_trainIdxList.npy, 40,000 "
        "images); null: the split's train pool.",
    )


@dataclasses.dataclass(frozen=True, kw_only=True)  # kw_only: a required field after defaults
class BclKShotConfig(BclProbeConfig):
    """BCL's k-shot probe (config keys ``bcl_100shot_probe``, ``bcl_50shot_probe``)."""

    index_files: str = setting(
        doc="The k-shot .npy index files, {file} replaced by 1 .. files (BCL: "
        "split/cifar100_imbSub_with_subsets/cifar100_split{file}_test_100shot.npy)."
    )
    files: int = setting(5, doc="How many index files, one probe each, are averaged.", minimum=1)


def bcl_gamma(config: BclProbeConfig) -> float:
    """ExponentialLR's factor: ``(final_lr / lr) ** (1 / epochs)``."""
    return (config.final_lr / config.lr) ** (1.0 / config.epochs)


def train_bcl_linear(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    config: BclProbeConfig,
    seed: int,
) -> nn.Linear:
    """BCL's ``eval_sgd`` on fixed ``features``: returns the last epoch's linear layer.

    The layer is initialised after ``torch.manual_seed(seed)``; each epoch's order is a
    ``torch.randperm`` of a CPU generator seeded with ``seed``.
    """
    torch.manual_seed(seed)
    linear = nn.Linear(features.shape[1], num_classes).to(features.device)
    optimizer = torch.optim.Adam(
        linear.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=bcl_gamma(config))
    generator = torch.Generator().manual_seed(seed)
    n = features.shape[0]
    batches = math.ceil(n / config.batch_size)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator).to(features.device)
        for b in range(batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            optimizer.zero_grad()
            F.cross_entropy(linear(features[idx]), labels[idx]).backward()
            optimizer.step()
        scheduler.step()
    return linear


def _features(inputs: ProbeInputs, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) of the training images at ``indices`` (centre-cropped, no
    augmentation), on the probe's device: the stored pool features where ``indices`` is the
    pool, else computed."""
    idx = torch.as_tensor(indices, dtype=torch.long)
    labels = inputs.dataset.train_labels[idx].to(inputs.device)
    stored = inputs.stored_features(POOL)
    if stored is not None and np.array_equal(indices, inputs.split["indices"][POOL]):
        return stored, labels
    images = center_crop(inputs.dataset.train_images[idx], inputs.crop_size)
    return extract_features(inputs.backbone, images, inputs.device), labels


class BclProbe(Probe):
    """BCL's probe: Adam on fixed features, exponential lr decay, the last epoch kept."""

    train_subset = "train"
    compared = True  # BCL's README numbers (config/paper/reported.yaml)

    def train_list(self, inputs: ProbeInputs, config: BclProbeConfig) -> np.ndarray:
        """The indices of the probe's train list: ``config.train_list`` or the split's pool."""
        if config.train_list is None:
            return np.asarray(inputs.split["indices"][self.train_subset], dtype=np.int64)
        path = Path(config.train_list)
        if not path.exists():
            raise FileNotFoundError(f"{self.config_key}.train_list: {path} not found")
        return read_index_file(path, len(inputs.dataset.train_labels), inputs.dataset.name)

    def fit(
        self,
        inputs: ProbeInputs,
        indices: np.ndarray,
        test: torch.Tensor,
        config: BclProbeConfig,
        seed: int,
    ) -> np.ndarray:
        """Per-class test accuracy (%) of BCL's probe trained on the images at ``indices``
        (``test``: the test images' features)."""
        features, labels = _features(inputs, indices)
        linear = train_bcl_linear(features, labels, inputs.num_classes, config, seed)
        with torch.no_grad():
            return inputs.test_accuracy(linear(test).argmax(dim=1))

    def test_features(self, inputs: ProbeInputs) -> torch.Tensor:
        return inputs.test_features()

    def _note(self, config: BclProbeConfig, pool: np.ndarray) -> dict[str, Any]:
        if config.train_list is None:
            return {}
        return {
            "probe_train_note": f"the list {Path(config.train_list).name} ({len(pool):,} images)"
        }


@register
class BclFullShotProbe(BclProbe):
    name = "bcl_fullshot"
    title = "BCL's full-shot probe (Adam, exponential lr decay, last epoch)"
    train_set = "the train list"
    Settings = BclProbeConfig

    def evaluate(self, inputs: ProbeInputs, settings: dict[str, Any]) -> dict[str, Any]:
        config = self.settings(settings)
        pool = self.train_list(inputs, config)
        return {
            "per_class_accuracy": self.fit(
                inputs, pool, self.test_features(inputs), config, inputs.seed
            ),
            "probe_train_size": len(pool),
            **self._note(config, pool),
        }


class BclKShotProbe(BclProbe):
    """BCL's k-shot probe: one probe per fixed index file, the accuracies averaged."""

    shots: ClassVar[int]
    Settings = BclKShotConfig

    def evaluate(self, inputs: ProbeInputs, settings: dict[str, Any]) -> dict[str, Any]:
        config = self.settings(settings)
        if "{file}" not in config.index_files and config.files > 1:
            raise ConfigError(
                f"{self.config_key}.index_files: no {{file}} in {config.index_files!r} for "
                f"{config.files} files"
            )
        pool = self.train_list(inputs, config)
        labels = inputs.dataset.train_labels.numpy()
        test = self.test_features(inputs)
        accuracies, alls, paths = [], [], []
        for k in range(1, config.files + 1):
            path = Path(config.index_files.replace("{file}", str(k)))
            if not path.exists():
                raise FileNotFoundError(f"{self.config_key}.index_files: {path} not found")
            indices = kshot_indices_from_file(
                path, labels, inputs.num_classes, self.shots, pool, inputs.dataset.name
            )
            accuracy = self.fit(inputs, indices, test, config, inputs.seed + k)
            accuracies.append(accuracy)
            alls.append(float(np.nanmean(accuracy)))
            paths.append(str(path))
        return {
            "per_class_accuracy": np.mean(accuracies, axis=0),
            "file_all_accuracy": alls,
            "index_files": paths,
            "probe_train_size": self.shots * inputs.num_classes,
        }


@register
class BclHundredShotProbe(BclKShotProbe):
    name = "bcl_100shot"
    title = "BCL's 100-shot probe (Adam; its fixed index files, averaged)"
    train_set = "BCL's 100-shot index files"
    shots = 100


@register
class BclFiftyShotProbe(BclKShotProbe):
    name = "bcl_50shot"
    title = "BCL's 50-shot probe (Adam; its fixed index files, averaged)"
    train_set = "BCL's 50-shot index files"
    shots = 50
