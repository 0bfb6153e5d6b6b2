"""Batched, on-device SimCLR augmentation with torchvision (v1) semantics.

Images are uint8 tensors ``[N, C, H, W]`` (``C`` = 1 or 3) already on the training device.
Every random parameter is drawn per sample, in one batched call, from an optional
``torch.Generator`` (which must live on the images' device), and every transform is applied to
the whole batch at once. Per view the pipeline is the one of the SimCLR paper as written with
torchvision::

    RandomResizedCrop(size, scale=(0.1, 1.0), ratio=(3/4, 4/3), interpolation=BICUBIC)
    RandomHorizontalFlip(p=0.5)
    RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)   # random op order per sample
    RandomGrayscale(p=0.2)
    RandomApply([GaussianBlur(kernel ~ 10% of size, sigma=(0.1, 2.0))], p=blur_p)
    ToTensor()                                              # [0, 1], no normalisation

The functional maths follows ``torchvision.transforms._functional_tensor`` (the tensor backend of
``torchvision.transforms.functional``):

* **Resize.** torchvision resizes tensors with ``antialias=True`` (its default since 0.17), which
  for bilinear/bicubic calls PyTorch's separable *anti-aliased* kernels, both when up- and when
  downscaling. That kernel is PIL's: bicubic uses the Keys cubic with ``a = -0.5`` (not the
  ``a = -0.75`` of plain ``F.interpolate``/``grid_sample``), the filter support is widened by the
  scale factor when downscaling (so downscaling is properly anti-aliased), and taps that fall
  outside the crop are dropped and the remaining weights renormalised. :func:`resized_crop`
  builds exactly these weights per sample as dense ``[out, in]`` matrices restricted to each
  sample's crop window and applies them as two batched matmuls, so it matches
  ``torchvision.transforms.functional.resized_crop`` on float tensors to float32 rounding
  (about 1e-6) for upscaling *and* downscaling.
* **Colour.** Brightness, contrast, saturation and hue use torchvision's ``_blend`` (with its
  clamp to [0, 1]), its grayscale weights (0.2989, 0.587, 0.114), the per-sample mean of the
  grayscale image for contrast, and its rgb -> hsv -> rgb round trip for hue (in closed form,
  the same function to float32 rounding). For one-channel images saturation and hue are
  no-ops and grayscale is the identity, as in torchvision.
* **Blur.** torchvision's normalised Gaussian kernel with reflect padding, applied separably
  (mathematically identical to its 2-D kernel).

Speed (the training step's hot path): per-sample choices are arithmetic masks over the whole
batch (per-sample 0 / 1 coefficients, ``lerp`` with 0 / 1 weights), never boolean indexing or
``nonzero``, so nothing waits for the device; the horizontal flip is folded into the resize
weights, which for small images are looked up in a cached table of every crop window; the
resize works in a ``[N, H, C, W]`` buffer (each pass one plain ``bmm``) and everything after
it happens in place in that buffer, copied once at the end into the requested memory format.

Where the batched pipeline differs from torchvision's per-image PIL pipeline: it works in float
from the start (PIL rounds to uint8 after every step and uses integer grayscale weights and uint8
HSV), and :class:`BatchAugment` clamps the bicubic output to [0, 1] (PIL's uint8 output is
clamped implicitly; torchvision's float-tensor resize is not). These are quantisation-level
differences; the random parameter distributions are identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "BatchAugment",
    "apply_color_jitter",
    "apply_gaussian_blur",
    "apply_grayscale",
    "blur_kernel_size",
    "color_jitter",
    "crop_flip_with_params",
    "gaussian_blur",
    "random_crop_flip",
    "random_grayscale",
    "resized_crop",
    "rgb_to_grayscale",
    "sample_crop_boxes",
    "sample_jitter_params",
]

_INTERPOLATIONS = ("bicubic", "bilinear")
# torchvision's ITU-R 601-2 luma weights (``_functional_tensor.rgb_to_grayscale``).
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
# Index of each colour op in jitter factor / order tensors (torchvision's ``fn_idx`` order).
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of the SimCLR view augmentation (defaults: the SimCLR CIFAR recipe).

    Attributes:
        crop_size: Output side length of the square crop.
        scale: RandomResizedCrop area-fraction range.
        ratio: RandomResizedCrop aspect-ratio (w / h) range, sampled log-uniformly.
        flip_p: Horizontal flip probability.
        jitter: ColorJitter strengths (brightness, contrast, saturation, hue).
        jitter_p: Probability of applying the colour jitter at all (RandomApply).
        grayscale_p: RandomGrayscale probability.
        blur_p: Gaussian blur probability; 0 disables the blur.
        blur_sigma: Blur sigma range, sampled uniformly per sample.
        interpolation: ``"bicubic"`` or ``"bilinear"`` for the crop resize.
    """

    crop_size: int
    scale: tuple[float, float] = (0.1, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if int(self.crop_size) != self.crop_size or self.crop_size <= 0:
            raise ValueError(f"crop_size must be a positive integer, got {self.crop_size!r}")
        for name in ("scale", "ratio", "blur_sigma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {(lo, hi)}")
        if self.scale[1] > 1:
            raise ValueError(f"scale must lie in (0, 1], got {self.scale}")
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if len(self.jitter) != 4 or min(self.jitter) < 0:
            raise ValueError(f"jitter must be 4 non-negative strengths, got {self.jitter}")
        if self.jitter[HUE] > 0.5:
            raise ValueError(f"hue jitter must be <= 0.5, got {self.jitter[HUE]}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}"
            )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _rand(shape: Sequence[int], generator: torch.Generator | None, device: Any) -> Tensor:
    """Uniform [0, 1) float32 draws from ``generator`` (or the global RNG) on ``device``."""
    return torch.rand(tuple(shape), generator=generator, device=device)


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator | None, device: Any
) -> Tensor:
    return low + (high - low) * _rand((n,), generator, device)


