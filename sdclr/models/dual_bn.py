"""Dual BatchNorm: separate normalisation statistics for the dense and the pruned branch."""

from __future__ import annotations

import torch
from torch import nn

DENSE, PRUNED = 0, 1


class DualBatchNorm(nn.Module):
    """Two BatchNorm layers of one shape; ``active`` (0 = dense, 1 = pruned) picks which runs.

    SDCLR's pruned branch shares the conv weights with the dense one but keeps its own
    BatchNorm affine parameters and running statistics; evaluation uses the dense ones.
    """

    def __init__(self, bn_class: type[nn.Module], num_features: int, **kwargs) -> None:
        super().__init__()
        self.bns = nn.ModuleList([bn_class(num_features, **kwargs) for _ in range(2)])
        self.active = DENSE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.active](x)
