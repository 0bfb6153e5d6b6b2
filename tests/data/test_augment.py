"""Tests for the batched SimCLR augmentation (sdclr.data.augment) against torchvision."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn import functional as F
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from sdclr.data.augment import (
    AugmentConfig,
    AugmentParams,
    BatchAugment,
    apply_color_jitter,
    apply_gaussian_blur,
    apply_grayscale,
    blur_kernel_size,
    crop_flip_with_params,
    random_crop_flip,
    resized_crop,
    sample_crop_boxes,
    sample_jitter_params,
)
from sdclr.errors import ConfigError
from sdclr.settings import load

RATIO = (3 / 4, 4 / 3)
# Two-sample Kolmogorov-Smirnov critical value at alpha = 0.001 is 1.949 * sqrt((n + m) / nm).
KS_C_ALPHA_001 = 1.949


# Sample-and-apply compositions of the library's ops (what BatchAugment does inline).


def gaussian_blur(images, p, sigma_range, kernel_size, generator=None):
    """RandomApply([GaussianBlur(kernel_size, sigma_range)], p), per sample."""
    n, dev = images.shape[0], images.device
    mask = torch.rand(n, generator=generator, device=dev) < p
    low, high = sigma_range
    sigma = low + (high - low) * torch.rand(n, generator=generator, device=dev)
    return apply_gaussian_blur(images, sigma, kernel_size, mask)


def color_jitter(images, brightness, contrast, saturation, hue, generator=None):
    """ColorJitter with independent factors and op order per sample."""
    n = images.shape[0]
    factors, order = sample_jitter_params(
        n, brightness, contrast, saturation, hue, generator, images.device
    )
    return apply_color_jitter(images, factors, order)


def random_grayscale(images, p, generator=None):
    """RandomGrayscale(p), per sample."""
    mask = torch.rand(images.shape[0], generator=generator, device=images.device) < p
    return apply_grayscale(images, mask)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample KS statistic (max CDF distance)."""
    a, _ = torch.sort(a.double())
    b, _ = torch.sort(b.double())
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True) / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True) / len(b)
    return (cdf_a - cdf_b).abs().max().item()


def _ks_threshold(n: int, m: int) -> float:
    return KS_C_ALPHA_001 * ((n + m) / (n * m)) ** 0.5


def _torchvision_boxes(n: int, height: int, width: int, scale, ratio, seed: int) -> torch.Tensor:
    img = torch.empty(1, height, width)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        boxes = [T.RandomResizedCrop.get_params(img, list(scale), list(ratio)) for _ in range(n)]
    return torch.tensor(boxes)


def _textures(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random colour blobs plus pixel noise, uint8 [n, C, size, size]."""
    g = _gen(seed)
    low = torch.rand(n, channels, 4, 4, generator=g)
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = 0.7 * x + 0.3 * torch.rand(n, channels, size, size, generator=g)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def _colour_test_images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Float images with saturated, gray and equal-channel pixels (hue edge cases)."""
    x = torch.rand(n, channels, size, size, generator=_gen(seed))
    x[:, :, 0, :] = 0.5  # gray row (max == min in HSV)
    x[:, :, 1, 0] = 1.0  # white
    x[:, :, 1, 1] = 0.0  # black
    if channels == 3:
        x[:, 0, 2, :] = 1.0  # saturated red-ish row
        x[:, 1, 2, :] = 0.0
    return x


# --------------------------------------------------------------------------------------------
# AugmentConfig
# --------------------------------------------------------------------------------------------


def test_config_from_dict_converts_lists_and_rejects_unknown_keys():
    """The config loader turns YAML lists into tuples and names an unknown key plus the known
    keys."""
    cfg = load(
        AugmentConfig, {"crop_size": 32, "scale": [0.2, 1.0], "jitter": [0.1] * 4}, "augmentation"
    )
    assert cfg.scale == (0.2, 1.0) and isinstance(cfg.scale, tuple)
    assert cfg.jitter == (0.1, 0.1, 0.1, 0.1)
    assert cfg == AugmentConfig(crop_size=32, scale=(0.2, 1.0), jitter=(0.1, 0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="blurp") as info:
        load(AugmentConfig, {"crop_size": 32, "blurp": 0.5}, "augmentation")
    assert "blur_p" in str(info.value) and "crop_size" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crop_size": 0},
        {"crop_size": 32, "flip_p": 1.5},
        {"crop_size": 32, "scale": [0.5, 0.1]},
        {"crop_size": 32, "scale": [0.5, 1.5]},
        {"crop_size": 32, "jitter": [0.4, 0.4, 0.4, 0.7]},
        {"crop_size": 32, "jitter": [0.4, 0.4, 0.4]},
        {"crop_size": 32, "interpolation": "nearest"},
    ],
)
def test_config_rejects_invalid_values(kwargs):
    """Invalid probabilities, ranges, hue strength or interpolation are config errors naming
    the key, when the section is loaded."""
    with pytest.raises(ConfigError, match=r"augmentation(\.\w+)+: "):
        load(AugmentConfig, kwargs, "augmentation")


