"""Geometric Harmonization (Zhou, Yao, Hong, Zhang, Han, Wang, "Combating Representation
Learning Disparity with Geometric Harmonization", NeurIPS 2023, arXiv 2310.17622), as an
extension of SimCLR, SDCLR or either with BCL (config key ``geometric_harmonization``).

On long-tailed data the contrastive loss spreads *samples* uniformly, so head classes take
most of the embedding space and tail classes collapse. GH adds a loss that pushes towards
*category-level* uniformity: samples are softly assigned to the K vertices of a fixed simplex
equiangular tight frame (ETF) under a marginal that follows the estimated class prior, and
each view is trained to predict the other view's assignment. With ``z`` a view's projection
(the projection head's output, d-dimensional)::

    U        polar factor of a K x d standard Gaussian matrix (U U^T = I_K; K <= d)
    M        = sqrt(K / (K - 1)) (I_K - 1 1^T / K) U       (K x d: unit rows, cosines -1/(K-1))
    t        = normalize(z M^T)                           (per view, N x K)
    Q        = N diag(u) exp(t / lambda) diag(v)          (Sinkhorn: rows sum to 1, columns
                                                           to N pi; no gradient)
    L_GH     = -1/N sum_i sum_k [ Q1_ik log softmax(t2_i / gamma)_k
                                 + Q2_ik log softmax(t1_i / gamma)_k ]
    L        = L_CL + w(e) L_GH

Sinkhorn alternates ``v = pi / (P^T u)`` and ``u = (1/N) / (P v)`` from ``u = 1/N`` (a fixed
number of iterations), ``P = exp(t / lambda)``. The prior ``pi`` is estimated from a moving
average of each sample's ``t`` (its first view's; the dense branch's in SDCLR)::

    m_i <- beta m_i + (1 - beta) t_i       (m_i <- t_i when sample i is first seen)
    pi_k = |{i : argmax_k' m_ik' = k}| / |{i seen}|

with ``beta`` = 0.9 during the warm-up and 0.999 after; pi is recomputed at the end of the
warm-up and every 20 epochs after. The weight ``w(e)`` is 0 during a warm-up of plain
contrastive training (e < W), then ``weight * min(1, (e - W + 1) / R)``. Defaults are the
paper's CIFAR-100-LT settings: K = 100, lambda = 0.05, 300 Sinkhorn iterations, gamma = 0.1,
W = 500 of 1,000 epochs, R = 10. With SDCLR the term is added for both branches: one loss
``NT-Xent(z_dense, z_pruned) + w L_GH(t_dense, t_pruned)`` differentiated through both gives
exactly the sum of the reference's two per-branch backward passes (as ``sdclr.py`` explains for
NT-Xent; the Sinkhorn targets carry no gradient).

Checked against the public code (MediaBrain-SJTU/Geometric-Harmonization: ``utils.py``
``GHLoss`` and ``sinkhorn``, ``train_cifar.py``, ``target/gen_target.py``); where it leaves a
choice open or differs, this module chose:

* Moving average: their buffer is ``torch.empty`` (uninitialised memory) to which epoch 0 adds
  ``t``; here it starts at zero and a sample's first ``t`` is stored (as epoch 0 on a zeroed
  buffer), and pi counts only samples seen (all of them, unless ``drop_last`` skips some).
* No warm-up (W = 0): their pi is undefined until the first refresh (a NameError); here pi
  starts uniform (plain Sinkhorn), and beta stays at its warm-up value throughout (their code
  switches beta only after a warm-up). No sample seen: pi uniform. Empty clusters keep
  ``pi_k = 0`` (no sample is assigned to them), as theirs.
* Refresh: they recompute pi after every step of a refresh epoch (later steps of that epoch
  see a partial update); here once, at its end. Refresh epochs are theirs: the end of epoch
  ``e`` (0-based) with ``e + 1 = W``, or ``e + 1 >= W`` and ``(e + 1) % 20 = 0``.
* The ETF is generated here from ``target_seed`` (their ``gen_target.py`` draws unseeded and
  ships the file) and saved in the checkpoint with pi and the moving average; K <= d is
  required (their assert allows K = d + 1, for which the rows are not equiangular).
* Sinkhorn: ``exp`` of ``(t - max over samples) / lambda`` per cluster (a column scaling that
  Sinkhorn's ``v`` absorbs exactly, so the same plan, without overflow for small lambda), in
  float32 outside autocast, both views in one batched call. A multi-GPU run gathers the
  projections first (the batch's Sinkhorn as one GPU's, like NT-Xent here).
* With BCL their momentum loss takes the contrastive loss only: here too (``observe_losses``
  never sees the loss term). Their BCL + GH is SimCLR + BCL with k = 1 (BCL-I).
* Their learning rate differs and is not reproduced: per epoch, 10 warm-up epochs, a cosine
  from 0.5 to 0.3 until W, then a second cosine from 0.3 to 1e-6 (``lr_scheduler_warm``), with
  weight decay 5e-4; ours is the config's (per-step warm-up, one cosine). Their CIFAR-100-LT
  is the LDAM-style ``ImbalanceCIFAR100`` (r = 100, seed 0, 10,847 images) with a linear
  probe on the full training set; ours are the SDCLR splits of the config.

The train log gets ``gh_weight`` (w of the epoch), ``gh_loss`` (the epoch's mean unweighted
L_GH; 0 while GH is off) and ``gh_clusters`` (clusters with pi > 0 after the epoch).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sdclr import distributed
from sdclr.errors import ConfigError
from sdclr.methods.base import Extension, Method
from sdclr.methods.registry import register_extension
from sdclr.models import ModelConfig
from sdclr.settings import setting


def simplex_etf(clusters: int, dim: int, seed: int) -> torch.Tensor:
    """``M = sqrt(K/(K-1)) (I - 1 1^T / K) U`` (K x d, float32), ``U = W V^T`` the polar factor
    of a K x d standard Gaussian matrix ``A = W S V^T`` (seeded): rows of unit norm with
    pairwise inner products ``-1/(K-1)``. Needs ``2 <= K <= d``."""
    if not 2 <= clusters <= dim:
        raise ValueError(f"a simplex ETF of {clusters} vertices needs 2 <= K <= d = {dim}")
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(clusters, dim, generator=g, dtype=torch.float64)
    w, _, vh = torch.linalg.svd(a, full_matrices=False)
    centring = torch.eye(clusters, dtype=torch.float64) - 1.0 / clusters
    return (math.sqrt(clusters / (clusters - 1)) * centring @ (w @ vh)).float()


def cluster_scores(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``t = normalize(z M^T)``: each row of projections ``z`` (N x d) against the K vertices
    of ``target`` (K x d), L2-normalised over K (float32)."""
    return F.normalize(z.float() @ target.T, dim=-1)


