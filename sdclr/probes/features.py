"""What every probe and analysis starts from: the frozen pretrained backbone, its features,
and per-class accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sdclr.errors import InputError
from sdclr.methods import create_method
from sdclr.models import ModelConfig, set_branch
from sdclr.torch_files import torch_load


def load_model(path: str | Path) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Rebuild the encoder saved in ``model.pt``; return (the whole model on its dense branch,
    its method object with resolved hyperparameters, the metadata)."""
    state = torch_load(path, "pretrained model")
    required = {"state_dict", "algorithm", "method", "model_config", "in_channels"}
    if not isinstance(state, dict) or not required <= set(state):
        raise ValueError(
            f"{path} is not a pretrained model written by sdclr.training.loop; re-run pretrain"
        )
    try:
        method = create_method(state["algorithm"], state["method"]["hyperparameters"])
        # A model.pt from before input normalisation was a setting was trained without it.
        model_config = {"input_normalization": "none", **state["model_config"]}
        model = method.build_model(ModelConfig(**model_config), state["in_channels"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(
            f"{path}: its model description cannot be rebuilt ({err}); re-run pretrain for it"
        ) from None
    _check_weights_fit(model, state["state_dict"], path)
    model.load_state_dict(state["state_dict"])
    set_branch(model, pruned=False)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model, method, meta


def load_backbone(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the encoder saved in ``model.pt``; return (its dense-branch backbone, meta)."""
    model, _, meta = load_model(path)
    return model.backbone, meta


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
