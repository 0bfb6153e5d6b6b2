"""Difficult examples (Zhang, Cui, Li, Wang, "Difficult Examples Hurt Unsupervised Contrastive
Learning: A Theoretical Perspective", arXiv 2501.01317; v1 titled "Understanding
Difficult-to-learn Examples in Contrastive Learning"): margin tuning and temperature scaling
of the difficult pairs inside NT-Xent, as one extension of SimCLR or SDCLR (config key
``difficult_examples``); removing difficult examples is a workflow stage of its own
(``sdclr.methods.difficult_removal``, rule ``select_difficult``).

Difficult examples are samples in cross-class pairs of high similarity. The paper's label-free
detector flags a pair from the cosine similarity ``s_ij`` of the two samples' features
*before* the projection head, within the batch, with two percentile thresholds of the
similarity ranking::

    p_ij = 1[ Sim_posLow <= s_ij < Sim_posHigh ]

``Sim_q`` is the similarity ranked at fraction ``q`` from the top, so the pairs above
``Sim_posHigh`` (the most similar ``posHigh`` of the batch: mostly same-class pairs,
``posHigh ~ 1/(number of classes)``) are left alone and the band below them, down to
``Sim_posLow`` (``posLow`` "can be close to 100 %"), is difficult. Margin tuning adds a margin
``sigma > 0`` to the difficult pairs (the theory subtracts a margin matrix from the similarity
target: the difficult pairs are pushed apart harder); temperature scaling gives them a smaller
temperature (``rho < 1`` times the temperature). On NT-Xent's logits, with ``c_ij`` the cosine
similarity of the projections and ``t`` the temperature (the schedule's, when composed)::

    logit_ij = (c_ij + sigma p_ij) / (t rho^{p_ij})

and the loss is NT-Xent's cross-entropy over these logits (``sigma = 0``, ``rho = 1``: exactly
NT-Xent). Each switch is independent: ``margin: 0`` turns margin tuning off,
``temperature_ratio: 1`` temperature scaling off, and removal is the separate stage.

Where this comes from, and what we had to choose (the paper's HTML was read through
secondary notes of it: the indicator, the two percentile thresholds, pre-projection in-batch
features, the symbols ``sigma`` and ``rho``, a positive margin and a smaller temperature on
difficult pairs, posHigh ~ 1/(r+1) and posLow near 100 % are the paper's; the exact equations
14-16 with the values of sigma and rho it used could not be read):

* Where ``sigma`` and ``rho`` enter the logit (added to the similarity, dividing the
  temperature) is our reading of "a positive margin" and "a smaller temperature" on difficult
  pairs; the values of sigma and rho are not known to us: defaults 0 (off) and 1 (off), the
  paper configs set sigma = 0.1 and rho = 0.5 and say so.
* The ranking is over every ordered pair (i, j) of the 2N views with j != i and j not i's
  positive (the positive is never difficult), one pair of thresholds per batch (the paper
  writes one ``Sim_posHigh`` for the batch, not one per anchor); ``Sim_q`` is the
  ``ceil(q M)``-th largest of the M similarities (``q = 0``: above every pair).
* The features are the backbone's outputs of the two views, detached (selection is not
  trained through); in SDCLR view 2's come from the pruned branch. In a multi-GPU run they
  are gathered like the projections.
* The train log gets the epoch's mean thresholds ``Sim_posHigh`` and ``Sim_posLow``
  (``difficult_sim_high``, ``difficult_sim_low``): where the band of difficult similarities
  sits as training proceeds (the fraction of pairs in it is fixed by posHigh and posLow).
* Defaults posHigh = 0.1 (1/(number of classes) on 10 classes; the paper reports CIFAR-100
  stable over 10-30 %) and posLow = 0.9 ("close to 100 %").

Which samples are re-weighted (the long-tail question the paper does not ask): over the whole
run the extension counts, for every sample k of the pretraining set, its difficult pairs and
its candidate pairs (a view of k as the anchor i, any other view j but k's own two),

    d_k = sum_steps sum_{i in views(k)} sum_j p_ij        c_k = sum_steps 2 (2N - 2)

(N the step's global batch), kept in the checkpoint (a resumed run counts on) and left with
the final model (model.pt's ``sample_statistics``). ``d_k / c_k`` is the fraction of k's pairs
that got the margin and the smaller temperature; the ``difficult_pairs`` analysis
(``sdclr.analyses.difficult_pairs``) turns it into per-class numbers by D_i frequency.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from sdclr.errors import ConfigError
from sdclr.methods.base import Extension, Method
from sdclr.methods.losses import pair_cross_entropy, pair_similarities
from sdclr.methods.registry import register_extension
from sdclr.settings import setting


def ranked_threshold(values: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th largest of ``values`` (``+inf`` for ``k = 0``)."""
    if k == 0:
        return values.new_tensor(float("inf"))
    return torch.kthvalue(values, values.numel() - k + 1).values