def sinkhorn(
    scores: torch.Tensor, prior: torch.Tensor, temperature: float, iterations: int
) -> torch.Tensor:
    """The transport plan of ``scores`` (``[..., N, K]``, no gradient) with sample marginal
    ``1/N`` and cluster marginal ``prior`` (normalised), scaled by N::

        P = exp(t / lambda);  u = 1/N;  repeat: v = pi / (P^T u),  u = (1/N) / (P v)
        Q = N diag(u) P diag(v)

    so each row of Q sums to 1 and column k to about ``N pi_k``. ``t`` is shifted by its
    maximum over the samples per cluster first (absorbed exactly by ``v``)."""
    t = scores.detach().float()
    p = torch.exp((t - t.amax(dim=-2, keepdim=True)) / temperature)
    n = p.shape[-2]
    pi = (prior / prior.sum()).to(p)
    u = p.new_full(p.shape[:-1], 1.0 / n)
    for _ in range(iterations):
        v = pi / (p.transpose(-1, -2) @ u.unsqueeze(-1)).squeeze(-1)
        u = (1.0 / n) / (p @ v.unsqueeze(-1)).squeeze(-1)
    return n * u.unsqueeze(-1) * p * v.unsqueeze(-2)


def swapped_prediction_loss(
    t1: torch.Tensor, t2: torch.Tensor, q1: torch.Tensor, q2: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Each view predicts the other's surrogate labels ``q`` (their ``GHLoss``, the two
    directions summed)::

        L_GH = -1/N sum_i sum_k [q1_ik log softmax(t2_i / gamma)_k
                                 + q2_ik log softmax(t1_i / gamma)_k]
    """
    cross2 = (q1 * F.log_softmax(t2 / gamma, dim=-1)).sum(dim=-1).mean()
    cross1 = (q2 * F.log_softmax(t1 / gamma, dim=-1)).sum(dim=-1).mean()
    return -(cross2 + cross1)


def momentum_update(
    momentum: torch.Tensor,
    seen: torch.Tensor,
    indices: torch.Tensor,
    scores: torch.Tensor,
    beta: float,
) -> None:
    """In place: ``m_i <- beta m_i + (1 - beta) t_i`` for ``indices`` seen before, ``m_i <- t_i``
    for those seen for the first time; marks them seen."""
    scores = scores.to(momentum.dtype)
    blended = beta * momentum[indices] + (1.0 - beta) * scores
    momentum[indices] = torch.where(seen[indices].unsqueeze(1), blended, scores)
    seen[indices] = True


def estimate_prior(momentum: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """``pi_k``: the fraction of the seen samples whose moving average peaks at cluster k
    (first index on ties); uniform when none was seen."""
    clusters = momentum.shape[1]
    if not bool(seen.any()):
        return momentum.new_full((clusters,), 1.0 / clusters)
    counts = torch.bincount(momentum[seen].argmax(dim=1), minlength=clusters)
    return counts.to(momentum.dtype) / counts.sum()


def harmonization_weight(epoch: int, warmup: int, ramp: int, weight: float) -> float:
    """``w(e)``: 0 for ``e < W``, then ``weight * min(1, (e - W + 1) / R)`` (``R = 0``: at once)."""
    if epoch < warmup:
        return 0.0
    return weight * (min(1.0, (epoch - warmup + 1) / ramp) if ramp else 1.0)


def refreshes_prior(epoch: int, warmup: int, period: int) -> bool:
    """Whether pi is re-estimated after epoch ``e`` (0-based): ``e + 1 = W``, or ``e + 1 >= W``
    and a multiple of the period."""
    done = epoch + 1
    return done == warmup or (done >= warmup and done % period == 0)


def projection_dim(model: nn.Module) -> int:
    """The output size of ``model.head``'s last Linear layer (the projection dimension)."""
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model's head has no Linear layer: no projection dimension")
    return linears[-1].out_features


