"""Gaussian blur with torchvision's kernel and reflect padding, applied separably."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from sdclr.data.augment._common import _check_float_images, _per_sample


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
