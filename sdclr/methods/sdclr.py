"""SDCLR: SimCLR against a pruned self-competitor of the same network (Jiang et al. 2021).

At the start of every epoch the ``ceil(p * N)`` smallest-magnitude conv weights are masked
(global unstructured pruning). View 1 goes through the dense branch, view 2 through the
pruned branch, which shares the masked weights but has its own BatchNorm layers (dual BN);
the loss is NT-Xent(z_dense, z_pruned).

The reference implementation back-propagates twice, each time with the other branch's
projections detached. The sum of those two gradients is exactly the gradient of one
NT-Xent(z_dense, z_pruned) with nothing detached (each backward yields the partial derivative
through one argument), so a single backward trains both branches identically.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from sdclr.methods.base import Method
from sdclr.methods.registry import register
from sdclr.models import branch, global_magnitude_prune
from sdclr.settings import setting


@register
class SDCLR(Method):
    name = "sdclr"
    dual_bn = True

    @dataclasses.dataclass(frozen=True)
    class Hyperparameters:
        """SDCLR's hyperparameters (config key ``methods.<run>.hyperparameters``)."""

        temperature: float = setting(0.2, doc="NT-Xent temperature.", exclusive_minimum=0)
        prune_ratio: float = setting(
            0.9,
            doc="Fraction p of conv weights masked in the pruned branch.",
            minimum=0,
            exclusive_maximum=1,
        )
        head_hidden_layers: int = setting(
            2, doc="Hidden Linear + BN + ReLU blocks of the projection head.", minimum=0
        )

    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        pruned = global_magnitude_prune(model, self.hparams.prune_ratio)
        return {"pruned_weights": float(pruned)}

    def loss(
        self, model: nn.Module, view1: torch.Tensor, view2: torch.Tensor, per_sample: bool = False
    ) -> torch.Tensor:
        z_dense, h_dense = self.encode(model, view1)
        with branch(model, pruned=True):
            z_pruned, h_pruned = self.encode(model, view2)
        return self.contrastive_loss(z_dense, z_pruned, h_dense, h_pruned, per_sample)
