"""Crops: RandomResizedCrop with torchvision's anti-aliased resize weights (see the package
docstring), and the linear probe's padded random crop + flip."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from sdclr.data.augment._common import (
    _bernoulli,
    _check_float_images,
    _per_sample,
    _rand,
    _Scratch,
    _to_float,
)
from sdclr.data.augment.config import _INTERPOLATIONS


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: Sequence[float] = (0.1, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Sample ``n`` RandomResizedCrop boxes for a ``height`` x ``width`` image.

    Vectorised ``torchvision.transforms.RandomResizedCrop.get_params``: up to 10 attempts of
    ``area ~ U(scale) * H * W`` and ``log(ratio) ~ U(log ratio)``, ``w = round(sqrt(area * r))``,
    ``h = round(sqrt(area / r))`` (round half to even, as Python's ``round``); the first attempt
    that fits gives the box with a uniform integer offset; if none fits, the central-crop
    fallback (whole image clipped to the ratio range).

    Returns:
        int64 tensor ``[n, 4]`` of ``(top, left, h, w)`` on ``device`` (default: the generator's
        device, else CPU).
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    attempts = 10
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    # Draw in float32 like torchvision, do the geometry in float64 like its math.sqrt.
    u_area = _rand((n, attempts), generator, device)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    aspect = torch.exp(log_lo + (log_hi - log_lo) * _rand((n, attempts), generator, device))
    target_area, aspect = target_area.double(), aspect.double()
    w = torch.round(torch.sqrt(target_area * aspect)).long()
    h = torch.round(torch.sqrt(target_area / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    found = ok.any(dim=1)
    first = torch.argmax(ok.to(torch.uint8), dim=1, keepdim=True)  # first True attempt
    h = h.gather(1, first).squeeze(1)
    w = w.gather(1, first).squeeze(1)

    # Central-crop fallback (same for every sample).
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = height, int(round(height * max(ratio)))
    else:
        fw, fh = width, height
    h = torch.where(found, h, torch.full_like(h, fh))
    w = torch.where(found, w, torch.full_like(w, fw))

    # randint(0, H - h + 1) as floor(u * (H - h + 1)), clamped against float round-up.
    u = _rand((n, 2), generator, device).double()
    top = torch.minimum((u[:, 0] * (height - h + 1)).long(), height - h)
    left = torch.minimum((u[:, 1] * (width - w + 1)).long(), width - w)
    top = torch.where(found, top, torch.full_like(top, (height - fh) // 2))
    left = torch.where(found, left, torch.full_like(left, (width - fw) // 2))
    return torch.stack([top, left, h, w], dim=1)


def _aa_filter(x: Tensor, interpolation: str) -> Tensor:
    """PyTorch's anti-aliasing interpolation filters (PIL's): Keys cubic a=-0.5, or triangle."""
    x = x.abs()
    if interpolation == "bilinear":
        return (1.0 - x).clamp_min(0.0)
    a = -0.5
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def _resize_weights(
    start: Tensor, length: Tensor, out_size: int, in_size: int, interpolation: str
) -> Tensor:
    """Per-sample ``[N, out_size, in_size]`` matrices resizing the window ``[start, start+length)``.

    Reproduces ``_upsample_{bicubic,bilinear}2d_aa`` (align_corners=False) on the cropped
    window: ``scale = length / out``, support ``interp/2 * max(scale, 1)``, taps outside the
    window dropped, weights normalised to sum to one.
    """
    dev = start.device
    interp_size = 4.0 if interpolation == "bicubic" else 2.0
    scale = (length.to(torch.float32) / out_size)[:, None, None]  # [N, 1, 1]
    support = interp_size * 0.5 * scale.clamp_min(1.0)
    invscale = 1.0 / scale.clamp_min(1.0)
    centre = scale * (torch.arange(out_size, device=dev, dtype=torch.float32)[None, :, None] + 0.5)
    xmin = torch.trunc(centre - support + 0.5).clamp_min(0.0)
    xmax = torch.minimum(
        torch.trunc(centre + support + 0.5), length.to(torch.float32)[:, None, None]
    )
    # Input position relative to the crop window: [N, 1, in_size].
    j = (torch.arange(in_size, device=dev)[None, None, :] - start[:, None, None]).to(torch.float32)
    inside = (j >= xmin) & (j < xmax)
    w = _aa_filter((j - centre + 0.5) * invscale, interpolation) * inside
    total = w.sum(dim=-1, keepdim=True)
    return w / torch.where(total == 0, torch.ones_like(total), total)


# Largest weight table (elements) kept per (in size, out size, interpolation, device, dtype):
# 32 px CIFAR needs 2 * 32 * 33 * 32 * 32 ~ 2.2 M (8.7 MB); larger images compute weights.
_TABLE_LIMIT = 1 << 24
_WEIGHT_TABLES: dict[tuple[int, int, str, str, torch.dtype], Tensor] = {}


def _weight_table(
    in_size: int, out_size: int, interpolation: str, device: torch.device, dtype: torch.dtype
) -> Tensor | None:
    """All resize matrices of one axis, ``[2, in_size, in_size + 1, out, in]``.

    Entry ``[0, s, l]`` is :func:`_resize_weights` of the window ``[s, s + l)`` (zeros where
    the window does not fit), so looking a box up is the same number as computing it; entry
    ``[1, s, l]`` is the same matrix with its output rows reversed (the mirrored output).
    ``None`` when the table would be larger than ``_TABLE_LIMIT`` elements.
    """
    if 2 * in_size * (in_size + 1) * out_size * in_size > _TABLE_LIMIT:
        return None
    key = (in_size, out_size, interpolation, str(device), dtype)
    table = _WEIGHT_TABLES.get(key)
    if table is None:
        start = torch.arange(in_size, device=device).repeat_interleave(in_size + 1)
        length = torch.arange(in_size + 1, device=device).repeat(in_size)
        valid = (length >= 1) & (start + length <= in_size)
        # Invalid pairs get a harmless dummy window, then are zeroed.
        weights = _resize_weights(
            torch.where(valid, start, torch.zeros_like(start)),
            torch.where(valid, length, torch.ones_like(length)),
            out_size,
            in_size,
            interpolation,
        )
        weights = (weights * valid[:, None, None]).to(dtype)
        weights = weights.reshape(in_size, in_size + 1, out_size, in_size)
        table = torch.stack([weights, weights.flip(-2)])
        _WEIGHT_TABLES[key] = table
    return table


def _axis_weights(
    start: Tensor,
    length: Tensor,
    out_size: int,
    in_size: int,
    interpolation: str,
    dtype: torch.dtype,
    flip: Tensor | None = None,
) -> Tensor:
    """``[N, out, in]`` resize matrices for the windows ``[start, start + length)``; where
    ``flip`` is True the output rows are reversed (the resized window mirrored)."""
    table = _weight_table(in_size, out_size, interpolation, start.device, dtype)
    if table is None:
        weights = _resize_weights(start, length, out_size, in_size, interpolation).to(dtype)
        if flip is None:
            return weights
        # lerp with a 0 / 1 weight is exact, and has no boolean-mask kernel.
        mirror = _per_sample(flip.to(device=weights.device, dtype=dtype))[:, :, :, 0]
        return torch.lerp(weights, weights.flip(1), mirror)
    # One row gather from the flattened table: index (flip, start, length).
    index = start * (in_size + 1) + length
    if flip is not None:
        index = index + flip.to(device=start.device, dtype=torch.long) * (in_size * (in_size + 1))
    return table.view(-1, out_size, in_size).index_select(0, index)


def _resize_hcw(
    images_hcw: Tensor,
    boxes: Tensor,
    out_h: int,
    out_w: int,
    interpolation: str,
    flip: Tensor | None,
    scratch: _Scratch | None = None,
) -> Tensor:
    """The batched crop + resize on ``[N, H, C, W]`` float images -> ``[N, out_h, C, out_w]``.

    Rows-channels-columns order makes both passes one plain ``bmm`` each with no transposing
    copy in between: horizontal ``[N, H*C, W] @ [N, W, out_w]`` (as PyTorch's CPU kernel,
    first), then vertical ``[N, out_h, H] @ [N, H, C*out_w]``. With ``scratch`` both results
    are reused buffers (the second is returned: the caller's working buffer).
    """
    scratch = scratch or _Scratch()
    n, height, c, width = images_hcw.shape
    boxes = boxes.to(device=images_hcw.device, dtype=torch.long)
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must have shape [{n}, 4], got {tuple(boxes.shape)}")
    top, left, h, w = boxes.unbind(dim=1)
    dtype = images_hcw.dtype
    wy = _axis_weights(top, h, out_h, height, interpolation, dtype)
    wx = _axis_weights(left, w, out_w, width, interpolation, dtype, flip)
    rows = scratch("resize_rows", (n, height * c, out_w), images_hcw)
    torch.bmm(images_hcw.reshape(n, height * c, width), wx.transpose(1, 2), out=rows)
    out = scratch("resize_out", (n, out_h, c * out_w), images_hcw)
    torch.bmm(wy, rows.view(n, height, c * out_w), out=out)
    return out.view(n, out_h, c, out_w)


def resized_crop(
    images_float: Tensor,
    boxes: Tensor,
    size: int | Sequence[int],
    interpolation: str = "bicubic",
    flip: Tensor | None = None,
) -> Tensor:
    """Crop each image to its box and resize it to ``size``, batched.

    Matches ``torchvision.transforms.functional.resized_crop(img, top, left, h, w, size,
    interpolation)`` on float tensors (antialias=True, the default) per sample, to float32
    rounding (~1e-6), for both up- and downscaling; see the module docstring. Like torchvision
    on float tensors, the bicubic output is *not* clamped (it can overshoot [0, 1] slightly).
    The resize is two batched matmuls with dense per-sample weight matrices ``[N, out, H]`` and
    ``[N, out, W]`` (looked up in a cached table of every window for small images); if TF32
    matmuls are enabled on CUDA (``torch.backends.cuda.matmul.allow_tf32``) the result is only
    accurate to ~1e-3.

    Args:
        images_float: float ``[N, C, H, W]``.
        boxes: int ``[N, 4]`` of ``(top, left, h, w)`` lying inside the image.
        size: output side (int) or ``(height, width)``.
        interpolation: ``"bicubic"`` or ``"bilinear"``.
        flip: optional bool ``[N]``: mirror those outputs horizontally (``hflip`` after the
            resize, folded into the horizontal weights at no extra cost: the same numbers).
    """
    _check_float_images(images_float)
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    hcw = images_float.permute(0, 2, 1, 3).contiguous()
    out = _resize_hcw(hcw, boxes, out_h, out_w, interpolation, flip)
    return out.permute(0, 2, 1, 3).contiguous()


def crop_flip_with_params(images: Tensor, padding: int, offsets: Tensor, flip: Tensor) -> Tensor:
    """Zero-pad by ``padding``, take the ``H x W`` window at ``offsets [N, 2]`` = (top, left)
    in padded coordinates, and mirror it horizontally where ``flip [N]`` is True.

    uint8 or float in, float32 [0, 1] out.
    """
    x = _to_float(images)
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, [padding] * 4)
    offsets = offsets.to(device=dev, dtype=torch.long)
    cols_base = torch.arange(w, device=dev)
    cols_base = torch.where(flip.to(dev)[:, None], (w - 1) - cols_base, cols_base)  # [N, W]
    rows = offsets[:, :1] + torch.arange(h, device=dev)[None, :]  # [N, H]
    cols = offsets[:, 1:] + cols_base  # [N, W]
    batch = torch.arange(n, device=dev)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # [N, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def random_crop_flip(
    images: Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> Tensor:
    """Linear-probe train augmentation, batched: torchvision ``RandomCrop(size=H,
    padding=padding)`` (zero padding) + ``RandomHorizontalFlip``. uint8 or float in, float
    [0, 1] out.

    Output keeps the input's ``H x W`` (for square images this is exactly
    ``RandomCrop(size=H, padding=padding)``); offsets are uniform in ``[0, 2 * padding]`` per
    axis and per sample, and each sample is flipped with probability 0.5.
    """
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got {tuple(images.shape)}")
    n, dev = images.shape[0], images.device
    offsets = torch.floor(_rand((n, 2), generator, dev) * (2 * padding + 1)).long()
    offsets = offsets.clamp_(max=2 * padding)
    flip = _bernoulli(n, 0.5, generator, dev)
    return crop_flip_with_params(images, padding, offsets, flip)


def random_resized_crop_flip(
    images: Tensor,
    size: int,
    scale: Sequence[float] = (0.08, 1.0),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """ImageNet linear-probe train augmentation, batched: torchvision
    ``RandomResizedCrop(size)`` (scale ``scale``, ratio 3/4-4/3, bilinear, antialiased) +
    ``RandomHorizontalFlip``. uint8 or float ``[N, C, H, W]`` in, float [0, 1] out on
    ``device``.

    The boxes and flips are drawn from ``generator`` where it lives (the probe's CPU
    generator, so a probe's views do not depend on the device); the images move to
    ``device`` and are cropped and resized there in one batched call.
    """
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W] images, got {tuple(images.shape)}")
    n, _, height, width = images.shape
    draw = generator.device if generator is not None else images.device
    boxes = sample_crop_boxes(n, height, width, scale, (3 / 4, 4 / 3), generator, draw)
    flip = _bernoulli(n, 0.5, generator, draw)
    target = torch.device(device) if device is not None else images.device
    floats = _to_float(images.to(target, non_blocking=True))
    return resized_crop(floats, boxes.to(target), size, "bilinear", flip.to(target)).clamp_(0, 1)
