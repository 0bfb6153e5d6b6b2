"""What every augmentation module shares: per-sample random draws from one generator,
reusable scratch buffers and float conversions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


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