@register_extension
class GeometricHarmonization(Extension):
    """Geometric Harmonization's loss on a simplex ETF with Sinkhorn surrogate labels (config
    key ``geometric_harmonization``; Zhou et al., NeurIPS 2023)."""

    name = "geometric_harmonization"
    adds_loss_term = True
    needs_step_indices = True

    @dataclasses.dataclass(frozen=True)
    class Settings:
        """Geometric Harmonization (Zhou et al., NeurIPS 2023); defaults: its CIFAR-100-LT."""

        clusters: int = setting(
            100, doc="K: vertices of the simplex ETF (surrogate classes); at most the "
            "projection dimension.", minimum=2
        )  # fmt: skip
        sinkhorn_temperature: float = setting(
            0.05, doc="lambda: Sinkhorn's entropic temperature, exp(t / lambda).",
            exclusive_minimum=0,
        )  # fmt: skip
        sinkhorn_iterations: int = setting(300, doc="Sinkhorn iterations.", minimum=1)
        temperature: float = setting(
            0.1, doc="gamma: temperature of the predicted distribution softmax(t / gamma).",
            exclusive_minimum=0,
        )  # fmt: skip
        weight: float = setting(
            1.0, doc="Weight of L_GH once ramped up (L = L_CL + w L_GH).", exclusive_minimum=0
        )
        warmup_epochs: int = setting(
            500, doc="W: epochs of plain contrastive training before L_GH (0: none).", minimum=0
        )
        ramp_epochs: int = setting(
            10, doc="R: epochs over which w rises linearly to weight after the warm-up.",
            minimum=0,
        )  # fmt: skip
        momentum_warmup: float = setting(
            0.9, doc="beta of the moving average of t during the warm-up.", minimum=0, maximum=1
        )
        momentum: float = setting(
            0.999, doc="beta of the moving average of t after the warm-up.", minimum=0, maximum=1
        )
        prior_period: int = setting(
            20, doc="Epochs between estimates of the prior pi (also one at the warm-up's end).",
            minimum=1,
        )  # fmt: skip
        target_seed: int = setting(0, doc="Seed of the simplex ETF's Gaussian matrix.", minimum=0)

    @classmethod
    def check_model(cls, settings: Any, model: ModelConfig, where: str) -> None:
        if settings.clusters > model.projection_dim:
            raise ConfigError(
                f"{where}.clusters: {settings.clusters} exceeds the projection dimension "
                f"{model.projection_dim} (model.projection_dim); a simplex ETF needs K <= d"
            )

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.section = self.name
        self.active = False  # whether L_GH is on this epoch (a compiled step guards on it)
        self.beta = settings.momentum_warmup
        self._steps = 0

    def check(self, method: Method, section: str) -> None:
        self.section = section

    def setup(self, num_samples: int, device: torch.device) -> None:
        k = self.settings.clusters
        #: m_i by position in the pretraining set, whether seen, the prior pi, and the ETF.
        self.momentum = torch.zeros(num_samples, k, device=device)
        self.seen = torch.zeros(num_samples, dtype=torch.bool, device=device)
        self.prior = torch.full((k,), 1.0 / k, device=device)
        self.weight = torch.zeros((), device=device)  # w of the epoch (an input, not a constant)
        self.loss_sum = torch.zeros((), device=device)
        self.device = device

    def setup_model(self, model: nn.Module) -> None:
        dim = projection_dim(model)
        if self.settings.clusters > dim:
            raise ConfigError(
                f"{self.section}.clusters: {self.settings.clusters} exceeds the projection "
                f"dimension {dim} (model.projection_dim); a simplex ETF needs K <= d"
            )
        self.target = simplex_etf(self.settings.clusters, dim, self.settings.target_seed)
        self.target = self.target.to(self.device)

    def on_epoch_start(self, method: Method, epoch: int) -> dict[str, float]:
        s = self.settings
        self.active = epoch >= s.warmup_epochs
        after_warmup = s.warmup_epochs > 0 and epoch >= s.warmup_epochs
        self.beta = s.momentum if after_warmup else s.momentum_warmup
        w = harmonization_weight(epoch, s.warmup_epochs, s.ramp_epochs, s.weight)
        self.weight.fill_(w)
        self.loss_sum.zero_()
        self._steps = 0
        return {"gh_weight": round(w, 6)}

    def loss_term(self, method: Method, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor | None:
        """``w L_GH`` of the views' projections (None during the warm-up); keeps view 1's
        ``t`` (detached) for the moving average. Tensors only: a compiled step keeps one graph."""
        s = self.settings
        with torch.autocast(device_type=z1.device.type, enabled=False):
            z1, z2 = distributed.gather(z1), distributed.gather(z2)
            t1, t2 = cluster_scores(z1, self.target), cluster_scores(z2, self.target)
            self._step_scores = t1.detach()
            if not self.active:
                return None
            q = sinkhorn(
                torch.stack([t1, t2]), self.prior, s.sinkhorn_temperature, s.sinkhorn_iterations
            )
            loss = swapped_prediction_loss(t1, t2, q[0], q[1], s.temperature)
            self.loss_sum.add_(loss.detach())
            return self.weight * loss

    def observe_step(self, indices: torch.Tensor) -> None:
        momentum_update(self.momentum, self.seen, indices, self._step_scores, self.beta)
        self._steps += 1

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        s = self.settings
        if refreshes_prior(epoch, s.warmup_epochs, s.prior_period):
            self.prior.copy_(estimate_prior(self.momentum, self.seen))
        mean = float(self.loss_sum) / self._steps if self.active and self._steps else 0.0
        return {"gh_loss": round(mean, 6), "gh_clusters": int((self.prior > 0).sum())}

    _STATE = ("momentum", "seen", "prior", "target")

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: getattr(self, key) for key in self._STATE}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key in self._STATE:
            getattr(self, key).copy_(state[key])
