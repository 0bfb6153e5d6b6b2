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

Speed: every op runs on the whole batch and is kept per sample by ``lerp`` with 0 / 1 weights,
``torch.where`` or an exact factor 1: no boolean indexing, ``nonzero`` or ``.item()``, so nothing
waits for the device. A slot costs one ``grid_sample``, one blend, one separable 3x3 sum (v2's
sharpness conv to float32 rounding), one per-channel histogram and a few elementwise passes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from sdclr.data.augment._common import _bernoulli, _check_float_images, _per_sample, _rand
from sdclr.data.augment.colour import _blend_step_, rgb_to_grayscale

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
# (name, value at m = 0, value at m = 30) in BCL's ``augment_list`` order; the index is the op id.
OPS: tuple[tuple[str, float, float], ...] = (
    ("shear_x", 0.0, 0.6),
    ("shear_y", 0.0, 0.6),
    ("translate_x", 0.0, 0.66),
    ("translate_y", 0.0, 0.66),
    ("rotate", 0.0, 60.0),
    ("autocontrast", 0.0, 1.0),
    ("invert", 0.0, 1.0),
    ("equalize", 0.0, 1.0),
    ("solarize", 0.0, 110.0),
    ("posterize", 4.0, 8.0),
    ("contrast", 0.1, 1.9),
    ("color", 0.1, 1.9),
    ("brightness", 0.1, 1.9),
    ("sharpness", 0.1, 1.9),
    ("cutout", 0.0, 0.4),
)
SHEAR_X, SHEAR_Y, TRANSLATE_X, TRANSLATE_Y, ROTATE = range(5)  # the geometric (signed) ops
AUTOCONTRAST, INVERT, EQUALIZE, SOLARIZE, POSTERIZE = range(5, 10)
CONTRAST, COLOR, BRIGHTNESS, SHARPNESS, CUTOUT = range(10, 15)
CUTOUT_FILL = (125, 123, 114)
_TO_UINT8 = 255.0 + 1.0 - 1e-3  # torchvision v2 ``to_dtype(float -> uint8, scale=True)``


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


@functools.cache
def _constants(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """``(lo, hi)`` float32 ``[15]`` of :data:`OPS` and Cutout's RGB fill ``[1, 3, 1, 1]`` in
    [0, 1] on ``device``, built once per device (a host-to-device copy each call would block)."""
    lo = torch.tensor([op[1] for op in OPS], dtype=torch.float32, device=device)
    hi = torch.tensor([op[2] for op in OPS], dtype=torch.float32, device=device)
    fill = torch.tensor(CUTOUT_FILL, dtype=torch.float32, device=device).view(1, 3, 1, 1) / 255
    return lo, hi, fill


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


def _select(mask: Tensor, like: Tensor) -> Tensor:
    """Per-sample 0 / 1 ``lerp`` weight ``[N, 1, 1, 1]``: ``lerp(a, b, w)`` is exactly ``a`` or
    ``b`` and, on CPUs, several times faster than ``torch.where`` with a broadcast mask."""
    return _per_sample(mask.to(like.dtype))


def _affine_thetas(ops: Tensor, values: Tensor, signs: Tensor, h: int, w: int) -> Tensor:
    """Inverse affine matrices ``[N, k, 2, 3]`` (float64) of every slot's geometric op.

    torchvision v2's ``_get_inverse_affine_matrix`` (scale 1) with its arguments: rotate(a) is
    angle ``-(a % 360)`` about the centre; shear ``degrees(atan(s))`` about the corner (centre
    ``[0, 0]``, i.e. ``(-w / 2, -h / 2)`` from the middle); translate whole pixels; identity for
    the other ops. Each transcendental function runs once per call (on CPUs each may enter a
    thread pool), not once per slot.
    """
    v, sign = values.double(), signs.double()
    zero = torch.zeros_like(v)
    angle = torch.where(ops == ROTATE, -torch.remainder(sign * v, 360.0), zero)
    shear = torch.deg2rad(torch.rad2deg(torch.atan(sign * v)))
    sx, sy = torch.where(ops == SHEAR_X, shear, zero), torch.where(ops == SHEAR_Y, shear, zero)
    is_shear = (ops == SHEAR_X) | (ops == SHEAR_Y)
    cx, cy = torch.where(is_shear, -0.5 * w, zero), torch.where(is_shear, -0.5 * h, zero)
    tx = torch.where(ops == TRANSLATE_X, sign * torch.round(v * w), zero)
    ty = torch.where(ops == TRANSLATE_Y, sign * torch.round(v * h), zero)
    rot = torch.deg2rad(angle)
    cos_rs, cos_sy, cos_r = torch.cos(torch.stack([rot - sy, sy, rot])).unbind(0)
    sin_rs, sin_r = torch.sin(torch.stack([rot - sy, rot])).unbind(0)
    tan_sx = torch.tan(sx)
    a = cos_rs / cos_sy
    b = -cos_rs * tan_sx / cos_sy - sin_r
    c = sin_rs / cos_sy
    d = -sin_rs * tan_sx / cos_sy + cos_r
    m2 = d * (-cx - tx) + (-b) * (-cy - ty) + cx
    m5 = (-c) * (-cx - tx) + a * (-cy - ty) + cy
    return torch.stack([d, -b, m2, -c, a, m5], dim=-1).view(*ops.shape, 2, 3)


def _geometric(x: Tensor, op: Tensor, on: Tensor, theta: Tensor) -> Tensor:
    """Shear / translate / rotate (nearest, fill 0) where selected, as torchvision v2's kernels:
    its ``_affine_grid`` (pixel centres relative to the middle, normalised) and ``grid_sample``."""
    n, _, h, w = x.shape
    dev = x.device
    base = torch.empty((1, h, w, 3), dtype=x.dtype, device=dev)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=dev))
    base[..., 1].copy_(
        torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=dev)[:, None]
    )
    base[..., 2].fill_(1.0)
    half = torch.full((2,), 0.5 * w, dtype=x.dtype, device=dev)
    half[1] = 0.5 * h
    theta = theta.to(x.dtype).transpose(1, 2) / half
    grid = torch.matmul(base.view(1, h * w, 3), theta).view(n, h, w, 2)
    warped = F.grid_sample(x, grid, mode="nearest", align_corners=False)
    return torch.lerp(x, warped, _select(on & (op <= ROTATE), x))