def band_thresholds(
    similarity: torch.Tensor,
    candidates: torch.Tensor,
    pos_high: float,
    pos_low: float,
    count: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Sim_posHigh, Sim_posLow)``: the ``ceil(q M)``-th largest of the M ``candidates``
    entries of ``similarity`` for ``q = posHigh, posLow``. ``count`` is M when known (then
    nothing waits for the device)."""
    count = int(candidates.sum()) if count is None else count
    values = similarity.masked_fill(~candidates, float("-inf")).flatten()  # others rank last
    high = ranked_threshold(values, math.ceil(pos_high * count))
    return high, ranked_threshold(values, math.ceil(pos_low * count))


def band_mask(
    similarity: torch.Tensor,
    candidates: torch.Tensor,
    pos_high: float,
    pos_low: float,
    count: int | None = None,
) -> torch.Tensor:
    """``p_ij = 1[Sim_posLow <= s_ij < Sim_posHigh]`` over the ``candidates`` entries of
    ``similarity`` (``band_thresholds``); False elsewhere."""
    high, low = band_thresholds(similarity, candidates, pos_high, pos_low, count)
    return candidates & (similarity >= low) & (similarity < high)


def difficult_band(
    h1: torch.Tensor, h2: torch.Tensor, pos_high: float, pos_low: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2N x 2N mask ``p_ij`` of difficult pairs among the views' features ``h1``, ``h2``
    and its thresholds ``(Sim_posHigh, Sim_posLow)`` (cosine similarity, ranked over the pairs
    that are neither a view with itself nor a positive pair; those two are never difficult)."""
    with torch.no_grad():
        s = pair_similarities(h1.detach(), h2.detach())
        n = s.shape[0] // 2
        eye = torch.eye(2 * n, dtype=torch.bool, device=s.device)
        candidates = ~(eye | eye.roll(n, dims=1))
        count = 2 * n * (2 * n - 2)
        high, low = band_thresholds(s, candidates, pos_high, pos_low, count)
        return candidates & (s >= low) & (s < high), high, low


def difficult_pairs(
    h1: torch.Tensor, h2: torch.Tensor, pos_high: float, pos_low: float
) -> torch.Tensor:
    """The mask ``p_ij`` of ``difficult_band``."""
    return difficult_band(h1, h2, pos_high, pos_low)[0]


def difficult_logits(
    similarity: torch.Tensor,
    difficult: torch.Tensor,
    temperature: float,
    margin: float,
    temperature_ratio: float,
) -> torch.Tensor:
    """``logit_ij = (c_ij + sigma p_ij) / (t rho^{p_ij})``: margin ``sigma`` added to and
    temperature ``rho t`` used for the difficult pairs ``p``, the others ``c_ij / t``."""
    p = difficult.to(similarity.dtype)
    return (similarity + margin * p) / (temperature * (1 + (temperature_ratio - 1) * p))


def difficult_nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    h1: torch.Tensor,
    h2: torch.Tensor,
    temperature: float,
    margin: float,
    temperature_ratio: float,
    pos_high: float,
    pos_low: float,
    per_sample: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """NT-Xent over ``difficult_logits``: pairs flagged difficult by the backbone features
    ``h1``, ``h2`` (``difficult_pairs``) get margin ``sigma`` and temperature ``rho t``,

        loss = 1/(2N) sum_i -log( exp(logit_{i,p(i)}) / sum_{j != i} exp(logit_ij) )

    (with ``per_sample``: each sample's mean of its two view terms, as ``nt_xent``; ``mask``:
    the pairs already selected, instead of selecting them here)."""
    difficult = difficult_pairs(h1, h2, pos_high, pos_low) if mask is None else mask
    with torch.autocast(device_type=z1.device.type, enabled=False):
        logits = difficult_logits(
            pair_similarities(z1, z2), difficult, temperature, margin, temperature_ratio
        )
        return pair_cross_entropy(logits, per_sample)


