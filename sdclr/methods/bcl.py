"""BCL: Boosted Contrastive Learning (Zhou, Yao, Wang, Han, Zhang, "Contrastive Learning with
Boosted Memorization", ICML 2022), as an extension of SimCLR (BCL-I) or SDCLR (BCL-D).

Deep networks memorise the easy (head) samples first; a sample whose contrastive loss stays
high is a tail sample the network has not memorised. BCL tracks each sample's loss with
momentum and gives the hard ones stronger augmentation::

    L_i <- beta * L_i + (1 - beta) * l_i       (beta = 0.97; the first loss of i is stored)
    z_i  = (L_i - mean(L)) / std(L)            (over the pretraining set, after every epoch)
    w_i  = (z_i / max_j |z_j|) / 2 + 1/2       (in [0, 1]; 0 for every sample in epoch 1)

and each view of sample i gets k RandAugment operations, each applied with probability w_i
at magnitude ``m_min + (30 - m_min) w_i`` (``sdclr.data.augment.randaugment``, after the
SimCLR augmentation, as in BCL's pipeline). ``l_i`` is the sample's contrastive loss, the mean
of its two views' NT-Xent terms. BCL-I: on SimCLR, k = 1, m_min = 10; BCL-D: on SDCLR, k = 2,
m_min = 5. BCL's README trains SimCLR and BCL-I with weight decay 5e-4 and SDCLR and BCL-D
with 1e-4; a config sets it per method (``pretrain: {weight_decay: ...}``).

Facts from the public code (MediaBrain-SJTU/BCL at a2342f8: ``README.md``, ``train.py``,
``train_sdclr.py``, ``data/memoboosted_cifar100.py``, ``data/randaug.py``,
``losses/nt_xent.py``) and the choices made here:

* ``l_i`` is ``nt_xent(..., average=False)``: the two views' terms averaged, as here.
* ``train.py``'s and ``train_sdclr.py``'s default ``--momentum_loss_beta`` is 0.97
  (``train.py``'s was 0.95 before 13e0530): ``momentum`` is a setting, default 0.97.
* The magnitude (``memoboosted_cifar100.py``): for k = 1 (BCL-I) ``10 + 20 w_i``; for every
  other k (BCL-D, k = 2) ``5 + 25 w_i u_i`` with ``u_i = np.random.rand(1)`` drawn once when the
  sample's transform is built, so one draw per sample and loader call, shared by its two
  views; the probability stays ``w_i``. (An earlier revision, 2013b8f, had ``30 w_i u_i``,
  without m_min.) ``magnitude_jitter: true`` multiplies ``w_i`` in the magnitude by such a
  draw here (:func:`jittered_strength`); it is off by default (the formula above), and the
  BCL-D runs of BCL's protocol in the configs set it.
* Our loop keeps the last partial batch by default, so every sample is seen each epoch; with
  ``pretrain.drop_last`` (or a remainder of a multi-GPU split) a few may go unseen: an unseen
  sample keeps its momentum loss; ``z`` and ``w`` are computed over the samples seen at least
  once, and a sample never seen has ``w = 0``. When every ``L_i`` is equal, ``w = 1/2``.
* In a multi-GPU run every rank observes every sample's loss (they are gathered), so the state
  is the same on every rank.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from sdclr.data.augment.randaugment import RandAugmentConfig, rand_augment
from sdclr.methods.base import Extension
from sdclr.methods.registry import register_extension
from sdclr.settings import setting


def momentum_update(
    momentum_loss: torch.Tensor,
    seen: torch.Tensor,
    indices: torch.Tensor,
    losses: torch.Tensor,
    momentum: float,
) -> None:
    """In place: ``L_i <- momentum L_i + (1 - momentum) l_i`` for the ``indices`` seen before,
    ``L_i <- l_i`` for those seen for the first time; marks them seen."""
    losses = losses.to(momentum_loss.dtype)
    previous = momentum_loss[indices]
    blended = momentum * previous + (1.0 - momentum) * losses
    momentum_loss[indices] = torch.where(seen[indices], blended, losses)
    seen[indices] = True


def jittered_strength(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """BCL-D's magnitude strength of the ``2N`` views ``[view 1 of N samples, view 2 of the
    same N]`` with weights ``weights [2N]``: ``w_i u_i`` with one ``u_i ~ U(0, 1)`` per sample
    (drawn from ``generator`` in sample order), the same for both of its views."""
    half = weights.shape[0] // 2
    draw = torch.rand(half, generator=generator, device=weights.device)
    return weights * draw.repeat(2)


def boost_weights(momentum_loss: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """``w_i = (z_i / max|z|) / 2 + 1/2`` with ``z`` the momentum loss standardised over the
    seen samples (with ``torch.std``'s unbiased std, as BCL); unseen samples get 0."""
    weights = torch.zeros_like(momentum_loss)
    values = momentum_loss[seen]
    if values.numel() == 0:
        return weights
    std = values.std() if values.numel() > 1 else values.new_zeros(())
    z = (values - values.mean()) / std if std > 0 else torch.zeros_like(values)
    peak = z.abs().max()
    weights[seen] = (z / peak if peak > 0 else z) / 2 + 0.5
    return weights


@register_extension
class BoostedMemorization(Extension):
    """BCL's momentum-loss memory and loss-boosted RandAugment (config key ``bcl``)."""

    name = "bcl"
    needs_sample_losses = True

    @dataclasses.dataclass(frozen=True)
    class Settings:
        """BCL's boosted augmentation (Zhou et al., ICML 2022)."""

        num_ops: int = setting(
            doc="k: RandAugment operations per view (BCL-I 1, BCL-D 2).", minimum=1
        )
        min_magnitude: float = setting(
            doc="m_min: magnitude at w = 0 (BCL-I 10, BCL-D 5); 30 at w = 1.", minimum=0, maximum=30
        )
        momentum: float = setting(
            0.97, doc="beta of the momentum loss L <- beta L + (1 - beta) l.", minimum=0, maximum=1
        )
        magnitude_jitter: bool = setting(
            False,
            doc="Multiply w in the magnitude by one U(0, 1) draw per sample, shared by its two "
            "views (BCL's code for k = 2, BCL-D, at a2342f8); off: m_min + (30 - m_min) w.",
        )

    def setup(self, num_samples: int, device: torch.device) -> None:
        self.momentum_loss = torch.zeros(num_samples, device=device)
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=device)
        self.weights = torch.zeros(num_samples, device=device)
        self.randaugment = RandAugmentConfig(self.settings.num_ops, self.settings.min_magnitude)

    def augment_views(
        self, views: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        weights = self.weights[indices]
        strength = jittered_strength(weights, generator) if self.settings.magnitude_jitter else None
        out = rand_augment(views, weights, self.randaugment, generator, strength)
        return out.contiguous(memory_format=_memory_format(views))

    def observe_losses(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        momentum_update(self.momentum_loss, self.seen, indices, losses, self.settings.momentum)

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        self.weights = boost_weights(self.momentum_loss, self.seen)
        return {}

    def on_epoch_start(self, method: Any, epoch: int) -> dict[str, Any]:
        return {"bcl_mean_weight": round(float(self.weights.mean()), 6)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"momentum_loss": self.momentum_loss, "seen": self.seen, "weights": self.weights}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key in ("momentum_loss", "seen", "weights"):
            getattr(self, key).copy_(state[key])


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