def _bernoulli(n: int, p: float, generator: torch.Generator | None, device: Any) -> Tensor:
    """Boolean mask with P(True) = p, as torchvision's ``torch.rand(1) < p``."""
    return _rand((n,), generator, device) < p


def _check_float_images(images: Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"expected images of shape [N, C, H, W], got {tuple(images.shape)}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {images.shape[1]}")
    if not images.is_floating_point():
        raise TypeError(f"expected a floating point image tensor, got {images.dtype}")


class _Scratch:
    """Reusable temporaries, one per name, kept between calls (by :class:`BatchAugment`).

    Image-sized temporaries freshly allocated on every call cost more than the arithmetic on
    them on a CPU (the allocator hands large blocks back to the OS, so each new one is
    page-faulted in again: ~30% of the augmentation's time at CIFAR shapes); reusing them
    avoids that. On CUDA, reuse is safe because every use is ordered on the stream. A
    throwaway ``_Scratch()`` simply allocates. Not thread-safe.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def __call__(self, name: str, shape: Sequence[int], like: Tensor) -> Tensor:
        shape = tuple(shape)
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or tuple(buffer.shape) != shape
            or buffer.dtype != like.dtype
            or buffer.device != like.device
        ):
            buffer = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._buffers[name] = buffer
        return buffer


def _to_float_hcw(images: Tensor, out: Tensor | None = None) -> Tensor:
    """uint8 / float ``[N, C, H, W]`` -> float32 in [0, 1] laid out as ``[N, H, C, W]``
    (contiguous, into ``out`` when given), converted and transposed in one copy."""
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"expected uint8 or floating point images, got {images.dtype}")
    n, c, h, w = images.shape
    if out is None:
        out = torch.empty((n, h, c, w), dtype=torch.float32, device=images.device)
    out.copy_(images.permute(0, 2, 1, 3))
    return out.div_(255.0) if images.dtype == torch.uint8 else out


def _to_float(images: Tensor) -> Tensor:
    """uint8 -> float32 in [0, 1] (ToTensor); float input is returned as float32 unchanged."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise TypeError(f"expected uint8 or floating point images, got {images.dtype}")


def _per_sample(values: Tensor) -> Tensor:
    """[N] -> [N, 1, 1, 1] for broadcasting against images."""
    return values.reshape(-1, 1, 1, 1)


# --------------------------------------------------------------------------------------------
# RandomResizedCrop
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------------------------