# --------------------------------------------------------------------------------------------
# RandomResizedCrop parameters
# --------------------------------------------------------------------------------------------


def _box_stats(boxes: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
    top, left, h, w = boxes.double().unbind(1)
    return {
        "area": h * w / (height * width),
        "aspect": w / h,
        # Offset as a fraction of the free range, uniform in [0, 1) when the offset is uniform.
        "top": top / (height - h + 1),
        "left": left / (width - w + 1),
    }


def _wrong_linear_ratio_boxes(n, height, width, scale, ratio, g) -> torch.Tensor:
    """Negative control: aspect ratio uniform instead of log-uniform, no rejection."""
    area = height * width * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=g))
    r = ratio[0] + (ratio[1] - ratio[0]) * torch.rand(n, generator=g)
    w = torch.sqrt(area * r).round().clamp(1, width)
    h = torch.sqrt(area / r).round().clamp(1, height)
    return torch.stack([torch.zeros_like(h), torch.zeros_like(w), h, w], 1).long()


@pytest.mark.parametrize(
    ("height", "width", "scale"), [(32, 32, (0.1, 1.0)), (224, 224, (0.08, 1.0))]
)
def test_crop_boxes_match_torchvision_distribution(height, width, scale):
    """sample_crop_boxes has RandomResizedCrop.get_params' area/aspect/offset distributions."""
    n = 20000
    ref = _torchvision_boxes(n, height, width, scale, RATIO, seed=0)
    ours = sample_crop_boxes(n, height, width, scale, RATIO, generator=_gen(1))
    assert ours.shape == (n, 4) and ours.dtype == torch.int64
    top, left, h, w = ours.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()

    threshold = _ks_threshold(n, n)  # ~0.0195
    s_ref, s_ours = _box_stats(ref, height, width), _box_stats(ours, height, width)
    for key in s_ref:
        assert _ks(s_ref[key], s_ours[key]) < threshold, key
    # Means and quartiles of area fraction and aspect ratio (std error ~0.002 and ~0.001).
    for key, tol in (("area", 0.01), ("aspect", 0.006)):
        assert abs(s_ref[key].mean() - s_ours[key].mean()) < tol, key
        q = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
        assert torch.allclose(s_ref[key].quantile(q), s_ours[key].quantile(q), atol=2 * tol), key

    # The same thresholds reject a plausible wrong sampler (linear ratio, clamping).
    wrong = _box_stats(
        _wrong_linear_ratio_boxes(n, height, width, scale, RATIO, _gen(2)), height, width
    )
    assert _ks(s_ref["aspect"], wrong["aspect"]) > 2 * threshold
    assert _ks(s_ref["area"], wrong["area"]) > 2 * threshold


@pytest.mark.parametrize(
    ("height", "width", "scale"), [(20, 40, (0.5, 1.0)), (48, 16, (0.45, 1.0))]
)
def test_crop_boxes_fallback_matches_torchvision(height, width, scale):
    """After 10 failed attempts both fall back to the same central crop, equally often."""
    n = 5000
    ref = _torchvision_boxes(n, height, width, scale, RATIO, seed=3)
    ours = sample_crop_boxes(n, height, width, scale, RATIO, generator=_gen(4))
    assert (ours[:, 0] + ours[:, 2] <= height).all() and (ours[:, 1] + ours[:, 3] <= width).all()
    # torchvision's fallback box for this shape, i.e. its most frequent box.
    values, counts = torch.unique(ref, dim=0, return_counts=True)
    fallback = values[counts.argmax()]
    frac_ref = (ref == fallback).all(1).double().mean()
    frac_ours = (ours == fallback).all(1).double().mean()
    assert frac_ref > 0.2  # the case really exercises the fallback
    assert abs(frac_ref - frac_ours) < 0.03  # binomial std error <= 0.01
    threshold = _ks_threshold(n, n)
    for key, a in _box_stats(ref, height, width).items():
        assert _ks(a, _box_stats(ours, height, width)[key]) < threshold, key


