"""Pruning Identified Exemplars (PIEs): the test images on which a pruned network and its dense
parent disagree (Hooker, Courville, Clark, Dauphin, Frome, "What Do Compressed Deep Neural
Networks Forget?", 2019; the motivation of SDCLR, Jiang et al. 2021, whose claim is that PIEs
concentrate in the tail classes).

For one pretrained model: the dense network f and the pruned network f_p (the same weights
with the ``ceil(p * N)`` smallest-magnitude conv weights masked, by the pipeline's one global
magnitude pruning, :func:`sdclr.models.global_magnitude_prune`) are each probed with the same
non-trained probe fitted on their own features of the balanced train pool (the mean classifier
by default, or weighted kNN); with y(x) and y_p(x) their test predictions, the PIE rate of
class c is::

    PIE_c = 100 * |{x in test_c : y(x) != y_p(x)}| / |test_c|     (percent)

Choices the papers leave open, made here:

- The mask is recomputed from the *final* weights at the method's own ``prune_ratio`` (SDCLR's
  saved mask is the one of its last epoch's start); a method without one is pruned at the
  analysis setting ``prune_ratio`` (default 0.9, the paper's CIFAR ratio). The pruned network
  is not fine-tuned (Hooker et al. fine-tune while pruning; a pretrained SDCLR model's pruned
  branch is what SDCLR trains against, and we measure that branch).
- BatchNorm of the pruned network: SDCLR (and any method with dual BN) uses its pruned branch's
  own BatchNorm layers, as in its training. A method with one set of BN layers (SimCLR) has no
  statistics for its pruned network; ``bn_statistics: reestimate`` (default) recomputes the
  running means and variances of the backbone's BN layers from the pruned network's
  activations on the model's pretraining images (D_i, or D_b for a balanced control;
  centre crops, no augmentation, a cumulative average over batches) while keeping the dense
  affine parameters (SDCLR's pruned statistics, too, come from the pruned weights on D_i,
  though from augmented views and next to affine parameters of its own). ``dense`` keeps the
  dense statistics as they are: the pruned activations are then normalised with another
  network's statistics, a mismatch SDCLR's pruned branch does not have, and the rate mixes it
  with what pruning forgets (on the demo's SimCLR model of split 1, dense statistics raise the
  All PIE rate from 18 % to 31 % and lower the pruned network's mean-classifier accuracy from
  62 % to 51 %).
- The probe is fitted separately on each network's own pool features (class means, or the kNN
  memory bank), so a disagreement is a change in what the representation supports, not a
  classifier applied to features it was not fitted on. The default is the mean classifier (no
  hyperparameters; kNN's k and T come from ``knn_probe``).
"""

from __future__ import annotations

import torch
from torch import nn

from sdclr.models import global_magnitude_prune, set_branch
from sdclr.models.dual_bn import DualBatchNorm
from sdclr.probes.features import to_float


def has_pruned_branch(model: nn.Module) -> bool:
    """Whether ``model`` keeps separate BatchNorm layers for a pruned branch (SDCLR's dual BN)."""
    return any(isinstance(m, DualBatchNorm) for m in model.modules())


def prune_for_analysis(model: nn.Module, ratio: float) -> int:
    """Recompute the global magnitude mask of ``model`` from its current weights at ``ratio``
    and switch it to its pruned branch (masked convs; the pruned BN where it has dual BN).
    Returns the number of masked weights, ``ceil(ratio * N)``."""
    masked = global_magnitude_prune(model, ratio)
    set_branch(model, pruned=True)
    return masked


@torch.no_grad()
def reestimate_bn(
    backbone: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256
) -> None:
    """Recompute the running mean and variance of every BatchNorm in ``backbone`` from its
    activations on uint8 ``images`` (a cumulative average over batches; affine parameters
    kept), then put it back in eval mode."""
    norms = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    backbone.train()
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size]
            if batch.shape[0] > 1:  # BN cannot take the statistics of one image
                backbone(to_float(batch.to(device)))
    finally:
        backbone.eval()
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum


def pie_rates(
    dense: torch.Tensor, pruned: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> list[float]:
    """Per-class PIE rate (%): the share of a class's test images whose dense and pruned
    predictions differ (NaN for a class with no test image)."""
    dense, pruned, labels = dense.cpu(), pruned.cpu(), labels.cpu()
    disagree = torch.bincount(labels[dense != pruned], minlength=num_classes).double()
    total = torch.bincount(labels, minlength=num_classes).double()
    rate = torch.where(total > 0, 100.0 * disagree / total.clamp(min=1), float("nan"))
    return [float(r) for r in rate]
