"""Linear probes of a frozen backbone: the paper's linear separability (trained on the split's
balanced train pool) and its few-shot probe (trained on ``S_b``).

Both train one linear layer on the backbone's features (backbone frozen, BatchNorm in eval
mode, the dense branch), pick the epoch with the best validation accuracy, and report that
epoch's per-class test accuracy.

The schedule and initialisation default to the reference implementation's: its MultiStepLR is
stepped at the start of every epoch, so with milestones (10, 20) epochs 1-9 train at ``lr``,
10-19 at ``gamma * lr`` and 20-30 at ``gamma**2 * lr`` (``lr(e) = lr * gamma**#{m : e >= m}``,
epochs counted from 1); and its linear layer starts from N(0, 0.01**2) weights and zero bias.
``decay_at_epoch_start: false`` gives the other convention (``#{m : e > m}``) and
``init_std: null`` PyTorch's default initialisation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from sdclr.probes._probe_data import ImageRows, per_class_topk_accuracy, train_views
from sdclr.probes.base import Probe, ProbeInputs, register
from sdclr.probes.features import extract_features, per_class_accuracy
from sdclr.settings import setting


@dataclass(frozen=True)
class ProbeConfig:
    """A linear probe's optimisation (config keys ``linear_probe`` / ``fewshot_probe``);
    defaults are the paper's."""

    epochs: int = setting(doc="Probe training epochs.", minimum=1)
    batch_size: int = setting(128, doc="Probe batch size.", minimum=1)
    lr: float = setting(30.0, doc="SGD learning rate.", exclusive_minimum=0)
    momentum: float = setting(0.9, doc="SGD momentum.", minimum=0, maximum=1)
    weight_decay: float = setting(0.0, doc="SGD weight decay.", minimum=0)
    milestones: tuple[int, ...] = setting(
        (10, 20), doc="Epochs after which the lr is multiplied by gamma.", minimum=1
    )
    gamma: float = setting(0.1, doc="Learning-rate decay factor.", exclusive_minimum=0)
    augment: bool = setting(
        True, doc="RandomCrop(padding) + flip each epoch (slow), or fixed features (fast)."
    )
    padding: int = setting(4, doc="RandomCrop zero padding.", minimum=0)
    crop: Literal["pad", "resized"] = setting(
        "pad",
        doc="The augment crop: pad = RandomCrop(crop size, padding) + flip (CIFAR); resized = "
        "RandomResizedCrop(crop size, scale) + flip of the stored images, on the device (the "
        "reference's ImageNet-100 probe).",
    )
    scale: tuple[float, float] = setting(
        (0.08, 1.0), doc="RandomResizedCrop area range (crop: resized).", minimum=0, maximum=1,
        ordered=True,
    )  # fmt: skip
    validate_every: int = setting(
        1,
        doc="Validate (and so may pick) every k-th epoch and the last; the reference's "
        "few-shot scripts validate every 5.",
        minimum=1,
    )
    select_by: Literal["top1", "top5"] = setting(
        "top1",
        doc="The validation accuracy that picks the best epoch: top1 (mean per-class) or top5 "
        "(mean per-class top-5, the reference's ImageNet-100 probe).",
    )
    decay_at_epoch_start: bool = setting(
        True,
        doc="A milestone m takes effect in epoch m (the reference steps MultiStepLR at each "
        "epoch's start), or in epoch m + 1 (false).",
    )
    init_std: float | None = setting(
        0.01,
        doc="The linear layer's initial weights ~ N(0, init_std^2) with zero bias (the "
        "reference's 0.01); null: PyTorch's default initialisation.",
        exclusive_minimum=0,
    )


def probe_lr(epoch: int, config: ProbeConfig) -> float:
    """The learning rate of probe epoch ``epoch`` (counted from 1):
    ``lr * gamma**#{m in milestones : epoch >= m}`` (``epoch > m`` when not
    ``decay_at_epoch_start``)."""
    passed = sum(
        epoch >= m if config.decay_at_epoch_start else epoch > m for m in config.milestones
    )
    return config.lr * config.gamma**passed