def test_crop_boxes_reproducible_and_generator_only():
    """Boxes depend only on the generator's seed and leave the global RNG untouched."""
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = sample_crop_boxes(100, 32, 32, (0.1, 1.0), RATIO, generator=_gen(7))
    b = sample_crop_boxes(100, 32, 32, (0.1, 1.0), RATIO, generator=_gen(7))
    c = sample_crop_boxes(100, 32, 32, (0.1, 1.0), RATIO, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)


# --------------------------------------------------------------------------------------------
# Crop + resize
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize(
    ("height", "width", "size"),
    [(32, 32, 32), (28, 28, 28), (96, 80, 32)],  # CIFAR / MNIST upscaling; a downscaling case
)
def test_resized_crop_matches_torchvision(interpolation, height, width, size):
    """Batched crop+resize equals TF.resized_crop (antialias default) per sample, atol 1e-5."""
    n = 48
    x = torch.rand(n, 3, height, width, generator=_gen(0))
    boxes = sample_crop_boxes(n, height, width, (0.1, 1.0), RATIO, generator=_gen(1))
    out = resized_crop(x, boxes, size, interpolation)
    mode = InterpolationMode(interpolation)
    ref = torch.stack(
        [
            TF.resized_crop(x[i], *boxes[i].tolist(), [size, size], interpolation=mode)
            for i in range(n)
        ]
    )
    assert out.shape == (n, 3, size, size)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_resized_crop_full_box_is_identity():
    """A full-image box resized to the image size returns the image (torchvision's no-op)."""
    x = torch.rand(4, 1, 28, 28, generator=_gen(0))
    boxes = torch.tensor([[0, 0, 28, 28]] * 4)
    torch.testing.assert_close(resized_crop(x, boxes, 28, "bicubic"), x, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------
# Colour jitter
# --------------------------------------------------------------------------------------------

_TV_OPS = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]


@pytest.mark.parametrize("channels", [3, 1])
def test_color_jitter_fixed_params_match_torchvision(channels):
    """apply_color_jitter with explicit factors/order equals TF.adjust_* in that order."""
    perms = torch.tensor(list(itertools.permutations(range(4))))  # all 24 orders
    order = torch.cat([perms, perms])
    n = len(order)
    x = _colour_test_images(n, channels, 12, seed=0)
    factors, _ = sample_jitter_params(n, 0.4, 0.4, 0.4, 0.1, generator=_gen(1))
    factors[:24, 3] = torch.linspace(-0.5, 0.5, 24)  # hue extremes too
    out = apply_color_jitter(x, factors, order)
    ref = []
    for i in range(n):
        y = x[i]
        for op in order[i].tolist():
            y = _TV_OPS[op](y, float(factors[i, op]))
        ref.append(y)
    torch.testing.assert_close(out, torch.stack(ref), atol=1e-5, rtol=0)


def test_color_jitter_on_grayscale_images_only_changes_brightness_contrast():
    """For C=1, saturation and hue are exact no-ops, like torchvision."""
    x = _colour_test_images(8, 1, 10, seed=0)
    factors = torch.tensor([[1.0, 1.0, 0.0, 0.5]] * 8)  # saturation 0 and max hue shift
    order = torch.tensor([[0, 1, 2, 3]] * 8)
    assert torch.equal(apply_color_jitter(x, factors, order), x)


