"""Synchronised BatchNorm for multi-process pretraining: batch statistics over the global
batch, as the reference's DDP runs (``convert_sync_batchnorm``) compute them.

torch's ``nn.SyncBatchNorm`` runs on GPUs only; this one is plain collectives
(``all_reduce``), so it runs under gloo on CPUs as under NCCL, and the tests check it against
one process. In training mode inside a process group, with every rank's share ``x_r`` of the
batch (``N = sum_r N_r`` values per channel over batch and space):

    forward:   mean = sum_r sum(x_r) / N,   var = sum_r sum((x_r - mean)^2) / N   (biased)
               y = weight * (x - mean) / sqrt(var + eps) + bias
               running_mean <- (1 - m) running_mean + m mean
               running_var  <- (1 - m) running_var  + m var N / (N - 1)       (unbiased)
    backward:  with xhat = (x - mean) / sqrt(var + eps) and the upstream gradient g,
               dx = weight / sqrt(var + eps) * (g - sum_all(g) / N - xhat * sum_all(g xhat) / N)
               dweight = sum_local(g xhat),  dbias = sum_local(g)

(``sum_all``: over every rank, one more ``all_reduce``; the parameters' gradients stay local,
as the training loop averages them over the ranks afterwards). One ``all_reduce`` in the
forward carries per channel the local count, sum, squared deviations about the local mean
and the local ``N_r mean_r^2``, which combine to the global variance without the cancellation
of a plain sum of squares. Statistics are computed in float32 (also under bf16 autocast).
Outside a process group, or in eval mode, it is exactly ``nn.BatchNorm``; its state dict is
BatchNorm's, so a synchronised model saves and loads as a plain one. Dual BatchNorm stays
dual: each of its two BatchNorms is converted, with its own statistics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sdclr import distributed


def _shape(x: torch.Tensor) -> tuple[list[int], list[int]]:
    """(dimensions reduced over, broadcast shape of a per-channel vector) for ``x``."""
    dims = [0, *range(2, x.dim())]
    return dims, [1, x.shape[1]] + [1] * (x.dim() - 2)


class _SyncBatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, weight, bias, running_mean, running_var, eps, momentum):
        dims, view = _shape(x)
        xf = x.float()
        count = torch.full((1,), xf.numel() / xf.shape[1], device=x.device)
        local_mean = xf.mean(dims)
        deviations = (xf - local_mean.view(view)).square().sum(dims)
        stats = torch.cat([count, count * local_mean, deviations, count * local_mean.square()])
        dist.all_reduce(stats)
        total, sums, squares, between = stats[:1], *stats[1:].chunk(3)
        mean = sums / total
        var = ((squares + between - total * mean.square()) / total).clamp_min(0)
        invstd = torch.rsqrt(var + eps)
        xhat = (xf - mean.view(view)) * invstd.view(view)
        y = xhat * weight.float().view(view) + bias.float().view(view)
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * total / (total - 1))
        ctx.save_for_backward(xhat, invstd, weight, total)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        xhat, invstd, weight, total = ctx.saved_tensors
        dims, view = _shape(grad)
        g = grad.float()
        local = torch.cat([g.sum(dims), (g * xhat).sum(dims)])
        summed = local.clone()
        dist.all_reduce(summed)
        sum_g, sum_g_xhat = (summed / total).chunk(2)
        scale = (weight.float() * invstd).view(view)
        dx = scale * (g - sum_g.view(view) - xhat * sum_g_xhat.view(view))
        dbias, dweight = local.chunk(2)
        return (
            dx.to(grad.dtype),
            dweight.to(weight.dtype),
            dbias.to(weight.dtype),
            None,
            None,
            None,
            None,
        )


class _SyncMixin:
    """BatchNorm whose training-mode forward uses the global batch's statistics inside a
    process group (see the module docstring); plain BatchNorm otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (
            self.training and self.affine and self.track_running_stats and distributed.active()
        ):
            return super().forward(x)  # type: ignore[misc]
        self._check_input_dim(x)
        self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:  # a cumulative average, as nn.BatchNorm
            momentum = 1.0 / float(self.num_batches_tracked)
        return _SyncBatchNormFunction.apply(
            x, self.weight, self.bias, self.running_mean, self.running_var, self.eps, momentum
        )


class SyncBatchNorm1d(_SyncMixin, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` synchronised over the process group in training."""


class SyncBatchNorm2d(_SyncMixin, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` synchronised over the process group in training."""


_SYNCED = {nn.BatchNorm1d: SyncBatchNorm1d, nn.BatchNorm2d: SyncBatchNorm2d}


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` inside ``module`` by its
    synchronised twin with the same parameters and statistics (in place; returns ``module``).
    Dual BatchNorm's pair is converted member by member, so it stays two sets of statistics."""
    for name, child in module.named_children():
        synced = _SYNCED.get(type(child))
        if synced is not None:
            twin = synced(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            twin.load_state_dict(child.state_dict())
            twin.to(child.running_mean.device if child.running_mean is not None else "cpu")
            twin.train(child.training)
            setattr(module, name, twin)
        else:
            convert_sync_batchnorm(child)
    return module
