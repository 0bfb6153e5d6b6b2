"""Convolutions whose weights carry a prune mask, and global magnitude pruning.

SDCLR's self-competitor is the same network with a binary mask on its conv weights. A
``MaskedConv2d`` keeps the dense weight as its only parameter and a ``weight_mask`` buffer;
while its ``use_mask`` flag is on it convolves with ``weight * weight_mask``, so the pruned
branch shares the dense weights and gradients flow to the unmasked ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` with a binary weight mask applied while ``use_mask`` is True."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("weight_mask", torch.ones_like(self.weight))
        self.use_mask = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_mask if self.use_mask else self.weight
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def masked_convs(model: nn.Module) -> list[MaskedConv2d]:
    """Every prunable conv of ``model`` (stem and shortcut convs included), in module order."""
    return [m for m in model.modules() if isinstance(m, MaskedConv2d)]


def prune_threshold_count(num_weights: int, ratio: float) -> int:
    """How many weights a global prune of ``ratio`` masks: ``ceil(ratio * N)``."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune ratio must be in [0, 1), got {ratio}")
    return math.ceil(ratio * num_weights - 1e-9)


@torch.no_grad()
def global_magnitude_prune(model: nn.Module, ratio: float) -> int:
    """Recompute every conv's mask from the current weights; return the number masked.

    Global unstructured magnitude pruning over all ``MaskedConv2d`` weights together: the
    ``ceil(ratio * N)`` weights of smallest ``|w|`` get mask 0, the others 1. The ranking is a
    sort on the weights' own device (ties broken by the sort's order), so exactly that many are
    masked; BatchNorm, linear layers and the projection head are never pruned.
    """
    convs = masked_convs(model)
    if not convs:
        raise ValueError("model has no MaskedConv2d layers to prune")
    magnitudes = torch.cat([conv.weight.detach().abs().flatten() for conv in convs])
    num_pruned = prune_threshold_count(magnitudes.numel(), ratio)
    keep = torch.ones_like(magnitudes)
    if num_pruned:
        keep[torch.argsort(magnitudes)[:num_pruned]] = 0.0
    offset = 0
    for conv in convs:
        n = conv.weight.numel()
        conv.weight_mask.copy_(keep[offset : offset + n].view_as(conv.weight))
        offset += n
    return num_pruned