def test_jitter_factor_ranges():
    """Factors are uniform on [max(0, 1-s), 1+s] (hue [-h, h]); zero strength disables."""
    n = 20000
    factors, _ = sample_jitter_params(n, 0.4, 1.5, 0.4, 0.1, generator=_gen(0))
    lows = torch.tensor([0.6, 0.0, 0.6, -0.1])
    highs = torch.tensor([1.4, 2.5, 1.4, 0.1])
    assert (factors >= lows).all() and (factors <= highs).all()
    width = highs - lows
    assert (factors.amin(0) - lows < 0.01 * width).all()  # the whole range is covered
    assert (highs - factors.amax(0) < 0.01 * width).all()
    torch.testing.assert_close(factors.mean(0), (lows + highs) / 2, atol=0.02 * 2.5, rtol=0.01)
    # Uniform, not e.g. symmetric-around-1 for the clipped contrast range [0, 2.5].
    assert abs(factors[:, 1].mean().item() - 1.25) < 0.03
    off, _ = sample_jitter_params(10, 0.0, 0.0, 0.4, 0.0, generator=_gen(1))
    assert torch.equal(off[:, [0, 1]], torch.ones(10, 2))
    assert torch.equal(off[:, 3], torch.zeros(10))


def test_jitter_order_is_uniform_random_permutation():
    """Each sample gets its own permutation of the 4 ops; all 24 orders occur about equally."""
    n = 24000
    _, order = sample_jitter_params(n, 0.4, 0.4, 0.4, 0.1, generator=_gen(0))
    assert torch.equal(order.sort(1).values, torch.arange(4).expand(n, 4))
    _, counts = torch.unique(order, dim=0, return_counts=True)
    assert len(counts) == 24
    assert counts.min() > 850 and counts.max() < 1150  # expected 1000, std ~31


def test_color_jitter_draws_independent_params_per_sample():
    """color_jitter gives different results for identical images, reproducible per seed."""
    x = _colour_test_images(1, 3, 8, seed=0).expand(16, -1, -1, -1).contiguous()
    a = color_jitter(x, 0.4, 0.4, 0.4, 0.1, generator=_gen(0))
    b = color_jitter(x, 0.4, 0.4, 0.4, 0.1, generator=_gen(0))
    assert torch.equal(a, b)
    flat = a.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(16)).min() > 1e-3  # all pairwise distinct
    assert a.min() >= 0 and a.max() <= 1


# --------------------------------------------------------------------------------------------
# Grayscale, blur
# --------------------------------------------------------------------------------------------


def test_grayscale_matches_torchvision_and_keeps_channels():
    """apply_grayscale equals TF.rgb_to_grayscale(num_output_channels=3); C=1 is unchanged."""
    x = torch.rand(6, 3, 8, 8, generator=_gen(0))
    mask = torch.tensor([True, False, True, False, True, False])
    out = apply_grayscale(x, mask)
    ref = TF.rgb_to_grayscale(x, num_output_channels=3)
    torch.testing.assert_close(out[mask], ref[mask], atol=1e-6, rtol=0)
    assert torch.equal(out[~mask], x[~mask])
    gray = torch.rand(4, 1, 8, 8, generator=_gen(1))
    assert torch.equal(random_grayscale(gray, 1.0, generator=_gen(2)), gray)


def test_random_grayscale_probability():
    """random_grayscale converts each sample independently with probability ~p."""
    x = torch.rand(20000, 3, 2, 2, generator=_gen(0))
    out = random_grayscale(x, 0.2, generator=_gen(1))
    is_gray = (out.amax(1) == out.amin(1)).flatten(1).all(1)
    assert abs(is_gray.double().mean().item() - 0.2) < 0.015  # std error 0.003


def test_gaussian_blur_matches_torchvision():
    """Per-sample-sigma blur equals TF.gaussian_blur (reflect padding) for each sample."""
    x = torch.rand(8, 3, 16, 16, generator=_gen(0))
    sigma = 0.1 + 1.9 * torch.rand(8, generator=_gen(1))
    for k in (3, 5):
        out = apply_gaussian_blur(x, sigma, k)
        ref = torch.stack([TF.gaussian_blur(x[i], [k, k], [float(sigma[i])] * 2) for i in range(8)])
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert torch.equal(gaussian_blur(x, 0.0, (0.1, 2.0), 3, generator=_gen(2)), x)
    assert [blur_kernel_size(s) for s in (32, 96, 224)] == [3, 9, 23]


