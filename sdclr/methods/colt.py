"""COLT (Bai et al., "On the Effectiveness of Out-of-Distribution Data in Self-Supervised
Long-Tail Learning", ICLR 2023, arXiv 2306.04934) as an extension of SimCLR or SDCLR (config
key ``colt``): it adds images of an outside, out-of-distribution pool to the pretraining set,
chosen near the tail of the in-distribution features, and a supervised-contrastive term that
tells the two domains apart.

Every step, each in-distribution sample's tailness score is updated from the step's
similarities (``sdclr.methods.colt_functions``: ``u_i`` the sum of its top-k negative
probabilities, ``score <- beta score + (1 - beta) u``). Before epoch ``e`` (0-based) with
``e >= W`` and ``(e - W) mod P = 0`` (W = 100, P = 25) it resamples:

1. ``f`` = normalize(projection) of every pretraining image and every pool image, the model in
   eval mode on its dense branch, without augmentation (pixels / 255);
2. K-means (C = 10) of the pretraining set's ``f``; ``m_c`` the mean score of cluster c;
3. budgets ``b = K softmax(-z / tau_c)``, ``z = (m - mean m) / std m`` (K = 10,000, tau_c = 1);
4. cluster c takes the ``b_c`` pool images nearest its centre by cosine, in cluster order, none
   twice. The epoch then trains on the pretraining set and these K images (they replace the
   previous resampling's; they are never scored).

With pool images present the loss is ``L_CL + alpha L_SCL`` (``L_SCL`` the supervised-
contrastive loss over the domain labels in-distribution / pool, at the NT-Xent temperature;
only for a batch holding a pool image, as theirs). alpha = 0.2 (their CIFAR-100 script and
default; 0.01 on ImageNet-100, 0 in their CIFAR-10 script).

Choices the paper and code leave open, and where this run differs:

* K-means: theirs is scikit-learn's (k-means++, ``random_state=0``, Euclidean on the
  normalised features); here a short torch Lloyd's from a k-means++ seeding from ``seed``,
  the same every resampling; an empty cluster takes the farthest point (as scikit-learn).
* Budgets: theirs truncate ``K w`` and add the remainder to the last cluster; here it goes to
  the largest remainders, so the budgets stay ordered by tailness (at most C - 1 images apart).
  All ``m_c`` equal: equal shares (theirs divide by a zero std). ``m_c`` averages the members
  seen so far (every one, unless ``drop_last`` skipped some); none: the overall mean.
* Scores: theirs blend with a zero-initialised buffer from epoch 2 on; here a sample's first
  score is stored whenever it is first seen. In SDCLR the similarities are those of its loss
  (dense against pruned branch); the selection uses the dense branch.
* Learning rate: theirs count the pool's steps in the cosine's length; here an epoch of any
  size advances the configured schedule by one epoch (``Training.epoch_lr``).
* The pool: on CIFAR the 300K Random Images; the demo's is the training images outside the
  pretraining set (MAK's in-domain open-world setting), see ``sdclr.data.ood_pool``.

The train log gets ``colt_pool`` (pool images this epoch) and ``colt_scl`` (mean alpha L_SCL);
``colt_resampling.json`` in the run directory records every resampling: per cluster its size,
mean score, budget, the images it took and its three most frequent classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdclr import distributed
from sdclr.errors import ConfigError
from sdclr.methods.base import Extension, Method
from sdclr.methods.colt_functions import (
    cluster_budgets,
    domain_supcon,
    kmeans,
    nearest_picks,
    topk_negative_mass,
    update_scores,
)
from sdclr.methods.registry import register_extension
from sdclr.settings import setting

RECORD_NAME = "colt_resampling.json"


def resamples(epoch: int, warmup: int, period: int) -> bool:
    """Whether the pool images are chosen anew before epoch ``e`` (0-based): ``e >= W`` and
    ``(e - W) mod P = 0`` (their ``(epoch - 1 - warmup) % sample_interval == 0``)."""
    return epoch >= warmup and (epoch - warmup) % period == 0


@torch.no_grad()
def normalised_projections(model: nn.Module, images: torch.Tensor, batch: int) -> torch.Tensor:
    """``normalize(model(x / 255))`` of uint8 ``images`` in eval mode (float32, N x d)."""
    was_training = model.training
    model.eval()
    out = [
        F.normalize(model(images[i : i + batch].float().div(255)).float(), dim=1)
        for i in range(0, images.shape[0], batch)
    ]
    model.train(was_training)
    return torch.cat(out)


def cluster_means(scores: torch.Tensor, seen: torch.Tensor, labels: torch.Tensor, k: int):
    """``m_c``: the mean score of cluster c's seen members (none: the mean of all seen)."""
    overall = scores[seen].mean() if bool(seen.any()) else scores.new_zeros(())
    means = []
    for c in range(k):
        member = (labels == c) & seen
        means.append(scores[member].mean() if bool(member.any()) else overall)
    return torch.stack(means)


