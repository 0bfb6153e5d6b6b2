"""Encoders for contrastive pretraining: ResNet trunk + projection head, optionally dual-BN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

from sdclr.models.dual_bn import DENSE, PRUNED, DualBatchNorm
from sdclr.models.heads import projection_head
from sdclr.models.prunable import MaskedConv2d, global_magnitude_prune, masked_convs
from sdclr.models.resnet import ResNet
from sdclr.models.sync_bn import convert_sync_batchnorm
from sdclr.settings import setting

__all__ = [
    "ContrastiveModel",
    "ModelConfig",
    "build_model",
    "branch",
    "convert_sync_batchnorm",
    "global_magnitude_prune",
    "masked_convs",
    "set_branch",
]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture settings (config key ``model``)."""

    arch: Literal["resnet18", "resnet50"] = setting("resnet18", doc="The backbone.")
    stem: Literal["cifar", "imagenet"] = setting(
        "cifar", doc="cifar: 3x3 conv, no max-pool; imagenet: 7x7 stride-2 conv and max-pool."
    )
    width: float = setting(1.0, doc="Channel width multiplier.", exclusive_minimum=0)
    projection_dim: int = setting(128, doc="Output size of the projection head.", minimum=1)
    projection_hidden_dim: int | None = setting(
        None, doc="Hidden width of the head (null: the feature dimension).", minimum=1
    )
    input_normalization: Literal["imagenet", "none"] = setting(
        "imagenet",
        doc="The first op of the backbone: (x - mean) / std with ImageNet's statistics, as "
        "the reference's ResNets (1 channel: mean 0.449, std 0.226); none: [0, 1] pixels.",
    )


class ContrastiveModel(nn.Module):
    """``backbone`` (features for probes) followed by ``head`` (projections for the loss)."""

    def __init__(self, backbone: ResNet, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = backbone.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_model(
    config: ModelConfig, in_channels: int, head_hidden_layers: int = 1, dual_bn: bool = False
) -> ContrastiveModel:
    """Build the encoder; with ``dual_bn`` every BatchNorm is a dense/pruned pair."""
    norm2d: Any = partial(DualBatchNorm, nn.BatchNorm2d) if dual_bn else nn.BatchNorm2d
    norm1d: Any = partial(DualBatchNorm, nn.BatchNorm1d) if dual_bn else nn.BatchNorm1d
    backbone = ResNet(
        config.arch, config.stem, config.width, in_channels, norm2d, config.input_normalization
    )
    hidden = config.projection_hidden_dim or backbone.feature_dim
    head = projection_head(
        backbone.feature_dim, hidden, config.projection_dim, head_hidden_layers, norm1d
    )
    return ContrastiveModel(backbone, head)


def set_branch(model: nn.Module, pruned: bool) -> None:
    """Switch every masked conv and dual BN of ``model`` to the pruned or the dense branch."""
    for module in model.modules():
        if isinstance(module, MaskedConv2d):
            module.use_mask = pruned
        elif isinstance(module, DualBatchNorm):
            module.active = PRUNED if pruned else DENSE


@contextmanager
def branch(model: nn.Module, pruned: bool) -> Iterator[nn.Module]:
    """Run the block with ``model`` on the pruned (or dense) branch, then back to dense."""
    set_branch(model, pruned)
    try:
        yield model
    finally:
        set_branch(model, False)
