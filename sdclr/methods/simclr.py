"""SimCLR: both views through the same network, NT-Xent between their projections."""

from __future__ import annotations

import torch
from torch import nn

from sdclr.methods.base import Method
from sdclr.methods.registry import register


@register
class SimCLR(Method):
    name = "simclr"

    def loss(
        self, model: nn.Module, view1: torch.Tensor, view2: torch.Tensor, per_sample: bool = False
    ) -> torch.Tensor:
        # One forward over both views: BatchNorm sees the 2N-sample batch, as in SimCLR.
        z, h = self.encode(model, torch.cat([view1, view2]))
        z1, z2 = z.chunk(2)
        h1, h2 = h.chunk(2) if h is not None else (None, None)
        return self.contrastive_loss(z1, z2, h1, h2, per_sample)
