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


def smallest_k_mask(magnitudes: torch.Tensor, k: int, method: str = "auto") -> torch.Tensor:
    """Float mask of a 1-D tensor: 0 for the ``k`` smallest entries, 1 elsewhere; ties are
    broken by position (the first ones are masked), exactly as numpy's stable argsort ranks.

    ``method``: ``"sort"`` (a stable sort; fast on GPUs), ``"select"`` (the k-th value by
    selection, then the ties at it counted off by position with a cumulative sum: linear time,
    3-5x faster than sorting on a CPU), or ``"auto"`` (sort on CUDA, select elsewhere). Both
    give identical masks; neither copies to the host or waits for the device.
    """
    keep = torch.ones_like(magnitudes)
    if k <= 0:
        return keep
    if method == "auto":
        method = "sort" if magnitudes.is_cuda else "select"
    if method == "sort":
        keep[torch.argsort(magnitudes, stable=True)[:k]] = 0.0
        return keep
    if method != "select":
        raise ValueError(f"method must be auto, sort or select, got {method!r}")
    threshold = torch.kthvalue(magnitudes, k).values
    below = magnitudes < threshold
    tied = magnitudes == threshold
    tied_to_mask = k - below.sum()  # how many of the tied entries the k smallest still need
    masked = below | (tied & (torch.cumsum(tied, dim=0) <= tied_to_mask))
    return keep.masked_fill_(masked, 0.0)


@torch.no_grad()
def global_magnitude_prune(model: nn.Module, ratio: float) -> int:
    """Recompute every conv's mask from the current weights; return the number masked.

    Global unstructured magnitude pruning over all ``MaskedConv2d`` weights together: the
    ``ceil(ratio * N)`` weights of smallest ``|w|`` get mask 0, the others 1. The ranking
    (:func:`smallest_k_mask`) runs on the weights' own device, ties broken by position in
    module order as numpy's stable argsort would, so exactly that many are masked, with no
    copy to the host and no host-device sync; BatchNorm, linear layers and the projection head
    are never pruned. The threshold is the same as the reference's CPU sort of all conv
    weights.
    """
    convs = masked_convs(model)
    if not convs:
        raise ValueError("model has no MaskedConv2d layers to prune")
    magnitudes = torch.cat([conv.weight.detach().abs().flatten() for conv in convs])
    num_pruned = prune_threshold_count(magnitudes.numel(), ratio)
    keep = smallest_k_mask(magnitudes, num_pruned)
    offset = 0
    for conv in convs:
        n = conv.weight.numel()
        conv.weight_mask.copy_(keep[offset : offset + n].view_as(conv.weight))
        offset += n
    return num_pruned
