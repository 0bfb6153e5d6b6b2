"""Colour: ColorJitter (brightness, contrast, saturation, hue in a random order per sample)
and RandomGrayscale, with torchvision's arithmetic."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sdclr.data.augment._common import (
    _check_float_images,
    _per_sample,
    _rand,
    _Scratch,
)
from sdclr.data.augment.config import _GRAY_WEIGHTS, BRIGHTNESS, CONTRAST, HUE, SATURATION


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


def apply_grayscale(images_float: Tensor, mask: Tensor) -> Tensor:
    """Grayscale (channel count kept, 3 identical channels) the samples where ``mask`` is True."""
    _check_float_images(images_float)
    if images_float.shape[1] == 1:
        return images_float  # torchvision: rgb_to_grayscale of a 1-channel image is a copy
    # lerp with a 0 / 1 weight returns exactly the image / its grayscale (no slow ``where``).
    weight = _per_sample(mask.to(device=images_float.device, dtype=images_float.dtype))
    return torch.lerp(images_float, rgb_to_grayscale(images_float), weight)
