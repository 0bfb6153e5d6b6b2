"""Batched, on-device RandAugment of BCL ("Contrastive Learning with Boosted Memorization", Zhou et
al., ICML 2022), with per-sample probability and magnitude.

What BCL's public code does (github.com/MediaBrain-SJTU/BCL at a2342f8; read: ``data/randaug.py``,
``data/memoboosted_cifar100.py``, ``data/augmentations.py``, ``train.py``, ``train_sdclr.py``,
``README.md``):

* Place in the pipeline: per view, RandomResizedCrop(32, scale=(0.1, 1), bicubic) ->
  RandomHorizontalFlip -> RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8) ->
  RandomGrayscale(0.2) -> RandAugment -> ToTensor. RandAugment comes last, on the uint8 RGB PIL
  image; the two views of a sample go through the same pipeline with independent draws.
* Sampling (class ``RandAugment_prob``): k ops drawn uniformly from 15 *with* replacement
  (``random.choices``); each is applied independently when a uniform draw is below p; an applied
  op gets the value ``lo + (hi - lo) * m / 30``.
* p = w_i and m = m_min + (rand_strength - m_min) * w_i, rand_strength = 30 (``--rand_strength``
  default); m_min = 10 when k = 1 (BCL-I on SimCLR), else 5 (BCL-D on SDCLR, k = 2). When k != 1
  the code also multiplies w_i in m by one U(0, 1) draw per sample and loader call, shared by the
  sample's two views. Weights start at 0, so epoch 1 has no RandAugment.
* The 15 ops (PIL, nearest resampling, black fill) and their ``(lo, hi)``: ShearX, ShearY (0, 0.6)
  shear factor about the top-left corner; TranslateX, TranslateY (0, 0.66) fraction of the width,
  height; Rotate (0, 60) degrees about the centre -- these five get a random sign (p = 1/2);
  AutoContrast, Invert, Equalize (no value); Solarize (0, 110) threshold, pixels >= it inverted (so
  a larger m is a weaker solarize); Posterize (4, 8) bits, truncated to an int (m = 30 keeps all
  8); Contrast, Color, Brightness, Sharpness (0.1, 1.9) enhance factor, unsigned; Cutout (0, 0.4):
  a square of side ``v * width`` filled with RGB (125, 123, 114), top-left corner
  ``floor(max(0, c - side / 2))`` for a centre ``c`` per axis drawn by
  ``np.random.uniform(size)``, i.e. ``uniform(low=size, high=1.0)`` = ``size + (1 - size) u``,
  ``u ~ U[0, 1)``: ``c`` in ``(1, size]`` (the same here), covering the pixels
  ``r`` with ``corner <= r <= corner + side`` (PIL draws rectangles inclusively), clipped at the
  border; side 0 draws nothing. (Identity, Flip, SolarizeAdd, SamplePairing are defined, unused.)

Semantics here: each op equals ``torchvision.transforms.v2.functional`` at the same value on float
images in [0, 1]: shear = ``affine(shear=[degrees(atan(s)), 0] or [0, ...], center=[0, 0])`` (what
torchvision's own RandAugment calls; it is PIL's shear), translate = ``affine(translate=[t, 0] or
[0, t])``, rotate = ``rotate(angle)``, all nearest with fill 0; ``adjust_contrast``,
``adjust_saturation`` (Color), ``adjust_brightness``, ``adjust_sharpness``, ``autocontrast``,
``invert``, ``equalize``; Cutout = ``erase`` of the box above. Posterize, Solarize and Equalize
read each pixel's uint8 level as v2's ``to_dtype(uint8, scale=True)`` does (``floor(255.999 x)``):
Posterize and Equalize return ``level / 255`` (v2's uint8 kernels; Equalize is v2's float equalize
exactly), Solarize returns ``1 - x`` where ``level >= threshold`` (v2's uint8 ``solarize``).

Choices left open by the paper / code, made here: translations are rounded to whole pixels (round
half to even; PIL's nearest sampling rounds half up, so the two differ at .5 ties, and at shear
ties); sign +1 is torchvision's direction (BCL's sign is a fair coin, so only the label differs);
one magnitude per sample, shared by its k ops (as BCL); weights are clamped to [0, 1]; the k = 2
U(0, 1) factor is opt-in (pass ``strength = w * u``, the same ``u`` for both views); on one-channel
images Color is the identity (as v2) and Cutout fills with the luma of BCL's colour; BCL rounds
to uint8 after every PIL op, here only Posterize / Equalize quantise.

Speed: a sample's slot costs one of six kernels (geometric: one ``grid_sample``; AutoContrast /
Invert; Equalize / Posterize / Solarize: a per-channel histogram and LUTs; Contrast / Color /
Brightness: one blend; Sharpness: a separable 3x3 sum, v2's conv to float32 rounding; Cutout),
each leaving the samples that are not its op exactly unchanged (see ``_randaugment_ops``). On a
CPU each kernel runs only on the samples that drew one of its ops (grouped per slot; one host
read of the group sizes per call); on other devices every kernel runs on the whole batch with
masks, so nothing waits for the device. Both give the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sdclr.data.augment._common import _bernoulli, _check_float_images, _rand
from sdclr.data.augment._randaugment_ops import (
    OPS,
    _affine_thetas,
    _constants,
    apply_all_ops,
    apply_grouped,
)

__all__ = [
    "MAX_LEVEL",
    "OPS",
    "RandAugmentConfig",
    "RandAugmentParams",
    "apply_randaugment",
    "op_values",
    "rand_augment",
    "sample_randaugment_params",
]

MAX_LEVEL = 30.0  # BCL's magnitude scale is 0..30


@dataclass(frozen=True)
class RandAugmentConfig:
    """BCL's RandAugment: ``num_ops`` ops per view, magnitude ``min + (max - min) * w`` on 0..30.

    Attributes:
        num_ops: k, the number of ops drawn (with replacement) per view; 0 disables.
        min_magnitude: Magnitude at weight 0 (BCL: 10 with k = 1, 5 with k = 2).
        max_magnitude: Magnitude at weight 1 (BCL's ``rand_strength``, 30).
    """

    num_ops: int
    min_magnitude: float
    max_magnitude: float = MAX_LEVEL

    def __post_init__(self) -> None:
        k = self.num_ops
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"num_ops must be a non-negative integer, got {k!r}")
        for name in ("min_magnitude", "max_magnitude"):
            m = getattr(self, name)
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= MAX_LEVEL:
                raise ValueError(f"{name} must be a number in [0, {MAX_LEVEL:g}], got {m!r}")
        if self.min_magnitude > self.max_magnitude:
            raise ValueError(
                f"min_magnitude ({self.min_magnitude}) must not exceed max_magnitude "
                f"({self.max_magnitude})"
            )


@dataclass
class RandAugmentParams:
    """Every random parameter of one RandAugment call, for N samples and k op slots.

    Attributes:
        ops: int64 ``[N, k]`` op ids (indices into :data:`OPS`).
        apply: bool ``[N, k]``, the op is applied (Bernoulli(w_i)).
        magnitudes: float32 ``[N]`` on 0..30, shared by a sample's k ops.
        signs: float32 ``[N, k]`` in {-1, +1}, used by the shear / translate / rotate ops.
        cutout_centres: float32 ``[N, k, 2]``, Cutout's (row, col) U[0, 1) draws ``u``; the
            centre is ``size + (1 - size) u`` pixels per axis (BCL's, in (1, size]).
    """

    ops: Tensor
    apply: Tensor
    magnitudes: Tensor
    signs: Tensor
    cutout_centres: Tensor


def op_values(ops: Tensor, magnitudes: Tensor) -> Tensor:
    """BCL's value of op ``ops[i, j]`` at ``magnitudes[i]``: ``lo + (hi - lo) * m / 30``."""
    lo, hi, _ = _constants(ops.device)
    m = magnitudes.to(torch.float32).reshape(-1, *([1] * (ops.ndim - 1)))
    return m / MAX_LEVEL * (hi.take(ops) - lo.take(ops)) + lo.take(ops)


def sample_randaugment_params(
    n: int,
    num_ops: int,
    weights: Tensor,
    config: RandAugmentConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    strength: Tensor | None = None,
) -> RandAugmentParams:
    """Draw BCL's RandAugment parameters for ``n`` samples with weights ``w [n]`` in [0, 1].

    Per sample: ``num_ops`` op ids uniform over :data:`OPS` with replacement, each applied with
    probability ``w_i``; magnitude ``min + (max - min) * s_i`` with ``s = strength`` (default
    ``w``; BCL's k = 2 code uses ``w * u``, ``u ~ U(0, 1)`` shared by the two views); fair-coin
    signs; Cutout centres' U[0, 1) draws. ``device`` defaults to the generator's, else the weights'.
    """
    for name, t in (("weights", weights), ("strength", strength)):
        if t is not None and tuple(t.shape) != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    if device is None:
        device = generator.device if generator is not None else weights.device
    w = weights.to(device=device, dtype=torch.float32).clamp(0.0, 1.0)
    s = w if strength is None else strength.to(device=device, dtype=torch.float32).clamp(0, 1)
    span = config.max_magnitude - config.min_magnitude
    magnitudes = config.min_magnitude + span * s
    ops = (_rand((n, num_ops), generator, device) * len(OPS)).long().clamp_(max=len(OPS) - 1)
    apply = _rand((n, num_ops), generator, device) < w[:, None]
    negative = _bernoulli(n * num_ops, 0.5, generator, device).view(n, num_ops)
    signs = 1.0 - 2.0 * negative.to(torch.float32)
    centres = _rand((n, num_ops, 2), generator, device)
    return RandAugmentParams(ops, apply, magnitudes, signs, centres)


def apply_randaugment(
    images_float: Tensor, params: RandAugmentParams, grouped: bool | None = None
) -> Tensor:
    """Apply drawn RandAugment parameters to float ``[N, C, H, W]`` images in [0, 1].

    The k op slots run in order; in each, every sample gets its own op (or none). ``grouped``
    runs each op only on the samples that drew it (:func:`apply_grouped`: reads group sizes on
    the host) rather than every op on the whole batch with masks (:func:`apply_all_ops`: no
    host sync); the pixels are the same. Default: grouped on CPUs. Returns a new float tensor
    in [0, 1] of the input's dtype; the input is not modified.
    """
    _check_float_images(images_float)
    if grouped is None:
        grouped = images_float.device.type == "cpu"
    x = images_float.clone(memory_format=torch.contiguous_format)  # the steps work in place
    values = op_values(params.ops, params.magnitudes.to(images_float.device))
    thetas = _affine_thetas(params.ops, values, params.signs, *x.shape[2:])
    schedule = apply_grouped if grouped else apply_all_ops
    return schedule(x, params.ops, params.apply, values, thetas, params.cutout_centres)


def rand_augment(
    images_float: Tensor,
    weights: Tensor,
    config: RandAugmentConfig,
    generator: torch.Generator | None = None,
    strength: Tensor | None = None,
    grouped: bool | None = None,
) -> Tensor:
    """BCL's RandAugment on one view: per sample, ``config.num_ops`` ops each applied with
    probability ``w_i`` at magnitude ``min + (max - min) * w_i`` (see
    :func:`sample_randaugment_params`; ``grouped`` as :func:`apply_randaugment`). Float images
    in [0, 1] in and out, on their device."""
    _check_float_images(images_float)
    n, dev = images_float.shape[0], images_float.device
    params = sample_randaugment_params(n, config.num_ops, weights, config, generator, dev, strength)
    return apply_randaugment(images_float, params, grouped)
