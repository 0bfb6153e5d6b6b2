"""Contrastive losses as plain functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sdclr import distributed


def nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, per_sample: bool = False
) -> torch.Tensor:
    """NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) of two views.

    With ``z = normalize(cat(z1, z2))`` (2N rows, unit L2 norm) and ``s_ij = z_i . z_j``, the
    positive of row ``i`` is its partner ``p(i) = (i + N) mod 2N`` and

        loss = 1/(2N) * sum_i -log( exp(s_{i,p(i)} / t) / sum_{j != i} exp(s_ij / t) )

    i.e. the denominator holds the positive and the 2N - 2 other views, never the view itself.
    It is computed as a cross-entropy over the similarity rows with the diagonal masked out,
    in float32 even inside an autocast region (bf16 similarities would blur the loss), and
    with no data-dependent shapes (nothing waits for the device).

    In a multi-process run (``sdclr.distributed``) the views of every rank are gathered
    first,
    so N is the global batch and each rank computes the loss of the whole batch.

    With ``per_sample`` the result is the loss of each sample instead, the mean of its two
    views' terms, ``l_k = (term_k + term_{k+N}) / 2`` for k < N (their mean is the loss above);
    this is what per-sample methods (BCL's momentum loss) observe.
    """
    with torch.autocast(device_type=z1.device.type, enabled=False):
        return pair_cross_entropy(pair_similarities(z1, z2) / temperature, per_sample)


def pair_similarities(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """``s = z @ z.T`` with ``z = normalize(cat(z1, z2))`` (2N x 2N cosine similarities, fp32),
    after gathering every rank's rows in a multi-process run (row ``i``'s positive is row
    ``(i + N) mod 2N``)."""
    if z1.shape != z2.shape:
        raise ValueError(
            f"views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    z1, z2 = distributed.gather(z1), distributed.gather(z2)
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        return z @ z.T


def pair_cross_entropy(logits: torch.Tensor, per_sample: bool = False) -> torch.Tensor:
    """NT-Xent's cross-entropy over 2N x 2N pair logits: row ``i`` against its positive
    ``(i + N) mod 2N``, its own entry masked out; with ``per_sample`` the mean of each sample's
    two view terms (N values) instead of the mean over the 2N rows."""
    n = logits.shape[0] // 2
    with torch.autocast(device_type=logits.device.type, enabled=False):
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        targets = torch.arange(2 * n, device=logits.device).roll(n)
        if not per_sample:
            return F.cross_entropy(logits, targets)
        terms = F.cross_entropy(logits, targets, reduction="none")
        return (terms[:n] + terms[n:]) / 2