# --------------------------------------------------------------------------------------------
# BatchAugment
# --------------------------------------------------------------------------------------------


def test_batchaugment_parameter_probabilities():
    """Flip ~0.5, jitter ~0.8, grayscale ~0.2 and blur ~blur_p per sample, independently."""
    aug = BatchAugment(AugmentConfig(crop_size=32, blur_p=0.3))
    p = aug.sample_params(20000, 32, 32, generator=_gen(0))
    tol = 0.015  # binomial std error <= 0.0035
    for mask, expected in ((p.flip, 0.5), (p.jitter, 0.8), (p.grayscale, 0.2), (p.blur, 0.3)):
        assert mask.dtype == torch.bool
        assert abs(mask.double().mean().item() - expected) < tol
    both = (p.flip & p.grayscale).double().mean().item()
    assert abs(both - 0.1) < tol  # independent draws
    assert (p.blur_sigma >= 0.1).all() and (p.blur_sigma <= 2.0).all()


def test_batchaugment_apply_follows_explicit_masks():
    """apply() flips, jitters and grays exactly the samples its masks select, in order."""
    cfg = AugmentConfig(crop_size=16)
    aug = BatchAugment(cfg)
    n = 8
    imgs = _textures(n, 3, 16, seed=0)
    p = aug.sample_params(n, 16, 16, generator=_gen(1))
    p.flip = torch.tensor([True, False] * 4)
    p.jitter = torch.tensor([True, True, False, False] * 2)
    p.grayscale = torch.tensor([False] * 4 + [True] * 4)
    out = aug.apply(imgs, p)

    x = resized_crop(imgs.float() / 255, p.boxes, 16, "bicubic").clamp(0, 1)
    x = torch.where(p.flip[:, None, None, None], x.flip(-1), x)
    jit = apply_color_jitter(x, p.jitter_factors, p.jitter_order)
    x = torch.where(p.jitter[:, None, None, None], jit, x)
    x = torch.where(p.grayscale[:, None, None, None], TF.rgb_to_grayscale(x, 3), x)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("channels", "size", "crop"), [(3, 32, 32), (1, 28, 28), (3, 32, 24)])
def test_batchaugment_output_contract(channels, size, crop):
    """uint8 [N,C,H,W] -> float32 [N,C,crop,crop] in [0,1]; seeded = deterministic."""
    imgs = _textures(16, channels, size, seed=0)
    aug = BatchAugment(AugmentConfig(crop_size=crop, blur_p=0.5))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = aug(imgs, generator=_gen(5))
    assert torch.equal(torch.get_rng_state(), state)  # randomness only from the generator
    b = aug(imgs, generator=_gen(5))
    c = aug(imgs, generator=_gen(6))
    assert a.shape == (16, channels, crop, crop)
    assert a.dtype == torch.float32 and a.device == imgs.device
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert isinstance(aug.sample_params(2, size, size, _gen(0)), AugmentParams)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batchaugment_on_cuda_matches_cpu_params():
    """On CUDA the output stays on the device, is seeded, and matches CPU given same params."""
    imgs = _textures(32, 3, 32, seed=0)
    aug = BatchAugment(AugmentConfig(crop_size=32, blur_p=0.5))
    g = torch.Generator(device="cuda").manual_seed(0)
    out = aug(imgs.cuda(), generator=g)
    assert out.device.type == "cuda" and out.shape == (32, 3, 32, 32)
    g2 = torch.Generator(device="cuda").manual_seed(0)
    assert torch.equal(out, aug(imgs.cuda(), generator=g2))
    p = aug.sample_params(32, 32, 32, generator=_gen(0))
    p_cuda = AugmentParams(**{k: v.cuda() for k, v in vars(p).items()})
    torch.testing.assert_close(
        aug.apply(imgs.cuda(), p_cuda).cpu(), aug.apply(imgs, p), atol=1e-4, rtol=0
    )


def _pipeline_stats(y: torch.Tensor) -> dict[str, float]:
    spread = y.amax(1) - y.amin(1)  # per-pixel channel spread (0 for gray pixels)
    return {
        "mean": y.mean().item(),
        "image_std": y.std(dim=(1, 2, 3)).mean().item(),
        "channel_spread": spread.mean().item(),
        "gray_fraction": (spread.flatten(1).amax(1) < 1e-6).double().mean().item(),
        "horizontal_gradient": (y[..., 1:] - y[..., :-1]).abs().mean().item(),
        "image_mean_std": y.mean(dim=(1, 2, 3)).std().item(),
    }