@register_extension
class DifficultExamples(Extension):
    """Margin tuning and temperature scaling of difficult pairs in NT-Xent (config key
    ``difficult_examples``; Zhang et al., arXiv 2501.01317)."""

    name = "difficult_examples"
    replaces_loss = True
    needs_features = True
    needs_step_indices = True

    @dataclasses.dataclass(frozen=True)
    class Settings:
        """Difficult pairs in NT-Xent (Zhang et al., arXiv 2501.01317)."""

        margin: float = setting(
            0.0, doc="sigma: margin added to a difficult pair's similarity (0: off).", minimum=0
        )
        temperature_ratio: float = setting(
            1.0,
            doc="rho: a difficult pair's temperature is rho times the temperature (1: off).",
            exclusive_minimum=0,
            maximum=1,
        )
        pos_high: float = setting(
            0.1, doc="posHigh: the most similar fraction of pairs, never difficult.", minimum=0
        )
        pos_low: float = setting(
            0.9, doc="posLow: pairs ranked from posHigh down to posLow are difficult.", maximum=1
        )

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._band_sum, self._band_steps = torch.zeros(2), 0  # the epoch's (see on_epoch_end)

    def check(self, method: Method, section: str) -> None:
        s = self.settings
        if method.temperature is None:
            raise ConfigError(f"{section}: method {method.name!r} has no NT-Xent temperature")
        if not s.pos_high < s.pos_low:
            raise ConfigError(f"{section}: pos_high {s.pos_high} must be below pos_low")
        if s.margin == 0 and s.temperature_ratio == 1:
            raise ConfigError(
                f"{section}: margin 0 and temperature_ratio 1 change nothing; set one of them "
                "(removal alone is remove_difficult)"
            )

    def contrastive_loss(
        self,
        method: Method,
        z1: torch.Tensor,
        z2: torch.Tensor,
        h1: torch.Tensor | None,
        h2: torch.Tensor | None,
        per_sample: bool,
    ) -> torch.Tensor:
        s = self.settings
        assert h1 is not None and h2 is not None, "difficult_examples needs backbone features"
        difficult, high, low = difficult_band(h1, h2, s.pos_high, s.pos_low)
        # Tensors only, no Python state (a compiled step would guard on it and recompile):
        # the band summed for the epoch's log, each view row's difficult pairs for observe_step.
        self._band_sum.add_(torch.stack([high, low]).to(self._band_sum.device))
        self._step_pairs = difficult.sum(dim=1)
        return difficult_nt_xent(
            z1, z2, h1, h2, method.temperature, s.margin, s.temperature_ratio,
            s.pos_high, s.pos_low, per_sample, mask=difficult,
        )  # fmt: skip

    def setup(self, num_samples: int, device: torch.device) -> None:
        #: d_k and c_k of the module docstring, by position in the pretraining set.
        self.difficult_pairs = torch.zeros(num_samples, dtype=torch.long, device=device)
        self.candidate_pairs = torch.zeros(num_samples, dtype=torch.long, device=device)
        self.counted_epochs = torch.zeros((), dtype=torch.long, device=device)
        self._band_sum = torch.zeros(2, device=device)
        self._band_steps = 0

    def observe_step(self, indices: torch.Tensor) -> None:
        """Add the step's difficult pairs of each sample (its two view rows) to ``d_k`` and
        its ``2 (2N - 2)`` candidate pairs to ``c_k``."""
        rows, n = self._step_pairs, indices.numel()
        self.difficult_pairs.index_add_(0, indices, rows[:n] + rows[n:])
        self.candidate_pairs[indices] += 2 * (2 * n - 2)
        self._band_steps += 1

    def on_epoch_start(self, method: Method, epoch: int) -> dict[str, float]:
        self._band_sum, self._band_steps = torch.zeros_like(self._band_sum), 0
        return {}

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """The epoch's mean band of similarities that is difficult (the train log's
        ``difficult_sim_high`` and ``difficult_sim_low``: Sim_posHigh and Sim_posLow)."""
        if not self._band_steps:
            return {}
        self.counted_epochs += 1
        high, low = (self._band_sum / self._band_steps).tolist()
        return {"difficult_sim_high": round(high, 6), "difficult_sim_low": round(low, 6)}

    _COUNTS = ("difficult_pairs", "candidate_pairs", "counted_epochs")

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: getattr(self, key) for key in self._COUNTS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """The counts so far; a checkpoint written before they were kept has none, and the
        counting starts at the resumed epoch (``counted_epochs`` says how many it covers)."""
        for key in self._COUNTS:
            if key in state:
                getattr(self, key).copy_(state[key])

    def sample_statistics(self) -> dict[str, torch.Tensor]:
        """``d_k``, ``c_k`` and the epochs they cover, for the difficult-pairs report."""
        return {key: getattr(self, key).cpu() for key in self._COUNTS}
