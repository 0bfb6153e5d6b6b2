"""Linear and few-shot probes of a frozen pretrained backbone.

Both probes train one linear layer on the backbone's features (backbone frozen, BatchNorm in
eval mode, the dense branch), pick the epoch with the best validation accuracy, and report
that epoch's per-class test accuracy with the Many / Medium / Few / Std / All summary.
The linear probe trains on the split's balanced train pool, the few-shot probe on ``S_b``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from sdclr.config import dataclass_from_dict
from sdclr.data.augment import random_crop_flip
from sdclr.errors import InputError
from sdclr.groups import class_groups, group_summary
from sdclr.io import torch_load
from sdclr.methods import create_method
from sdclr.models import ModelConfig, set_branch

log = logging.getLogger(__name__)

PROBE_TRAIN_SUBSET = {"linear": "train", "fewshot": "S_b"}


@dataclass(frozen=True)
class ProbeConfig:
    """Probe optimisation (config keys ``linear_probe`` / ``fewshot_probe``); paper defaults."""

    epochs: int
    batch_size: int = 128
    lr: float = 30.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (10, 20)
    gamma: float = 0.1
    augment: bool = True
    padding: int = 4


def load_backbone(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the encoder saved in ``model.pt``; return (its dense-branch backbone, meta)."""
    state = torch_load(path, "pretrained model")
    required = {"state_dict", "algorithm", "method", "model_config", "in_channels"}
    if not isinstance(state, dict) or not required <= set(state):
        raise ValueError(
            f"{path} is not a pretrained model written by sdclr.train; re-run pretrain"
        )
    try:
        method = create_method(state["algorithm"], state["method"]["hyperparameters"])
        model = method.build_model(ModelConfig(**state["model_config"]), state["in_channels"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"{path}: its model description cannot be rebuilt ({err}); re-run pretrain for it"
        ) from None
    _check_weights_fit(model, state["state_dict"], path)
    model.load_state_dict(state["state_dict"])
    set_branch(model, pruned=False)
    backbone = model.backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return backbone, meta


def _check_weights_fit(model: nn.Module, weights: dict[str, Any], path: str | Path) -> None:
    """One line naming ``path`` when ``weights`` do not fit ``model`` (its metadata's model)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mismatched = [
        k
        for k in expected
        if k in weights
        and (not isinstance(weights[k], torch.Tensor) or weights[k].shape != expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        first = (mismatched or missing or unexpected)[0]
        raise InputError(
            f"{path}: its weights do not fit the model its metadata describes "
            f"({len(mismatched)} tensors of another shape, {len(missing)} missing, "
            f"{len(unexpected)} unexpected; first: {first}); re-run pretrain for it"
        )


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Central ``size`` x ``size`` crop (no-op when the images are already that size)."""
    h, w = images.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"images of {h}x{w} are smaller than the crop size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float in [0, 1] (float images pass through)."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def extract_features(
    backbone: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 512
) -> torch.Tensor:
    """Backbone features of uint8 ``images`` (no augmentation), computed in batches."""
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = to_float(images[start : start + batch_size].to(device))
        out.append(backbone(batch).float())
    return torch.cat(out) if out else torch.empty(0, device=device)


def per_class_accuracy(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> np.ndarray:
    """Accuracy of every class in percent (NaN for a class absent from ``labels``)."""
    predictions, labels = predictions.cpu(), labels.cpu()
    correct = torch.bincount(labels[predictions == labels], minlength=num_classes).double()
    total = torch.bincount(labels, minlength=num_classes).double()
    acc = torch.where(total > 0, 100.0 * correct / total.clamp(min=1), float("nan"))
    return acc.numpy()


def _predict(linear: nn.Module, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return linear(features).argmax(dim=1)


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
) -> tuple[nn.Linear, int, list[dict[str, float]]]:
    """Train a linear layer on frozen features; return (best-validation layer, its epoch, history).

    SGD with momentum, the lr multiplied by ``gamma`` at each milestone epoch. With
    ``config.augment`` every epoch sees new RandomCrop(padding) + flip views (the paper's
    setting, a backbone forward per epoch); otherwise features are computed once.
    """
    train_images, train_labels = train[0], train[1].to(device)
    val_features = extract_features(backbone, validation[0], device)
    val_labels = validation[1].to(device)
    fixed_features = None if config.augment else extract_features(backbone, train_images, device)
    linear = nn.Linear(backbone.feature_dim, num_classes).to(device)
    optimizer = torch.optim.SGD(
        linear.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(config.milestones), gamma=config.gamma
    )
    best_acc, best_epoch, best_state = -1.0, 0, None
    history: list[dict[str, float]] = []
    n = train_labels.shape[0]
    for epoch in tqdm(
        range(1, config.epochs + 1), desc=desc, unit="epoch", disable=not progress, mininterval=2.0
    ):
        order = torch.randperm(n, generator=generator, device=generator.device).to(device)
        loss_sum, batches = torch.zeros((), device=device), 0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            if fixed_features is not None:
                features = fixed_features[idx]
            else:
                # Crop and flip where the images and the generator live (CPU), then move.
                views = random_crop_flip(
                    train_images[idx.to(train_images.device)], config.padding, generator
                ).to(device)
                with torch.no_grad():
                    features = backbone(views).float()
            loss = F.cross_entropy(linear(features), train_labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            batches += 1
        scheduler.step()
        val_acc = float(
            np.nanmean(per_class_accuracy(_predict(linear, val_features), val_labels, num_classes))
        )
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(loss_sum) / max(1, batches),
                "val_accuracy": val_acc,
            }
        )
        if val_acc > best_acc:
            best_acc, best_epoch, best_state = val_acc, epoch, copy.deepcopy(linear.state_dict())
    linear.load_state_dict(best_state)
    return linear, best_epoch, history


def run_probe(
    model_path: str | Path,
    dataset: Any,
    split: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    device: torch.device,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the ``settings["probe"]`` probe ("linear" or "fewshot"); return the evaluation record.

    ``dataset`` is an ``ImageDataset`` (uint8 tensors), ``split`` a split record. Accuracies are
    percentages; groups come from the split's ``D_i`` counts with ``settings["groups"]``.
    """
    probe = settings["probe"]
    config = dataclass_from_dict(ProbeConfig, settings["probe_config"], f"{probe}_probe")
    backbone, meta = load_backbone(model_path)
    backbone.to(device)
    crop = settings.get("crop_size") or dataset.train_images.shape[-1]
    num_classes = dataset.num_classes

    def subset(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(split["indices"][name], dtype=torch.long)
        return center_crop(dataset.train_images[idx], crop), dataset.train_labels[idx]

    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    torch.manual_seed(seed)  # the linear layer's initialisation: same seed, same probe
    linear, best_epoch, history = train_probe(
        backbone,
        subset(PROBE_TRAIN_SUBSET[probe]),
        subset("validation"),
        num_classes,
        config,
        device,
        generator,
        progress,
        desc=f"{probe} probe",
    )
    test_features = extract_features(backbone, center_crop(dataset.test_images, crop), device)
    test_labels = dataset.test_labels.to(device)
    per_class = per_class_accuracy(_predict(linear, test_features), test_labels, num_classes)
    groups = class_groups(split["counts"]["D_i"], settings["groups"])
    summary = group_summary(per_class, groups)
    log.info(
        "%s probe: best epoch %d, test %s",
        probe,
        best_epoch,
        ", ".join(f"{k} {v:.2f}" for k, v in summary.items()),
    )
    return {
        "dataset": settings["dataset"],
        "method": meta["method"]["name"],
        "label": meta["method"].get("label", meta["method"]["name"]),
        "algorithm": meta["algorithm"],
        "pretrain_set": meta["method"].get("pretrain_set", "D_i"),
        "split": split["split"],
        "seed": seed,
        "probe": probe,
        "probe_train_size": len(split["indices"][PROBE_TRAIN_SUBSET[probe]]),
        "best_epoch": best_epoch,
        "validation_accuracy": history[best_epoch - 1]["val_accuracy"],
        "summary": summary,
        "per_class_accuracy": [float(a) for a in per_class],
        "train_counts": list(split["counts"]["D_i"]),
        "groups": groups,
        "history": history,
    }