@pytest.mark.parametrize(("channels", "size"), [(3, 32), (1, 28)])
def test_batchaugment_statistics_match_torchvision_pil_pipeline(channels, size):
    """Pixel statistics of BatchAugment match the per-image PIL torchvision Compose pipeline."""
    images = _textures(64, channels, size, seed=0)
    repeats = 32
    pipeline = T.Compose(
        [
            T.RandomResizedCrop(
                size, scale=(0.1, 1.0), ratio=RATIO, interpolation=InterpolationMode.BICUBIC
            ),
            T.RandomHorizontalFlip(p=0.5),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
        ]
    )
    pils = [TF.to_pil_image(im) for im in images]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ref = torch.stack([pipeline(im) for _ in range(repeats) for im in pils])
    ours = BatchAugment(AugmentConfig(crop_size=size))(
        images.repeat(repeats, 1, 1, 1), generator=_gen(0)
    )
    a, b = _pipeline_stats(ref), _pipeline_stats(ours)
    # Relative tolerances: seed-to-seed noise is <= ~1.5%; dropping the hue jitter, bilinear
    # instead of bicubic, scale (0.3, 1) or jitter 0.6 each move some statistic by >= 4%.
    rel_tol = {
        "mean": 0.03,
        "image_std": 0.03,
        "channel_spread": 0.03,
        "horizontal_gradient": 0.03,
        "image_mean_std": 0.05,
    }
    for key, tol in rel_tol.items():
        if a[key] == 0:
            assert b[key] == 0, key
        else:
            assert abs(b[key] - a[key]) / a[key] < tol, (key, a[key], b[key])
    assert abs(b["gray_fraction"] - a["gray_fraction"]) < 0.04  # std error of diff ~0.0125


# --------------------------------------------------------------------------------------------
# Linear-probe augmentation
# --------------------------------------------------------------------------------------------


def test_crop_flip_with_params_matches_torchvision_random_crop():
    """A fixed offset/flip equals TF.pad(4, zeros) -> TF.crop -> (TF.hflip) per sample."""
    imgs = _textures(6, 3, 32, seed=0)
    offsets = torch.tensor([[0, 0], [8, 8], [3, 5], [4, 4], [0, 8], [7, 1]])
    flip = torch.tensor([False, True, True, False, False, True])
    out = crop_flip_with_params(imgs, 4, offsets, flip)
    for i in range(6):
        ref = TF.crop(TF.pad(imgs[i], [4], fill=0), *offsets[i].tolist(), 32, 32)
        ref = TF.hflip(ref) if flip[i] else ref
        torch.testing.assert_close(out[i], ref.float() / 255, atol=0, rtol=0)
    # float input gives the same result as uint8 input
    torch.testing.assert_close(
        crop_flip_with_params(imgs.float() / 255, 4, offsets, flip), out, atol=0, rtol=0
    )


def test_random_crop_flip_offsets_uniform_and_flip_half():
    """random_crop_flip draws offsets uniformly in [0, 2*padding] and flips with p=0.5."""
    n, size, pad = 9000, 16, 4
    # Position-coding image: pixel (r, c) -> (r * size + c + 1) / (size * size + 1) > 0.
    code = (torch.arange(size * size, dtype=torch.float32) + 1) / (size * size + 1)
    imgs = code.reshape(1, 1, size, size).expand(n, 1, size, size)
    out = random_crop_flip(imgs, padding=pad, generator=_gen(0))
    assert out.shape == imgs.shape and out.dtype == torch.float32
    c = size // 2  # the centre pixel always comes from the original image
    centre = (out[:, 0, c, c] * (size * size + 1)).round().long() - 1
    flipped = out[:, 0, c, c + 1] < out[:, 0, c, c]
    r, col = centre // size, centre % size
    top = r - c + pad
    left = torch.where(flipped, col - (size - 1 - c) + pad, col - c + pad)
    assert top.min() == 0 and top.max() == 2 * pad and left.min() == 0 and left.max() == 2 * pad
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=2 * pad + 1)
        assert counts.min() > 850 and counts.max() < 1150  # expected 1000, std ~30
    assert abs(flipped.double().mean().item() - 0.5) < 0.02
    expected = crop_flip_with_params(imgs, pad, torch.stack([top, left], 1), flipped)
    assert torch.equal(out, expected)


