"""The batched dispatch: one SimCLR view per image, every random parameter drawn in one
call (:class:`BatchAugment`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sdclr.data.augment._common import _bernoulli, _per_sample, _Scratch, _to_float_hcw, _uniform
from sdclr.data.augment.blur import apply_gaussian_blur, blur_kernel_size
from sdclr.data.augment.colour import (
    _color_jitter_,
    _gray_into,
    _jitter_ranges,
    sample_jitter_params,
)
from sdclr.data.augment.config import AugmentConfig
from sdclr.data.augment.crops import _resize_hcw, sample_crop_boxes


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
