"""SimCLR: both views through the same network, NT-Xent between their projections."""

from __future__ import annotations

import torch
from torch import nn

from sdclr.methods.base import Method, register
from sdclr.methods.losses import nt_xent


@register
class SimCLR(Method):
    name = "simclr"

    def loss(
        self, model: nn.Module, view1: torch.Tensor, view2: torch.Tensor, per_sample: bool = False
    ) -> torch.Tensor:
        # One forward over both views: BatchNorm sees the 2N-sample batch, as in SimCLR.
        z = model(torch.cat([view1, view2]))
        z1, z2 = z.chunk(2)
        return nt_xent(z1, z2, self.temperature, per_sample)