# --------------------------------------------------------------------------------------------
# Fast-path details: flip folded into the resize, weight tables, hue closed form, layout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(32, 32), (40, 160)])  # weight table / computed
def test_resized_crop_flip_equals_hflip_after_the_resize(height, width):
    """Folding the flip into the horizontal weights gives TF.hflip of the resized crop, both
    when the weights come from the cached table (small images) and when computed (large)."""
    n = 16
    x = torch.rand(n, 3, height, width, generator=_gen(0))
    boxes = sample_crop_boxes(n, height, width, (0.1, 1.0), RATIO, generator=_gen(1))
    flip = torch.arange(n) % 2 == 0
    out = resized_crop(x, boxes, 32, "bicubic", flip)
    plain = resized_crop(x, boxes, 32, "bicubic")
    torch.testing.assert_close(out[~flip], plain[~flip], atol=0, rtol=0)
    torch.testing.assert_close(out[flip], TF.hflip(plain[flip]), atol=1e-6, rtol=0)


def test_resize_weight_table_holds_the_computed_weights():
    """A looked-up window is the same matrix _resize_weights computes for it."""
    from sdclr.data.augment.crops import _axis_weights, _resize_weights

    start = torch.tensor([0, 3, 10, 0, 31])
    length = torch.tensor([32, 5, 22, 1, 1])
    for interpolation in ("bicubic", "bilinear"):
        table = _axis_weights(start, length, 32, 32, interpolation, torch.float32)
        direct = _resize_weights(start, length, 32, 32, interpolation)
        torch.testing.assert_close(table, direct, atol=0, rtol=0)


def test_hue_matches_torchvision_on_ties_extremes_and_random_pixels():
    """The closed-form hue shift equals TF.adjust_hue for every factor in [-0.5, 0.5] on
    random pixels and on pixels whose max or min is tied between channels."""
    from sdclr.data.augment.colour import _adjust_hue

    n = 64
    x = torch.rand(n, 3, 8, 8, generator=_gen(0))
    x[:, 1, 0] = x[:, 0, 0]  # r == g (ties at the max or the min)
    x[:, 2, 1] = x[:, 1, 1]  # g == b
    x[:, 2, 2] = x[:, 0, 2]  # r == b
    x[:, :, 3] = x[:, :1, 3]  # gray
    x[:, 0, 4], x[:, 1, 4], x[:, 2, 4] = 1.0, 0.0, 0.0  # pure red
    factors = torch.linspace(-0.5, 0.5, n)
    out = _adjust_hue(x, factors)
    ref = torch.stack([TF.adjust_hue(x[i], float(factors[i])) for i in range(n)])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_batchaugment_memory_format_changes_layout_not_values():
    """memory_format=channels_last returns the same numbers, laid out channels-last."""
    imgs = _textures(8, 3, 32, seed=0)
    aug = BatchAugment(AugmentConfig(crop_size=32))
    a = aug(imgs, generator=_gen(3))
    b = aug(imgs, generator=_gen(3), memory_format=torch.channels_last)
    assert a.is_contiguous() and b.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b)


def test_color_jitter_mask_leaves_unselected_samples_untouched():
    """apply_color_jitter with a mask jitters the selected samples as without the mask and
    returns the others bit-identical; the input is not modified."""
    x = _colour_test_images(12, 3, 8, seed=0)
    before = x.clone()
    factors, order = sample_jitter_params(12, 0.4, 0.4, 0.4, 0.1, generator=_gen(1))
    mask = torch.arange(12) % 3 == 0
    out = apply_color_jitter(x, factors, order, mask=mask)
    assert torch.equal(x, before)
    assert torch.equal(out[~mask], x[~mask])
    torch.testing.assert_close(
        out[mask], apply_color_jitter(x, factors, order)[mask], atol=1e-6, rtol=0
    )