def top_classes(classes: torch.Tensor | None, members: torch.Tensor, top: int = 3) -> list:
    """The ``top`` most frequent classes among ``members`` as [class, count] pairs."""
    if classes is None or not bool(members.any()):
        return []
    counts = torch.bincount(classes[members].cpu().long())
    order = sorted(range(len(counts)), key=lambda c: (-int(counts[c]), c))[:top]
    return [[c, int(counts[c])] for c in order if counts[c] > 0]


@register_extension
class COLT(Extension):
    """COLT's out-of-distribution sampling and domain SupCon term (config key ``colt``;
    Bai et al., ICLR 2023)."""

    name = "colt"
    adds_loss_term = True
    needs_step_indices = True

    @dataclasses.dataclass(frozen=True)
    class Settings:
        """COLT (Bai et al., ICLR 2023); defaults: its CIFAR-100-LT script."""

        pool: str = setting(
            "outside_pretraining_set", doc="The OOD pool: a .npy file (N x H x W x C uint8, "
            "the 300K Random Images on CIFAR), or outside_pretraining_set: the dataset's "
            "training images outside the pretraining set (the demo's)."
        )  # fmt: skip
        budget: int = setting(10000, doc="K: pool images added at each resampling.", minimum=1)
        warmup_epochs: int = setting(
            100, doc="W: epochs on the pretraining set alone before the first resampling.",
            minimum=0,
        )  # fmt: skip
        period: int = setting(25, doc="P: epochs between resamplings.", minimum=1)
        clusters: int = setting(10, doc="C: K-means clusters of the pretraining set.", minimum=1)
        top_k: int = setting(
            10, doc="k: largest negative probabilities summed into a sample's score.", minimum=1
        )
        momentum: float = setting(
            0.97, doc="beta of the scores' moving average.", minimum=0, maximum=1
        )
        cluster_temperature: float = setting(
            1.0, doc="tau_c of the budgets' softmax(-z / tau_c).", exclusive_minimum=0
        )
        weight: float = setting(
            0.2, doc="alpha of the domain SupCon term (0.2 CIFAR-100, 0.01 ImageNet-100, 0 in "
            "their CIFAR-10 script).", minimum=0,
        )  # fmt: skip
        kmeans_iterations: int = setting(300, doc="Most Lloyd iterations.", minimum=1)
        seed: int = setting(0, doc="Seed of the K-means++ seeding.", minimum=0)
        feature_batch: int = setting(
            1024, doc="Images per forward pass when computing the features.", minimum=1
        )

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.section = self.name
        self.active = False  # pool images in this epoch: the SupCon term is on
        self._ood = torch.zeros(0, dtype=torch.bool)

    def check(self, method: Method, section: str) -> None:
        self.section = section
        pool = self.settings.pool
        if pool != "outside_pretraining_set" and not pool.endswith(".npy"):
            raise ConfigError(
                f"{section}.pool: {pool!r} is neither a .npy file nor outside_pretraining_set"
            )

    def setup(self, num_samples: int, device: torch.device) -> None:
        #: Scores by pretraining-set position, whether seen, the pool images chosen (pool
        #: indices, cluster by cluster) and the resampling records.
        self.own = num_samples
        self.scores = torch.zeros(num_samples, dtype=torch.float64, device=device)
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=device)
        self.selection = torch.zeros(0, dtype=torch.long, device=device)
        self.history: list[dict[str, Any]] = []
        self.term_sum = torch.zeros((), device=device)
        self._steps = 0

    def on_epoch_start(self, method: Method, epoch: int) -> dict[str, float]:
        self.term_sum.zero_()
        self._steps = 0
        return {}

    def select_samples(
        self, method: Method, model: nn.Module, images: torch.Tensor, own: int, epoch: int
    ) -> torch.Tensor | None:
        s = self.settings
        if resamples(epoch, s.warmup_epochs, s.period):
            self._resample(method, model, images, own, epoch)
        self.active = len(self.selection) > 0
        if not self.active:
            return None
        everything = torch.arange(own, device=self.selection.device)
        return torch.cat([everything, own + self.selection])

    def _resample(
        self, method: Method, model: nn.Module, images: torch.Tensor, own: int, epoch: int
    ) -> None:
        s = self.settings
        if images.shape[0] - own < s.budget:
            raise ConfigError(
                f"{self.section}.budget: {s.budget} exceeds the pool's {images.shape[0] - own} "
                "images; lower it or name a larger pool"
            )
        own_features = normalised_projections(model, images[:own], s.feature_batch)
        pool_features = normalised_projections(model, images[own:], s.feature_batch)
        clusters = min(s.clusters, own)
        centers, labels = kmeans(own_features, clusters, s.seed, s.kmeans_iterations)
        means = cluster_means(self.scores, self.seen, labels, clusters)
        budgets = cluster_budgets(means, s.budget, s.cluster_temperature)
        picks = nearest_picks(pool_features, centers, budgets.to(pool_features.device))
        self.selection = torch.cat(picks).to(self.selection.device)
        classes = method.sample_labels
        rows = [
            {
                "cluster": c,
                "size": int((labels == c).sum()),
                "mean_score": round(float(means[c]), 6),
                "budget": int(budgets[c]),
                "pool_images": len(picks[c]),
                "top_classes": top_classes(classes, (labels == c).cpu()),
            }
            for c in range(clusters)
        ]
        self.history.append({"before_epoch": epoch + 1, "clusters": rows})

    def begin_step(self, indices: torch.Tensor) -> None:
        self._ood = indices >= self.own  # every rank's, in the loss's row order

    def loss_term(self, method: Method, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor | None:
        """``alpha L_SCL`` over the domain labels when the batch holds a pool image (else 0;
        None before any pool image); keeps the step's ``u`` for the scores."""
        s = self.settings
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1, z2 = distributed.gather(z1), distributed.gather(z2)
            self._step_mass = topk_negative_mass(z1, z2, method.temperature, s.top_k)
            if not self.active or s.weight == 0:
                return None
            ood = self._ood.to(z1.device)
            term = s.weight * domain_supcon(z1, z2, ood, method.temperature) * ood.any()
            self.term_sum.add_(term.detach())
            return term

    def observe_step(self, indices: torch.Tensor) -> None:
        own = indices < self.own
        mass = self._step_mass.to(self.scores.device)
        update_scores(self.scores, self.seen, indices[own], mass[own], self.settings.momentum)
        self._steps += 1

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        mean = float(self.term_sum) / self._steps if self._steps else 0.0
        return {"colt_pool": len(self.selection) if self.active else 0, "colt_scl": round(mean, 6)}

    def records(self) -> dict[str, Any]:
        if not self.history:
            return {}
        return {RECORD_NAME: {"budget": self.settings.budget, "resamplings": self.history}}

    def sample_statistics(self) -> dict[str, torch.Tensor]:
        return {"tail_score": self.scores.float().cpu()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "seen": self.seen,
            "selection": self.selection,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores.copy_(state["scores"])
        self.seen.copy_(state["seen"])
        self.selection = state["selection"].to(self.selection.device)
        self.history = list(state["history"])