def rgb_to_grayscale(images_float: Tensor) -> Tensor:
    """torchvision's ``rgb_to_grayscale`` (one output channel); 1-channel input is copied."""
    if images_float.shape[-3] == 1:
        return images_float.clone()
    r, g, b = images_float.unbind(dim=-3)
    gray = _GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b
    return gray.unsqueeze(-3)


def _gray_into(img: Tensor, out: Tensor) -> Tensor:
    """``rgb_to_grayscale`` of a 3-channel ``img`` written into ``out [N, 1, H, W]``."""
    torch.mul(img[:, 0:1], _GRAY_WEIGHTS[0], out=out)
    out.add_(img[:, 1:2], alpha=_GRAY_WEIGHTS[1])
    return out.add_(img[:, 2:3], alpha=_GRAY_WEIGHTS[2])


def _blend_coefficients(
    order: Tensor, op_factor: Tensor, active: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-position coefficients ``(f, beta, alpha) [N, 4]`` of :func:`_blend_step_`.

    Where the op at a position is active, ``f`` is its factor and ``beta = (1 - f)`` if it is
    saturation, ``alpha = (1 - f)`` if it is contrast (else 0); elsewhere ``f = 1`` and both
    are 0, which makes the step the identity.
    """
    f = torch.where(active, op_factor, torch.ones_like(op_factor))
    one_minus = 1.0 - f
    beta = one_minus * (order == SATURATION).to(f.dtype)
    alpha = one_minus * (order == CONTRAST).to(f.dtype)
    return f, beta, alpha


def _blend_step_(
    img: Tensor, f: Tensor, beta: Tensor, alpha: Tensor, gray: Tensor | None
) -> Tensor:
    """One brightness / contrast / saturation op per sample, in place on ``img``.

    Each of torchvision's three ops is ``_blend(img, target, f) = clamp(f * img + (1 - f) *
    target, 0, 1)`` with the target 0 (brightness), the mean of the grayscale image
    (contrast) or the grayscale image (saturation), so one blend with per-sample coefficients
    ``[N]`` from :func:`_blend_coefficients` does any of them: ``img * f + beta * gray + alpha
    * mean`` -- the same products as torchvision's. Inactive samples have ``f = 1`` and zero
    coefficients: ``x * 1 + 0 = x`` (images are in [0, 1], so the clamp leaves them alone). No
    per-op indexing (no host sync) and no temporaries of the image's size: ``gray`` is a
    scratch buffer ``[N, 1, H, W]`` (``None`` for one-channel images, which have no
    saturation and are their own grayscale).
    """
    if gray is None:
        bias = alpha * img.mean(dim=(-3, -2, -1))
        return img.mul_(_per_sample(f)).add_(_per_sample(bias)).clamp_(0.0, 1.0)
    _gray_into(img, gray)
    bias = alpha * gray.mean(dim=(-3, -2, -1))
    gray.mul_(_per_sample(beta)).add_(_per_sample(bias))
    return torch.addcmul(gray, img, _per_sample(f), out=img).clamp_(0.0, 1.0)


def _adjust_hue(img: Tensor, factor: Tensor, scratch: _Scratch | None = None) -> Tensor:
    """torchvision ``adjust_hue`` with a per-sample ``factor [N]`` (3-channel, [0, 1] images).

    The same function of the pixel as torchvision's ``_rgb2hsv`` -> shift -> ``_hsv2rgb``, in
    closed form and with float arithmetic only (no boolean masks or ``where``, which are slow
    on CPUs), mostly in place: with ``M``, ``m`` the channel max and min, ``C = M - m`` and the
    hue in sextants ``H`` (torchvision's ``h * 6``: ``(g - b) / C`` where r is the max,
    ``2 + (b - r) / C`` where g is, else ``4 + (r - g) / C``), output channel ``c`` is
    ``M - C * ramp(H + 6 * factor + n_c)`` with ``n = 5, 3, 1`` for r, g, b and ``ramp(k) =
    clamp(min(k, 4 - k), 0, 1)`` for ``k mod 6`` -- torchvision's ``v, p, q, t`` sector table
    (``v * s = C``). The map is continuous in ``H``, so it agrees with torchvision to float32
    rounding. Returns a new tensor (a ``scratch`` buffer when given).
    """
    scratch = scratch or _Scratch()
    r, g, b = img.unbind(dim=-3)
    plane = r.shape

    def buffer(name: str) -> Tensor:
        return scratch(f"hue_{name}", plane, img)

    maxc = torch.maximum(r, g, out=buffer("max"))
    torch.maximum(maxc, b, out=maxc)
    chroma = torch.minimum(r, g, out=buffer("chroma"))
    torch.minimum(chroma, b, out=chroma)
    chroma.neg_().add_(maxc)
    # 1 where the channel is below the max, 0 where it is the max (exact, float only).
    r_below = torch.sub(maxc, r, out=buffer("r_below")).sign_()
    g_below = torch.sub(maxc, g, out=buffer("g_below")).sign_()
    # Where C == 0 all channels are equal, the differences are 0, and H does not matter.
    inv_chroma = torch.clamp_min(chroma, torch.finfo(img.dtype).tiny, out=buffer("inv"))
    inv_chroma.reciprocal_()
    h_r = torch.sub(g, b, out=buffer("h_r")).mul_(inv_chroma)  # max is r
    h_g = torch.sub(b, r, out=buffer("h_g")).mul_(inv_chroma).add_(2.0)  # max is g (not r)
    h_b = torch.sub(r, g, out=buffer("h_b")).mul_(inv_chroma).add_(4.0)  # max is b only
    # H = h_r + [r below] * ((h_g - h_r) + [g below] * (h_b - h_g)), in [-1, 5]; plus 1.
    h_b.sub_(h_g).mul_(g_below)
    h_g.sub_(h_r).add_(h_b).mul_(r_below)
    h1 = h_r.add_(h_g).add_(1.0)
    # ramp(H + s + n) = clamp(||d| - 3| - 1, 0, 1) with d = (H + 1) - ((3 - s - n) mod 6),
    # since (H + 1) and the mod are both in [0, 6]: |d| <= 6 covers the wrap-around.
    offsets = 2.0 * torch.arange(3, device=img.device, dtype=img.dtype) - 2.0  # 3 - n
    shift = torch.remainder(offsets - 6.0 * factor.to(img.dtype)[:, None], 6.0)  # [N, 3]
    ramp = scratch("hue_ramp", img.shape, img)
    torch.sub(h1.unsqueeze(-3), shift[:, :, None, None], out=ramp)
    ramp.abs_().sub_(3.0).abs_().sub_(1.0).clamp_(0.0, 1.0)
    return ramp.mul_(chroma.unsqueeze(-3)).neg_().add_(maxc.unsqueeze(-3))


def _jitter_ranges(
    brightness: float, contrast: float, saturation: float, hue: float
) -> list[tuple[float, float] | None]:
    """torchvision ColorJitter ranges; ``None`` where the strength is 0 (op disabled)."""
    for name, value in (
        ("brightness", brightness),
        ("contrast", contrast),
        ("saturation", saturation),
        ("hue", hue),
    ):
        if value < 0:
            raise ValueError(f"{name} jitter must be non-negative, got {value}")
    if hue > 0.5:
        raise ValueError(f"hue jitter must be <= 0.5, got {hue}")
    ranges: list[tuple[float, float] | None] = [
        (max(0.0, 1.0 - v), 1.0 + v) if v > 0 else None for v in (brightness, contrast, saturation)
    ]
    ranges.append((-hue, hue) if hue > 0 else None)
    return ranges


def sample_jitter_params(
    n: int,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-sample ColorJitter parameters, as ``ColorJitter.get_params`` draws them per call.

    Returns:
        ``factors``: float ``[n, 4]`` (brightness, contrast, saturation, hue), each uniform in
        torchvision's range ``[max(0, 1 - s), 1 + s]`` (hue: ``[-h, h]``); identity values
        (1, 1, 1, 0) for disabled ops. ``order``: int64 ``[n, 4]``, a uniformly random
        permutation of the op indices 0..3 per sample (torchvision's ``randperm(4)``).
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    order = torch.argsort(_rand((n, 4), generator, device), dim=1)
    u = _rand((n, 4), generator, device)
    cols = []
    for k, rng in enumerate(_jitter_ranges(brightness, contrast, saturation, hue)):
        if rng is None:
            cols.append(torch.full((n,), 0.0 if k == HUE else 1.0, device=device))
        else:
            cols.append(rng[0] + (rng[1] - rng[0]) * u[:, k])
    return torch.stack(cols, dim=1), order


def apply_color_jitter(
    images_float: Tensor,
    factors: Tensor,
    order: Tensor,
    enabled: Sequence[bool] = (True, True, True, True),
    mask: Tensor | None = None,
) -> Tensor:
    """Apply colour ops with explicit per-sample ``factors [N, 4]`` in per-sample ``order [N, 4]``.

    Sample ``n`` gets, for ``k = 0..3``, op ``order[n, k]`` (0 brightness, 1 contrast,
    2 saturation, 3 hue) with factor ``factors[n, order[n, k]]`` -- the same as calling
    torchvision's ``adjust_brightness/contrast/saturation/hue`` in that order. Ops with
    ``enabled[op] == False`` are skipped (torchvision's ``None`` factors). With ``mask [N]``
    only the samples where it is True are jittered (the others are returned unchanged).
    Images are float in [0, 1]; the input is not modified.
    """
    _check_float_images(images_float)
    return _color_jitter_(images_float.clone(), factors, order, enabled, mask)


def _color_jitter_(
    img: Tensor,
    factors: Tensor,
    order: Tensor,
    enabled: Sequence[bool],
    mask: Tensor | None,
    scratch: _Scratch | None = None,
) -> Tensor:
    """:func:`apply_color_jitter` in place on ``img`` (which must not be needed afterwards).

    Every step works on the whole batch with per-sample arithmetic coefficients (no boolean
    indexing, hence no host-device sync): the brightness / contrast / saturation ops before
    each sample's hue op (3 blend steps), the hue op once, then the ops after it (3 more).
    Without hue (disabled, or one-channel images) it is 4 blend steps.
    """
    dev, dtype = img.device, img.dtype
    n, c = img.shape[0], img.shape[1]
    order = order.to(dev)
    factors = factors.to(device=dev, dtype=dtype)
    if mask is None:
        mask = torch.ones(n, dtype=torch.bool, device=dev)
    mask = mask.to(dev)
    use_hue = bool(enabled[HUE]) and c == 3
    blend_ops = [op for op in (BRIGHTNESS, CONTRAST, SATURATION) if enabled[op]]
    if c == 1:
        blend_ops = [op for op in blend_ops if op != SATURATION]
    if not blend_ops and not use_hue:
        return img

    op_factor = factors.gather(1, order)  # [N, 4]: factor of the op at each position
    op_enabled = torch.zeros_like(order, dtype=torch.bool)
    for op in blend_ops:
        op_enabled |= order == op
    op_enabled &= mask[:, None]
    scratch = scratch or _Scratch()
    gray = scratch("gray", (n, 1, *img.shape[2:]), img) if c == 3 else None
    if not use_hue:
        f, beta, alpha = _blend_coefficients(order, op_factor, op_enabled)
        for k in range(4):
            _blend_step_(img, f[:, k], beta[:, k], alpha[:, k], gray)
        return img
    position = torch.arange(4, device=dev)
    hue_position = torch.argmax((order == HUE).to(torch.uint8), dim=1, keepdim=True)  # [N, 1]
    f, beta, alpha = _blend_coefficients(order, op_factor, op_enabled & (position < hue_position))
    for k in range(3):  # ops before the hue op
        _blend_step_(img, f[:, k], beta[:, k], alpha[:, k], gray)
    # Hue where the jitter applies (lerp with weight 0 / 1 is exact: x / hued).
    img.lerp_(_adjust_hue(img, factors[:, HUE], scratch), _per_sample(mask.to(dtype)))
    f, beta, alpha = _blend_coefficients(order, op_factor, op_enabled & (position > hue_position))
    for k in range(1, 4):  # ops after the hue op
        _blend_step_(img, f[:, k], beta[:, k], alpha[:, k], gray)
    return img


def color_jitter(
    images_float: Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """torchvision ``ColorJitter(brightness, contrast, saturation, hue)``, always applied, with
    independent factors and an independent random op order per sample.

    One-channel images: saturation and hue are no-ops (torchvision's PIL-matching behaviour),
    but their factors are still drawn.
    """
    _check_float_images(images_float)
    factors, order = sample_jitter_params(
        images_float.shape[0],
        brightness,
        contrast,
        saturation,
        hue,
        generator,
        images_float.device,
    )
    enabled = [r is not None for r in _jitter_ranges(brightness, contrast, saturation, hue)]
    return apply_color_jitter(images_float, factors, order, enabled)


def apply_grayscale(images_float: Tensor, mask: Tensor) -> Tensor:
    """Grayscale (channel count kept, 3 identical channels) the samples where ``mask`` is True."""
    _check_float_images(images_float)
    if images_float.shape[1] == 1:
        return images_float  # torchvision: rgb_to_grayscale of a 1-channel image is a copy
    # lerp with a 0 / 1 weight returns exactly the image / its grayscale (no slow ``where``).
    weight = _per_sample(mask.to(device=images_float.device, dtype=images_float.dtype))
    return torch.lerp(images_float, rgb_to_grayscale(images_float), weight)


def random_grayscale(
    images_float: Tensor, p: float, generator: torch.Generator | None = None
) -> Tensor:
    """torchvision ``RandomGrayscale(p)`` per sample; keeps the channel count."""
    _check_float_images(images_float)
    mask = _bernoulli(images_float.shape[0], p, generator, images_float.device)
    return apply_grayscale(images_float, mask)


# --------------------------------------------------------------------------------------------
# Gaussian blur
# --------------------------------------------------------------------------------------------


def blur_kernel_size(crop_size: int) -> int:
    """SimCLR's blur kernel: ~10% of the crop side, made odd, at least 3 (224 -> 23, 32 -> 3)."""
    k = max(3, int(0.1 * crop_size))
    return k + 1 if k % 2 == 0 else k


def apply_gaussian_blur(
    images_float: Tensor, sigma: Tensor, kernel_size: int, mask: Tensor | None = None
) -> Tensor:
    """torchvision ``gaussian_blur(img, [k, k], [s, s])`` with a per-sample ``sigma [N]``.

    Reflect padding and torchvision's normalised kernel, applied separably as grouped convs.
    Only the samples where ``mask`` is True (all if ``None``) are blurred.
    """
    _check_float_images(images_float)
    if kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    dev = images_float.device
    sigma = sigma.to(device=dev, dtype=images_float.dtype)
    if mask is not None:
        # Blur every sample, keep the selected ones: no boolean indexing, no host sync.
        blurred = apply_gaussian_blur(images_float, sigma, kernel_size)
        return torch.lerp(images_float, blurred, _per_sample(mask.to(dev, images_float.dtype)))
    n, c, h, w = images_float.shape
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size, dtype=images_float.dtype, device=dev)
    pdf = torch.exp(-0.5 * (x[None, :] / sigma[:, None]).pow(2))
    k1d = (pdf / pdf.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [N*C, k]
    pad = kernel_size // 2
    flat = F.pad(images_float.reshape(1, n * c, h, w), [pad, pad, pad, pad], mode="reflect")
    flat = F.conv2d(flat, k1d[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, k1d[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def gaussian_blur(
    images_float: Tensor,
    p: float,
    sigma_range: Sequence[float],
    kernel_size: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``RandomApply([GaussianBlur(kernel_size, sigma_range)], p)`` per sample."""
    _check_float_images(images_float)
    n, dev = images_float.shape[0], images_float.device
    mask = _bernoulli(n, p, generator, dev)
    sigma = _uniform(n, sigma_range[0], sigma_range[1], generator, dev)
    return apply_gaussian_blur(images_float, sigma, kernel_size, mask)


# --------------------------------------------------------------------------------------------
# Full SimCLR view
# --------------------------------------------------------------------------------------------


@dataclass
class AugmentParams:
    """Every random parameter of one :class:`BatchAugment` call (all tensors have length N).

    Attributes:
        boxes: int64 ``[N, 4]`` crop boxes ``(top, left, h, w)``.
        flip: bool, horizontal flip.
        jitter: bool, colour jitter applied (RandomApply).
        jitter_factors: float ``[N, 4]`` (brightness, contrast, saturation, hue).
        jitter_order: int64 ``[N, 4]`` op permutation.
        grayscale: bool, grayscale applied.
        blur: bool, blur applied.
        blur_sigma: float, blur sigma.
    """

    boxes: Tensor
    flip: Tensor
    jitter: Tensor
    jitter_factors: Tensor
    jitter_order: Tensor
    grayscale: Tensor
    blur: Tensor
    blur_sigma: Tensor


class BatchAugment:
    """One SimCLR view per image, batched on the images' device (see the module docstring)."""

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.blur_kernel_size = blur_kernel_size(config.crop_size)
        self._jitter_enabled = [r is not None for r in _jitter_ranges(*config.jitter)]
        self._scratch = _Scratch()  # temporaries reused between calls (see _Scratch)

    def sample_params(
        self,
        n: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> AugmentParams:
        """Draw all per-sample parameters for a batch of ``n`` images of ``height x width``."""
        cfg = self.config
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        boxes = sample_crop_boxes(n, height, width, cfg.scale, cfg.ratio, generator, device)
        flip = _bernoulli(n, cfg.flip_p, generator, device)
        jitter = _bernoulli(n, cfg.jitter_p, generator, device)
        factors, order = sample_jitter_params(n, *cfg.jitter, generator=generator, device=device)
        gray = _bernoulli(n, cfg.grayscale_p, generator, device)
        blur = _bernoulli(n, cfg.blur_p, generator, device)
        sigma = _uniform(n, cfg.blur_sigma[0], cfg.blur_sigma[1], generator, device)
        return AugmentParams(boxes, flip, jitter, factors, order, gray, blur, sigma)

    def apply(
        self,
        images: Tensor,
        params: AugmentParams,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> Tensor:
        """Apply explicit parameters: uint8/float ``[N, C, H, W]`` -> float ``[N, C, s, s]``.

        The resize works in ``[N, H, C, W]`` buffers, everything after it in place in one
        ``[N, C, s, s]`` buffer (all reused between calls); the result is copied once into a
        fresh tensor in ``memory_format`` (e.g. ``torch.channels_last`` for the model).
        """
        cfg = self.config
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected [N, 1|3, H, W] images, got {tuple(images.shape)}")
        n, c, h, w = images.shape
        size = cfg.crop_size
        scratch = self._scratch
        like = torch.empty((), dtype=torch.float32, device=images.device)
        x = _to_float_hcw(images, scratch("input", (n, h, c, w), like))
        # Crop, resize and the horizontal flip in two batched matmuls.
        x = _resize_hcw(x, params.boxes, size, size, cfg.interpolation, params.flip, scratch)
        # Back to [N, C, s, s] in a contiguous working buffer: the colour ops broadcast over
        # channels and run fastest with each channel plane contiguous.
        # The clamp: PIL / uint8-tensor resize output is clamped to the pixel range.
        x = torch.clamp(x.permute(0, 2, 1, 3), 0.0, 1.0, out=scratch("work", (n, c, size, size), x))
        if cfg.jitter_p > 0 and any(self._jitter_enabled):
            x = _color_jitter_(
                x,
                params.jitter_factors,
                params.jitter_order,
                self._jitter_enabled,
                params.jitter,
                scratch,
            )
        # The result is always a fresh tensor (never the reused working buffer), in the
        # requested layout; the last op writes it.
        out = torch.empty_like(x, memory_format=memory_format)
        if cfg.grayscale_p > 0 and c == 3:
            weight = _per_sample(params.grayscale.to(device=x.device, dtype=x.dtype))
            gray = _gray_into(x, scratch("gray", (n, 1, size, size), x))
            if cfg.blur_p == 0:
                return torch.lerp(x, gray, weight, out=out)
            x.lerp_(gray, weight)
        if cfg.blur_p > 0:
            x = apply_gaussian_blur(x, params.blur_sigma, self.blur_kernel_size, params.blur)
        return out.copy_(x)

    def __call__(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> Tensor:
        """uint8 [N,C,H,W] on any device -> float32 [N,C,crop,crop] in [0,1] on the same device.

        All randomness comes from ``generator`` when given (it must be on ``images.device``).
        No operation waits for the device (no host-device synchronisation).
        """
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected [N, 1|3, H, W] images, got {tuple(images.shape)}")
        n, _, h, w = images.shape
        params = self.sample_params(n, h, w, generator, images.device)
        return self.apply(images, params, memory_format)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


# --------------------------------------------------------------------------------------------
# Linear-probe augmentation
# --------------------------------------------------------------------------------------------


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