def _affine_levels(x: Tensor, op: Tensor, on: Tensor) -> Tensor:
    """AutoContrast (per channel) and Invert as ``clamp((x - low) / scale, 0, 1)`` per sample.

    Identity uses (0, 1) and Invert (1, -1), both exact; AutoContrast is v2's float kernel.
    """
    lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    auto, inv = _per_sample(on & (op == AUTOCONTRAST)), _per_sample(on & (op == INVERT))
    low = torch.where(auto, torch.where(flat, 0.0, lo), torch.where(inv, 1.0, 0.0))
    scale = torch.where(auto, torch.where(flat, 1.0, hi - lo), torch.where(inv, -1.0, 1.0))
    return (x - low).div_(scale).clamp_(0.0, 1.0)


def _equalize_lut(levels: Tensor) -> Tensor:
    """Per-channel equalisation LUT ``[N, C, 256]`` of uint8 ``levels [N, C, P]`` (long).

    PIL's scheme, as torchvision v2 computes it: ``step = (P - count of the highest occupied
    level) // 255``; ``lut[0] = 0``, ``lut[i] = (cdf[i - 1] + step // 2) // step`` clamped to
    255; the identity where ``step == 0`` (too few distinct pixels).
    """
    dev, i32 = levels.device, torch.int32
    hist = torch.zeros((*levels.shape[:2], 256), dtype=i32, device=dev)
    hist.scatter_add_(-1, levels, torch.ones(1, dtype=i32, device=dev).expand_as(levels))
    cdf = hist.cumsum(-1, dtype=i32)
    top = hist.gather(-1, cdf.argmax(-1, keepdim=True))  # argmax: first level reaching P
    step = (levels.shape[-1] - top) // 255
    # cdf - hist is cdf[i - 1] (0 at i = 0, where (step // 2) // step = 0).
    lut = (cdf - hist + step // 2).div_(step.clamp(min=1), rounding_mode="floor").clamp_(max=255)
    return torch.where(step > 0, lut, torch.arange(256, dtype=i32, device=dev))


def _uint8_levels(x: Tensor, op: Tensor, on: Tensor, value: Tensor) -> Tensor:
    """Equalize, Posterize (uint8 LUTs, quantised output) and Solarize (``1 - x`` where the
    uint8 level >= threshold) where selected.

    The level is ``floor(scaled)``, ``scaled = 255.999 x`` (v2's ``to_dtype``), so ``level >= t``
    is ``scaled >= ceil(t)``. The LUTs are converted to float (as v2's ``to_dtype`` converts
    uint8) before the gather, so the image-sized work stays in float.
    """
    n, c, h, w = x.shape
    scaled = x.clamp(0.0, 1.0).mul_(_TO_UINT8)
    levels = scaled.reshape(n, c, h * w).long()
    shift = (8 - value.to(torch.int32).clamp(1, 8))[:, None, None]  # bits = max(1, int(v))
    identity = torch.arange(256, dtype=torch.int32, device=x.device)
    posterized = identity.bitwise_right_shift(shift).bitwise_left_shift(shift)  # [N, 1, 256]
    lut = torch.where((op == EQUALIZE)[:, None, None], _equalize_lut(levels), posterized)
    quantised = lut.to(x.dtype).mul_(1.0 / 255).gather(-1, levels).view_as(x)
    x = torch.lerp(x, quantised, _select(on & ((op == EQUALIZE) | (op == POSTERIZE)), x))
    solar = _per_sample(on & (op == SOLARIZE)) & (scaled >= _per_sample(torch.ceil(value)))
    return torch.where(solar, 1.0 - x, x)


def _blend_ops(x: Tensor, op: Tensor, on: Tensor, value: Tensor) -> Tensor:
    """Brightness / Contrast / Color in place, via :mod:`augment`'s per-sample blend step."""
    n, c, h, w = x.shape
    blends = (op == BRIGHTNESS) | (op == CONTRAST) | ((op == COLOR) & (c == 3))
    f = torch.where(on & blends, value, torch.ones_like(value))
    alpha = torch.where(op == CONTRAST, 1.0 - f, 0.0)  # target: mean of the grayscale image
    beta = torch.where(op == COLOR, 1.0 - f, 0.0)  # target: the grayscale image
    gray = torch.empty((n, 1, h, w), dtype=x.dtype, device=x.device) if c == 3 else None
    return _blend_step_(x, f.to(x.dtype), beta.to(x.dtype), alpha.to(x.dtype), gray)


def _sharpness(x: Tensor, op: Tensor, on: Tensor, value: Tensor) -> Tensor:
    """v2 ``adjust_sharpness`` in place: blend the interior with its 3x3 smoothing (1s, 5 in
    the middle, / 13), keep the border; factor 1 (unselected samples) leaves x exactly."""
    h, w = x.shape[2:]
    if h <= 2 or w <= 2:
        return x
    f = torch.where(on & (op == SHARPNESS), value, torch.ones_like(value)).to(x.dtype)
    # The 3x3 box sum, separably (a depthwise conv is slow on CPUs): (box + 4 centre) / 13.
    rows = x[..., :-2] + x[..., 1:-1] + x[..., 2:]
    box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
    inner = x[..., 1:-1, 1:-1]
    blurred = box.mul_(1.0 / 13.0).add_(inner, alpha=4.0 / 13.0)
    inner.addcmul_(blurred.sub_(inner), _per_sample(1.0 - f))
    return x.clamp_(0.0, 1.0)


def _cutout(x: Tensor, op: Tensor, on: Tensor, value: Tensor, centre: Tensor) -> Tensor:
    """BCL's Cutout box (see the module docstring) filled with (125, 123, 114) / 255."""
    n, c, h, w = x.shape
    side = value.double() * w  # BCL: fraction of the width on both axes
    size = torch.stack([torch.full_like(side, h), torch.full_like(side, w)], 1)
    centre = size + (1.0 - size) * centre.double()  # BCL: np.random.uniform(size), in (1, size]
    corner = torch.floor((centre - side[:, None] / 2).clamp(0))
    rows = torch.arange(h, device=x.device, dtype=torch.float64)
    cols = torch.arange(w, device=x.device, dtype=torch.float64)
    top, left, side = corner[:, :1], corner[:, 1:], side[:, None]
    in_rows = (rows >= top) & (rows <= top + side)
    in_cols = (cols >= left) & (cols <= left + side)
    box = (
        in_rows[:, :, None]
        & in_cols[:, None, :]
        & (on & (op == CUTOUT) & (side[:, 0] > 0))[:, None, None]
    )
    fill = _constants(x.device)[2].to(x.dtype)
    fill = fill if c == 3 else rgb_to_grayscale(fill)
    return torch.where(box[:, None], fill, x)


def apply_randaugment(images_float: Tensor, params: RandAugmentParams) -> Tensor:
    """Apply drawn RandAugment parameters to float ``[N, C, H, W]`` images in [0, 1].

    The k op slots run in order; in each, every sample gets its own op (or none). Returns a new
    float tensor in [0, 1] of the input's dtype; the input is not modified.
    """
    _check_float_images(images_float)
    x = images_float.clone(memory_format=torch.contiguous_format)  # the steps work in place
    values = op_values(params.ops, params.magnitudes.to(images_float.device))
    thetas = _affine_thetas(params.ops, values, params.signs, *x.shape[2:])
    for j in range(params.ops.shape[1]):
        op, on, v = params.ops[:, j], params.apply[:, j], values[:, j]
        x = _geometric(x, op, on, thetas[:, j])
        x = _affine_levels(x, op, on)
        x = _uint8_levels(x, op, on, v)
        x = _blend_ops(x, op, on, v)
        x = _sharpness(x, op, on, v)
        x = _cutout(x, op, on, v, params.cutout_centres[:, j])
    return x


def rand_augment(
    images_float: Tensor,
    weights: Tensor,
    config: RandAugmentConfig,
    generator: torch.Generator | None = None,
    strength: Tensor | None = None,
) -> Tensor:
    """BCL's RandAugment on one view: per sample, ``config.num_ops`` ops each applied with
    probability ``w_i`` at magnitude ``min + (max - min) * w_i`` (see
    :func:`sample_randaugment_params`). Float images in [0, 1] in and out, on their device."""
    _check_float_images(images_float)
    n, dev = images_float.shape[0], images_float.device
    params = sample_randaugment_params(n, config.num_ops, weights, config, generator, dev, strength)
    return apply_randaugment(images_float, params)
