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

from sdclr.data.augment.blur import apply_gaussian_blur, blur_kernel_size
from sdclr.data.augment.colour import (
    apply_color_jitter,
    apply_grayscale,
    rgb_to_grayscale,
    sample_jitter_params,
)
from sdclr.data.augment.config import AugmentConfig
from sdclr.data.augment.crops import (
    crop_flip_with_params,
    random_crop_flip,
    random_resized_crop_flip,
    resized_crop,
    sample_crop_boxes,
)
from sdclr.data.augment.pipeline import AugmentParams, BatchAugment

__all__ = [
    "AugmentConfig",
    "AugmentParams",
    "BatchAugment",
    "apply_color_jitter",
    "apply_gaussian_blur",
    "apply_grayscale",
    "blur_kernel_size",
    "crop_flip_with_params",
    "random_crop_flip",
    "random_resized_crop_flip",
    "resized_crop",
    "rgb_to_grayscale",
    "sample_crop_boxes",
    "sample_jitter_params",
]
