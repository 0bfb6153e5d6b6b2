"""RandAugment's op kernels and the two ways of scheduling them over a batch
(:mod:`sdclr.data.augment.randaugment` documents the ops, their values and the semantics).

Six kernels cover the 15 ops, one per family: geometric (shear, translate, rotate: one
``grid_sample``), affine levels (AutoContrast, Invert), uint8 levels (Equalize, Posterize,
Solarize), blends (Contrast, Color, Brightness), Sharpness and Cutout. Each kernel takes a
batch with every sample's own op id and apply flag, does its op on the samples whose op it
is, and leaves every other sample *exactly* as it was (0 / 1 ``lerp`` weights, ``where``, or
factor 1 with zero offsets, all exact in floating point). So a sample's pixels depend only on
its own image and parameters, whichever samples share the kernel call, and two schedules give
the same pixels:

* :func:`apply_grouped` (CPUs): per op slot, group the samples by the family of the op they
  apply, and run each family's kernel on its group only (gathered, then scattered back);
  samples that apply no op are not touched. Every sample costs one kernel per slot. It reads
  the group sizes on the host once per call (``tolist``).
* :func:`apply_all_ops` (devices): every kernel on the whole batch, each sample keeping its
  own op by the masks above; no boolean indexing, ``nonzero`` or ``.item()``, so nothing waits
  for the device (a training step queues its work without a host sync), at about six kernels'
  arithmetic per sample and slot.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from sdclr.data.augment._common import _per_sample
from sdclr.data.augment.colour import _blend_step_, rgb_to_grayscale

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


@functools.cache
def _constants(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """``(lo, hi)`` float32 ``[15]`` of :data:`OPS` and Cutout's RGB fill ``[1, 3, 1, 1]`` in
    [0, 1] on ``device``, built once per device (a host-to-device copy each call would block)."""
    lo = torch.tensor([op[1] for op in OPS], dtype=torch.float32, device=device)
    hi = torch.tensor([op[2] for op in OPS], dtype=torch.float32, device=device)
    fill = torch.tensor(CUTOUT_FILL, dtype=torch.float32, device=device).view(1, 3, 1, 1) / 255
    return lo, hi, fill


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


# A kernel's arguments: images, op ids [N], apply flags [N], values [N], inverse affine
# matrices [N, 2, 3] and Cutout centres [N, 2]; each kernel reads the ones it needs.
Kernel = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
KERNELS: tuple[Kernel, ...] = (  # in the order the all-ops schedule runs them
    lambda x, op, on, v, theta, centre: _geometric(x, op, on, theta),
    lambda x, op, on, v, theta, centre: _affine_levels(x, op, on),
    lambda x, op, on, v, theta, centre: _uint8_levels(x, op, on, v),
    lambda x, op, on, v, theta, centre: _blend_ops(x, op, on, v),
    lambda x, op, on, v, theta, centre: _sharpness(x, op, on, v),
    lambda x, op, on, v, theta, centre: _cutout(x, op, on, v, centre),
)
# The kernel of each op id, and "no kernel" (len(KERNELS)) for a slot that is not applied.
_KERNEL_OF_OP = (0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5)


def apply_all_ops(
    x: Tensor, ops: Tensor, apply: Tensor, values: Tensor, thetas: Tensor, centres: Tensor
) -> Tensor:
    """Run every kernel on the whole batch, slot by slot (``ops``, ``apply``, ``values``
    ``[N, k]``, ``thetas [N, k, 2, 3]``, ``centres [N, k, 2]``); ``x`` may be modified."""
    for j in range(ops.shape[1]):
        for kernel in KERNELS:
            x = kernel(x, ops[:, j], apply[:, j], values[:, j], thetas[:, j], centres[:, j])
    return x


def apply_grouped(
    x: Tensor, ops: Tensor, apply: Tensor, values: Tensor, thetas: Tensor, centres: Tensor
) -> Tensor:
    """As :func:`apply_all_ops`, but each sample's slot runs only its op's kernel.

    Per slot, the samples that apply an op are sorted (stably) by its kernel; each kernel runs
    once, on its run of that order, gathered with ``index_select`` and written back with
    ``index_copy_``. Grouping by kernel rather than by op keeps it to at most six calls per
    slot; a kernel's work on the ops of its family that a sample did not draw is small beside
    the gather (grouping by op measured no faster at 32 px). Modifies and returns ``x``
    (contiguous).
    """
    k = ops.shape[1]
    none = len(KERNELS)
    table = torch.tensor(_KERNEL_OF_OP, device=ops.device)
    group = torch.where(apply, table.take(ops), none)  # [N, k]
    offsets = torch.arange(k, device=ops.device) * (none + 1)
    sizes = torch.bincount((group + offsets).flatten(), minlength=k * (none + 1))
    sizes = sizes.view(k, none + 1).tolist()  # the one host read
    order = torch.argsort(group, dim=0, stable=True)
    for j in range(k):
        start = 0
        for kernel, size in zip(KERNELS, sizes[j][:none], strict=True):
            if size:
                idx = order[start : start + size, j]
                args = (t[:, j].index_select(0, idx) for t in (ops, apply, values, thetas, centres))
                x.index_copy_(0, idx, kernel(x.index_select(0, idx), *args))
            start += size
    return x