def new_linear(in_features: int, num_classes: int, config: ProbeConfig) -> nn.Linear:
    """The probe's linear layer, initialised as ``config.init_std`` says (from torch's global
    RNG, which the caller seeds)."""
    linear = nn.Linear(in_features, num_classes)
    if config.init_std is not None:
        nn.init.normal_(linear.weight, mean=0.0, std=config.init_std)
        nn.init.zeros_(linear.bias)
    return linear


def _predict(linear: nn.Module, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return linear(features).argmax(dim=1)


def _probe_epoch(
    backbone: nn.Module,
    linear: nn.Linear,
    optimizer: torch.optim.Optimizer,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    fixed_features: torch.Tensor | None,
    config: ProbeConfig,
    generator: torch.Generator,
    crop_size: int,
) -> float:
    """One epoch of the linear layer over the train set in a new order; returns its mean
    loss. Without fixed features each batch is a new view (``config.crop``)."""
    device = train_labels.device
    n = train_labels.shape[0]
    order = torch.randperm(n, generator=generator, device=generator.device).to(device)
    loss_sum, batches = torch.zeros((), device=device), 0
    for start in range(0, n, config.batch_size):
        idx = order[start : start + config.batch_size]
        if fixed_features is not None:
            features = fixed_features[idx]
        else:
            batch = train_images[idx.to(train_images.device)]
            views = train_views(
                batch, config.crop, config.padding, crop_size, config.scale, generator, device
            )
            with torch.no_grad():
                features = backbone(views).float()
        loss = F.cross_entropy(linear(features), train_labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        batches += 1
    return float(loss_sum) / max(1, batches)


def _validation_accuracies(
    linear: nn.Module, features: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[float, float]:
    """(mean per-class top-1, mean per-class top-5) validation accuracy (%)."""
    with torch.no_grad():
        logits = linear(features)
    top1 = per_class_accuracy(logits.argmax(dim=1), labels, num_classes)
    top5 = per_class_topk_accuracy(logits, labels, num_classes, 5)
    return float(np.nanmean(top1)), float(np.nanmean(top5))


def _fixed_features(
    backbone: nn.Module,
    images: torch.Tensor,
    config: ProbeConfig,
    device: torch.device,
    stored: torch.Tensor | None,
) -> torch.Tensor | None:
    """The train images' features when the probe trains on fixed ones (no ``config.augment``):
    ``stored`` where given, else computed; None with augmentation."""
    if config.augment:
        return None
    return stored if stored is not None else extract_features(backbone, images, device)


def train_probe(
    backbone: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    config: ProbeConfig,
    device: torch.device,
    generator: torch.Generator,
    progress: bool = True,
    desc: str = "probe",
    crop_size: int | None = None,
    train_features: torch.Tensor | None = None,
) -> tuple[nn.Linear, int, list[dict[str, float]]]:
    """Train a linear layer on frozen features; return (best-validation layer, its epoch, history).

    SGD with momentum, the lr of each epoch from :func:`probe_lr`. With
    ``config.augment`` every epoch sees new RandomCrop(padding) + flip views (the paper's
    setting, a backbone forward per epoch), or RandomResizedCrop(``crop_size``) + flip ones
    (``crop: resized``); otherwise features are computed once. The best epoch is the one of
    the best validation ``config.select_by`` accuracy (the first of equals) among the
    validated ones (every ``validate_every``-th and the last; the others' history rows have
    no validation keys). ``train_features``: the train images' stored features (without
    ``config.augment``), else computed.
    """
    train_images, train_labels = train[0], train[1].to(device)
    crop_size = crop_size or train_images.shape[-1]
    val_features = extract_features(backbone, validation[0], device)
    val_labels = validation[1].to(device)
    fixed_features = _fixed_features(backbone, train_images, config, device, train_features)
    linear = new_linear(backbone.feature_dim, num_classes, config).to(device)
    optimizer = torch.optim.SGD(
        linear.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    best_acc, best_epoch, best_state = -1.0, 0, None
    history: list[dict[str, float]] = []
    for epoch in tqdm(
        range(1, config.epochs + 1), desc=desc, unit="epoch", disable=not progress, mininterval=2.0
    ):
        lr = probe_lr(epoch, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        train_loss = _probe_epoch(
            backbone, linear, optimizer, train_images, train_labels, fixed_features, config,
            generator, crop_size,
        )  # fmt: skip
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss}
        history.append(row)
        if epoch % config.validate_every and epoch != config.epochs:
            continue
        val_acc, val_top5 = _validation_accuracies(linear, val_features, val_labels, num_classes)
        row.update(val_accuracy=val_acc, val_top5=val_top5)
        chosen = val_top5 if config.select_by == "top5" else val_acc
        if chosen > best_acc:
            best_acc, best_epoch, best_state = chosen, epoch, copy.deepcopy(linear.state_dict())
    linear.load_state_dict(best_state)
    return linear, best_epoch, history


def fit_and_test(
    inputs: ProbeInputs,
    train: tuple[torch.Tensor, torch.Tensor],
    config: ProbeConfig,
    seed: int,
    name: str,
    train_features: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Train a linear probe on ``train`` (best epoch on the split's validation set; its stored
    features ``train_features``, if any) and return its per-class test accuracy, best epoch
    and history."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    torch.manual_seed(seed)  # the linear layer's initialisation: same seed, same probe
    linear, best_epoch, history = train_probe(
        inputs.backbone,
        train,
        inputs.subset("validation"),
        inputs.num_classes,
        config,
        inputs.device,
        generator,
        inputs.progress,
        desc=f"{name} probe",
        crop_size=inputs.crop_size,
        train_features=train_features,
    )
    test_features = inputs.test_features()
    return {
        "per_class_accuracy": inputs.test_accuracy(_predict(linear, test_features)),
        "best_epoch": best_epoch,
        "validation_accuracy": history[best_epoch - 1]["val_accuracy"],
        "validation_top5": history[best_epoch - 1]["val_top5"],
        "selected_by": f"validation {config.select_by}",
        "history": history,
    }


def probe_pool(
    inputs: ProbeInputs, subset: str, config: ProbeConfig
) -> tuple[ImageRows, torch.Tensor]:
    """(images, labels) of split subset ``subset``, gathered per batch: centre-cropped to the
    crop size, or as stored for ``crop: resized`` views (cropped from the whole image)."""
    rows = torch.as_tensor(inputs.split["indices"][subset], dtype=torch.long)
    resized = config.augment and config.crop == "resized"
    images = ImageRows(inputs.dataset.train_images, rows, None if resized else inputs.crop_size)
    return images, inputs.dataset.train_labels[rows]


@register
class LinearProbe(Probe):
    """Linear separability: a linear layer trained on the balanced train pool."""

    name = "linear"
    title = "Linear separability"
    train_subset = "train"
    train_set = "D_b pool"
    in_paper = True
    Settings = ProbeConfig

    def evaluate(self, inputs: ProbeInputs, settings: dict[str, Any]) -> dict[str, Any]:
        config = self.settings(settings)
        train = probe_pool(inputs, self.train_subset, config)
        stored = None if config.augment else inputs.stored_features(self.train_subset)
        return fit_and_test(inputs, train, config, inputs.seed, self.name, stored)


@register
class FewShotProbe(LinearProbe):
    """The few-shot probe: the same linear probe trained on ``S_b`` (1 % of the balanced
    train set, inside ``D_i``)."""

    name = "fewshot"
    title = "Few-shot (S_b) probe"
    train_subset = "S_b"
    train_set = "S_b"
