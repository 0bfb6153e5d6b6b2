"""Tests for BCL's batched RandAugment (sdclr.data.randaugment) against torchvision v2."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from sdclr.data.augment.randaugment import (
    MAX_LEVEL,
    OPS,
    RandAugmentConfig,
    RandAugmentParams,
    apply_randaugment,
    op_values,
    rand_augment,
    sample_randaugment_params,
)

NAMES = [name for name, _, _ in OPS]
GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
H, W = 28, 36  # non-square, so swapped axes show up
MAGNITUDES = (0.0, 5.0, 10.0, 17.5, 30.0)
# Float ops: float32 rounding of blends, reductions and the 3x3 conv (measured: <= 1.2e-7).
ATOL = 1e-6
# Nearest-neighbour warps: a pixel whose source coordinate lands on a .5 tie may round the other
# way under a different float summation order; at most this fraction of pixels may differ
# (measured: 0 on CPU).
MAX_MISMATCH = 1e-3
FILL = torch.tensor([125.0, 123.0, 114.0]) / 255


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int, c: int, seed: int) -> torch.Tensor:
    """Random float images, the last three being edge cases: one on the uint8 grid, a
    narrow-range one and a constant one (for equalize / autocontrast)."""
    g = _gen(seed)
    x = torch.rand(n, c, H, W, generator=g)
    x[-3] = torch.randint(0, 256, (c, H, W), generator=g) / 255.0
    x[-2] = 0.4 + 0.05 * x[-2]
    x[-1] = 0.3
    return x


def _params(op: str, magnitudes, signs, seed: int = 0) -> RandAugmentParams:
    """One op slot, always applied, with the given per-sample magnitudes and signs."""
    n = len(magnitudes)
    return RandAugmentParams(
        ops=torch.full((n, 1), NAMES.index(op)),
        apply=torch.ones(n, 1, dtype=torch.bool),
        magnitudes=torch.tensor(magnitudes, dtype=torch.float32),
        signs=torch.tensor(signs, dtype=torch.float32)[:, None],
        cutout_centres=torch.rand(n, 1, 2, generator=_gen(seed)),
    )


def _to_uint8(img: torch.Tensor) -> torch.Tensor:
    return TF.to_dtype(img, torch.uint8, scale=True)


def _to_float(img: torch.Tensor) -> torch.Tensor:
    return TF.to_dtype(img, torch.float32, scale=True)


def _cutout_reference(img: torch.Tensor, side: float, centre: list[float]) -> torch.Tensor:
    """BCL's Cutout box as torchvision's ``erase``: corner floor(max(0, c - side / 2)) with c
    = np.random.uniform(size) = size + (1 - size) u (numpy's low + (high - low) u, low = size,
    high = 1), rows / cols corner..floor(corner + side) inclusive, clipped; nothing when
    side <= 0."""
    h, w = img.shape[-2:]
    if side <= 0:
        return img
    top = math.floor(max(0.0, h + (1 - h) * centre[0] - side / 2))
    left = math.floor(max(0.0, w + (1 - w) * centre[1] - side / 2))
    height = min(h, math.floor(top + side) + 1) - top
    width = min(w, math.floor(left + side) + 1) - left
    fill = FILL if img.shape[0] == 3 else TF.rgb_to_grayscale(FILL[:, None, None])[:, 0, 0]
    return TF.erase(img, top, left, height, width, fill[:, None, None])


def _reference(img: torch.Tensor, op: str, value: float, sign: float, centre) -> torch.Tensor:
    """One op on one ``[C, H, W]`` float image with torchvision v2 functionals."""
    near = InterpolationMode.NEAREST
    h, w = img.shape[-2:]
    shear = math.degrees(math.atan(sign * value))
    affine = {"angle": 0.0, "scale": 1.0, "interpolation": near}
    if op == "shear_x":
        return TF.affine(img, translate=[0, 0], shear=[shear, 0.0], center=[0, 0], **affine)
    if op == "shear_y":
        return TF.affine(img, translate=[0, 0], shear=[0.0, shear], center=[0, 0], **affine)
    if op == "translate_x":
        return TF.affine(img, translate=[sign * round(value * w), 0.0], shear=[0.0, 0.0], **affine)
    if op == "translate_y":
        return TF.affine(img, translate=[0.0, sign * round(value * h)], shear=[0.0, 0.0], **affine)
    if op == "rotate":
        return TF.rotate(img, sign * value, interpolation=near)
    if op == "solarize":  # the uint8 level decides, the float pixel is inverted
        return torch.where(_to_uint8(img) >= value, TF.invert(img), img)
    if op == "posterize":
        return _to_float(TF.posterize(_to_uint8(img), max(1, int(value))))
    if op == "cutout":
        return _cutout_reference(img, value * w, centre)
    if op in ("autocontrast", "invert", "equalize"):
        return getattr(TF, op)(img)
    adjust = {
        "contrast": TF.adjust_contrast,
        "color": TF.adjust_saturation,
        "brightness": TF.adjust_brightness,
        "sharpness": TF.adjust_sharpness,
    }[op]
    return adjust(img, value)


def _assert_matches(out: torch.Tensor, expected: torch.Tensor, max_mismatch: float) -> None:
    """Equal within ATOL except on at most ``max_mismatch`` of the pixels."""
    bad = ((out - expected).abs() > ATOL).any(dim=-3)
    assert bad.float().mean().item() <= max_mismatch, (bad.sum().item(), bad.numel())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("op", NAMES)
def test_each_op_matches_torchvision(op: str, channels: int):
    """Every BCL op, batched with a different magnitude and sign per sample, equals torchvision
    v2's functional at BCL's value for that sample, on 1- and 3-channel images."""
    magnitudes = [m for m in MAGNITUDES for _ in (0, 1)]
    signs = [1.0, -1.0] * len(MAGNITUDES)
    x = _images(len(magnitudes), channels, seed=1)
    params = _params(op, magnitudes, signs)
    out = apply_randaugment(x, params)
    values = op_values(params.ops, params.magnitudes)[:, 0].tolist()
    centres = params.cutout_centres[:, 0].tolist()
    expected = torch.stack(
        [_reference(x[i], op, values[i], signs[i], centres[i]) for i in range(len(x))]
    )
    _assert_matches(out, expected, MAX_MISMATCH if op in GEOMETRIC else 0.0)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("op", ["equalize", "posterize", "solarize"])
def test_uint8_ops_match_torchvision_on_uint8_images(op: str, channels: int):
    """Equalize, Posterize and Solarize on uint8 images converted to float equal torchvision's
    uint8 kernels (PIL's, which BCL runs) converted back to float."""
    u8 = torch.randint(0, 256, (10, channels, H, W), dtype=torch.uint8, generator=_gen(2))
    u8[-1] = 77  # constant: equalize leaves it alone
    u8[-2] = u8[-2] // 16 + 100  # narrow range
    params = _params(op, [m for m in MAGNITUDES for _ in (0, 1)], [1.0] * 10)
    out = apply_randaugment(_to_float(u8), params)
    values = op_values(params.ops, params.magnitudes)[:, 0].tolist()
    kernels = {
        "equalize": lambda img, v: TF.equalize(img),
        "posterize": lambda img, v: TF.posterize(img, max(1, int(v))),
        "solarize": TF.solarize,
    }
    expected = torch.stack([_to_float(kernels[op](u8[i], values[i])) for i in range(10)])
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_op_values_follow_bcl_ranges():
    """An op's value at magnitude m is BCL's lo + (hi - lo) * m / 30 over its 15-op table
    (e.g. rotate 60 degrees, shear 0.6, solarize threshold 110 and posterize 8 bits at m = 30)."""
    ops = torch.arange(len(OPS)).repeat(3, 1)
    magnitudes = torch.tensor([0.0, 10.0, MAX_LEVEL])
    values = op_values(ops, magnitudes)
    for (_, lo, hi), column in zip(OPS, values.T, strict=True):
        expected = torch.tensor([lo + (hi - lo) * m / 30 for m in (0.0, 10.0, 30.0)])
        torch.testing.assert_close(column, expected)
    at30 = dict(zip(NAMES, values[2].tolist(), strict=True))
    assert at30["rotate"] == pytest.approx(60) and at30["shear_x"] == pytest.approx(0.6)
    assert at30["solarize"] == pytest.approx(110) and at30["posterize"] == pytest.approx(8)
    assert at30["cutout"] == pytest.approx(0.4) and at30["translate_y"] == pytest.approx(0.66)


@pytest.mark.parametrize("channels", [1, 3])
def test_random_ops_match_sequential_reference(channels: int):
    """A full draw (k = 3 slots, mixed ops, per-sample weights) equals applying, image by image
    and slot by slot, torchvision's op wherever the apply mask is set and nothing elsewhere."""
    n = 48
    x = _images(n, channels, seed=3)
    weights = torch.rand(n, generator=_gen(4))
    config = RandAugmentConfig(num_ops=3, min_magnitude=5)
    params = sample_randaugment_params(n, 3, weights, config, _gen(5))
    out = apply_randaugment(x, params)
    values = op_values(params.ops, params.magnitudes).tolist()
    expected = []
    for i in range(n):
        img = x[i]
        for j in range(3):
            if params.apply[i, j]:
                op = NAMES[params.ops[i, j]]
                sign, centre = params.signs[i, j].item(), params.cutout_centres[i, j].tolist()
                img = _reference(img, op, values[i][j], sign, centre)
        expected.append(img)
    _assert_matches(out, torch.stack(expected), MAX_MISMATCH)


@pytest.mark.parametrize("channels", [1, 3])
def test_probability_zero_leaves_images_unchanged(channels: int):
    """Weight 0 gives probability 0: no op is applied and every image comes back bit-identical
    (and the input tensor is not modified)."""
    x = _images(16, channels, seed=6)
    before = x.clone()
    config = RandAugmentConfig(num_ops=2, min_magnitude=5)
    params = sample_randaugment_params(16, 2, torch.zeros(16), config, _gen(7))
    assert not params.apply.any()
    assert torch.equal(apply_randaugment(x, params), x)
    assert torch.equal(rand_augment(x, torch.zeros(16), config, _gen(7)), x)
    assert torch.equal(x, before)


def test_probability_one_always_applies_and_rate_follows_weight():
    """Weight 1 applies every drawn op; weight w applies each op independently with
    probability w (frequency within 5 standard errors, and both slots together ~ w^2)."""
    config = RandAugmentConfig(num_ops=2, min_magnitude=5)
    ones = sample_randaugment_params(1000, 2, torch.ones(1000), config, _gen(8))
    assert ones.apply.all()
    n, w = 20000, 0.3
    params = sample_randaugment_params(n, 2, torch.full((n,), w), config, _gen(9))
    rate = params.apply.float().mean().item()
    assert abs(rate - w) < 5 * math.sqrt(w * (1 - w) / (2 * n))
    both = params.apply.all(dim=1).float().mean().item()
    assert abs(both - w * w) < 5 * math.sqrt(w * w * (1 - w * w) / n)


def test_apply_mask_gates_each_sample():
    """A sample whose apply flag is off is returned exactly; its neighbours still get the op."""
    x = _images(6, 3, seed=10)
    params = _params("invert", [30.0] * 6, [1.0] * 6)
    params.apply[::2] = False
    out = apply_randaugment(x, params)
    assert torch.equal(out[::2], x[::2])
    assert torch.equal(out[1::2], 1.0 - x[1::2])


@pytest.mark.parametrize("num_ops,m_min", [(1, 10.0), (2, 5.0)])
def test_magnitude_mapping(num_ops: int, m_min: float):
    """Magnitude is m_min + (30 - m_min) * w per sample (BCL's SimCLR and SDCLR settings),
    max_magnitude replaces 30, ``strength`` replaces w in the magnitude only, and weights
    outside [0, 1] are clamped."""
    w = torch.linspace(0, 1, 11)
    config = RandAugmentConfig(num_ops=num_ops, min_magnitude=m_min)
    params = sample_randaugment_params(11, num_ops, w, config, _gen(11))
    torch.testing.assert_close(params.magnitudes, m_min + (30 - m_min) * w)
    capped = RandAugmentConfig(num_ops=num_ops, min_magnitude=m_min, max_magnitude=20.0)
    params = sample_randaugment_params(11, num_ops, w, capped, _gen(11))
    torch.testing.assert_close(params.magnitudes, m_min + (20 - m_min) * w)
    u = torch.rand(11, generator=_gen(12))
    params = sample_randaugment_params(11, num_ops, w, config, _gen(11), strength=w * u)
    torch.testing.assert_close(params.magnitudes, m_min + (30 - m_min) * w * u)
    wild = torch.tensor([-0.5, 1.5])
    params = sample_randaugment_params(2, num_ops, wild, config, _gen(11))
    torch.testing.assert_close(params.magnitudes, torch.tensor([m_min, 30.0]))


def test_seeded_generator_is_deterministic():
    """The same seed gives the same parameters and images; another seed gives others."""
    x = _images(32, 3, seed=13)
    w = torch.rand(32, generator=_gen(14))
    config = RandAugmentConfig(num_ops=2, min_magnitude=5)
    a = rand_augment(x, w, config, _gen(15))
    assert torch.equal(a, rand_augment(x, w, config, _gen(15)))
    assert not torch.equal(a, rand_augment(x, w, config, _gen(16)))
    p, q = (sample_randaugment_params(32, 2, w, config, _gen(15)) for _ in range(2))
    for name in ("ops", "apply", "magnitudes", "signs", "cutout_centres"):
        assert torch.equal(getattr(p, name), getattr(q, name))


def test_samples_are_independent():
    """A sample's output depends only on its own image and parameters (not on the batch),
    ops are uniform over the 15 and drawn with replacement, and signs are fair coins."""
    x = _images(12, 3, seed=17)
    config = RandAugmentConfig(num_ops=2, min_magnitude=5)
    params = sample_randaugment_params(12, 2, torch.ones(12), config, _gen(18))
    out = apply_randaugment(x, params)
    for i in range(12):
        one = RandAugmentParams(*(getattr(params, f.name)[i : i + 1] for f in fields(params)))
        torch.testing.assert_close(apply_randaugment(x[i : i + 1], one), out[i : i + 1])
    n = 30000
    big = sample_randaugment_params(n, 2, torch.ones(n), config, _gen(19))
    counts = torch.bincount(big.ops.flatten(), minlength=len(OPS)).float()
    expected = 2 * n / len(OPS)
    assert ((counts - expected).abs() < 5 * math.sqrt(expected)).all()
    same = (big.ops[:, 0] == big.ops[:, 1]).float().mean().item()
    assert abs(same - 1 / len(OPS)) < 5 * math.sqrt(1 / len(OPS) / n)
    assert abs(big.signs.mean().item()) < 5 / math.sqrt(2 * n)
    assert set(big.signs.unique().tolist()) == {-1.0, 1.0}


def test_one_channel_color_is_identity_and_cutout_fills_luma():
    """On one-channel images Color does nothing (as torchvision) and Cutout fills with the
    luma of BCL's RGB colour (125, 123, 114)."""
    x = _images(4, 1, seed=20)
    assert torch.equal(apply_randaugment(x, _params("color", [30.0] * 4, [1.0] * 4)), x)
    out = apply_randaugment(x, _params("cutout", [30.0] * 4, [1.0] * 4))
    luma = 0.2989 * FILL[0] + 0.587 * FILL[1] + 0.114 * FILL[2]
    changed = out != x
    assert changed.any()
    torch.testing.assert_close(out[changed], luma.expand(int(changed.sum())))


def test_cutout_centre_is_numpys_uniform_of_the_size():
    """BCL draws the centre with ``np.random.uniform(w)``: low = w, high = 1, so w + (1 - w) u,
    in (1, w]. A draw u = 0 puts the centre at the last pixel edge: the box of side 0.4 * 32
    (magnitude 30) starts at floor(32 - 6.4) = 25 and runs to the border."""
    import numpy as np

    u = np.random.RandomState(3).random_sample(1000)
    rs = np.random.RandomState(3)
    centres = np.array([rs.uniform(32) for _ in range(1000)])
    np.testing.assert_allclose(centres, 32 + (1 - 32) * u)
    assert centres.min() > 1 and centres.max() <= 32
    x = torch.zeros(1, 3, 32, 32)
    params = _params("cutout", [30.0], [1.0])
    params = RandAugmentParams(**{**vars(params), "cutout_centres": torch.zeros(1, 1, 2)})
    box = (apply_randaugment(x, params) != 0).any(dim=1)[0]
    rows, cols = box.any(dim=1).nonzero().flatten(), box.any(dim=0).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (25, 31)
    assert (cols.min().item(), cols.max().item()) == (25, 31)


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"num_ops": -1, "min_magnitude": 5}, "num_ops"),
        ({"num_ops": 1.5, "min_magnitude": 5}, "num_ops"),
        ({"num_ops": True, "min_magnitude": 5}, "num_ops"),
        ({"num_ops": 1, "min_magnitude": -1}, "min_magnitude"),
        ({"num_ops": 1, "min_magnitude": float("nan")}, "min_magnitude"),
        ({"num_ops": 1, "min_magnitude": 5, "max_magnitude": 31}, "max_magnitude"),
        ({"num_ops": 1, "min_magnitude": 20, "max_magnitude": 10}, "min_magnitude"),
    ],
)
def test_config_validation_names_the_key(kwargs, key):
    """An invalid RandAugmentConfig raises a ValueError whose message names the bad key."""
    with pytest.raises(ValueError, match=key):
        RandAugmentConfig(**kwargs)


def test_bad_inputs_are_rejected():
    """Weights / strengths of the wrong shape, and images that are not float [N, 1|3, H, W],
    are rejected."""
    config = RandAugmentConfig(num_ops=1, min_magnitude=10)
    with pytest.raises(ValueError, match="weights"):
        sample_randaugment_params(4, 1, torch.ones(3), config)
    with pytest.raises(ValueError, match="strength"):
        sample_randaugment_params(4, 1, torch.ones(4), config, strength=torch.ones(4, 1))
    with pytest.raises(TypeError):
        rand_augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.ones(2), config)
    with pytest.raises(ValueError):
        rand_augment(torch.zeros(2, 2, 8, 8), torch.ones(2), config)


def test_memory_format_does_not_change_the_result():
    """channels_last (or any strided) input gives the same images as contiguous input."""
    x = _images(16, 3, seed=21)
    config = RandAugmentConfig(num_ops=2, min_magnitude=5)
    params = sample_randaugment_params(16, 2, torch.ones(16), config, _gen(22))
    strided = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(apply_randaugment(strided, params), apply_randaugment(x, params))


# --------------------------------------------------------------------------------------------
# Pixel identity with the all-ops implementation (before ops were grouped per image).
#
# A frozen copy of the batched code as it was when every op ran on the whole batch and each
# sample kept its own by 0 / 1 masks (sdclr/data/augment/randaugment.py at c76bdc6, with
# colour.py's blend step and grayscale inlined). It is the oracle: the library must return
# exactly these pixels for the same parameters, whichever way it schedules the ops. Do not
# "fix" it to follow the library.
# --------------------------------------------------------------------------------------------

_O_GRAY = (0.2989, 0.587, 0.114)
_O_TO_UINT8 = 255.0 + 1.0 - 1e-3
_O_ROTATE, _O_AUTOCONTRAST, _O_INVERT, _O_EQUALIZE, _O_SOLARIZE, _O_POSTERIZE = 4, 5, 6, 7, 8, 9
_O_CONTRAST, _O_COLOR, _O_BRIGHTNESS, _O_SHARPNESS, _O_CUTOUT = range(10, 15)
_O_LO = torch.tensor([op[1] for op in OPS], dtype=torch.float32)
_O_HI = torch.tensor([op[2] for op in OPS], dtype=torch.float32)
_O_FILL = torch.tensor((125, 123, 114), dtype=torch.float32).view(1, 3, 1, 1) / 255


def _o_ps(values: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, 1, 1, 1)


def _o_sel(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return _o_ps(mask.to(like.dtype))


def _o_values(ops, magnitudes):
    m = magnitudes.to(torch.float32).reshape(-1, *([1] * (ops.ndim - 1)))
    return m / MAX_LEVEL * (_O_HI.take(ops) - _O_LO.take(ops)) + _O_LO.take(ops)


def _o_thetas(ops, values, signs, h, w):
    v, sign = values.double(), signs.double()
    zero = torch.zeros_like(v)
    angle = torch.where(ops == _O_ROTATE, -torch.remainder(sign * v, 360.0), zero)
    shear = torch.deg2rad(torch.rad2deg(torch.atan(sign * v)))
    sx, sy = torch.where(ops == 0, shear, zero), torch.where(ops == 1, shear, zero)
    is_shear = (ops == 0) | (ops == 1)
    cx, cy = torch.where(is_shear, -0.5 * w, zero), torch.where(is_shear, -0.5 * h, zero)
    tx = torch.where(ops == 2, sign * torch.round(v * w), zero)
    ty = torch.where(ops == 3, sign * torch.round(v * h), zero)
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


def _o_geometric(x, op, on, theta):
    n, _, h, w = x.shape
    base = torch.empty((1, h, w, 3), dtype=x.dtype)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h)[:, None])
    base[..., 2].fill_(1.0)
    half = torch.full((2,), 0.5 * w, dtype=x.dtype)
    half[1] = 0.5 * h
    theta = theta.to(x.dtype).transpose(1, 2) / half
    grid = torch.matmul(base.view(1, h * w, 3), theta).view(n, h, w, 2)
    warped = torch.nn.functional.grid_sample(x, grid, mode="nearest", align_corners=False)
    return torch.lerp(x, warped, _o_sel(on & (op <= _O_ROTATE), x))


def _o_affine_levels(x, op, on):
    lo, hi = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    auto, inv = _o_ps(on & (op == _O_AUTOCONTRAST)), _o_ps(on & (op == _O_INVERT))
    low = torch.where(auto, torch.where(flat, 0.0, lo), torch.where(inv, 1.0, 0.0))
    scale = torch.where(auto, torch.where(flat, 1.0, hi - lo), torch.where(inv, -1.0, 1.0))
    return (x - low).div_(scale).clamp_(0.0, 1.0)


def _o_equalize_lut(levels):
    i32 = torch.int32
    hist = torch.zeros((*levels.shape[:2], 256), dtype=i32)
    hist.scatter_add_(-1, levels, torch.ones(1, dtype=i32).expand_as(levels))
    cdf = hist.cumsum(-1, dtype=i32)
    top = hist.gather(-1, cdf.argmax(-1, keepdim=True))
    step = (levels.shape[-1] - top) // 255
    lut = (cdf - hist + step // 2).div_(step.clamp(min=1), rounding_mode="floor").clamp_(max=255)
    return torch.where(step > 0, lut, torch.arange(256, dtype=i32))


def _o_uint8_levels(x, op, on, value):
    n, c, h, w = x.shape
    scaled = x.clamp(0.0, 1.0).mul_(_O_TO_UINT8)
    levels = scaled.reshape(n, c, h * w).long()
    shift = (8 - value.to(torch.int32).clamp(1, 8))[:, None, None]
    identity = torch.arange(256, dtype=torch.int32)
    posterized = identity.bitwise_right_shift(shift).bitwise_left_shift(shift)
    lut = torch.where((op == _O_EQUALIZE)[:, None, None], _o_equalize_lut(levels), posterized)
    quantised = lut.to(x.dtype).mul_(1.0 / 255).gather(-1, levels).view_as(x)
    x = torch.lerp(x, quantised, _o_sel(on & ((op == _O_EQUALIZE) | (op == _O_POSTERIZE)), x))
    solar = _o_ps(on & (op == _O_SOLARIZE)) & (scaled >= _o_ps(torch.ceil(value)))
    return torch.where(solar, 1.0 - x, x)


def _o_blend_ops(x, op, on, value):
    n, c, h, w = x.shape
    blends = (op == _O_BRIGHTNESS) | (op == _O_CONTRAST) | ((op == _O_COLOR) & (c == 3))
    f = torch.where(on & blends, value, torch.ones_like(value))
    alpha = torch.where(op == _O_CONTRAST, 1.0 - f, 0.0).to(x.dtype)
    beta = torch.where(op == _O_COLOR, 1.0 - f, 0.0).to(x.dtype)
    f = f.to(x.dtype)
    if c == 1:
        bias = alpha * x.mean(dim=(-3, -2, -1))
        return x.mul_(_o_ps(f)).add_(_o_ps(bias)).clamp_(0.0, 1.0)
    gray = torch.mul(x[:, 0:1], _O_GRAY[0])
    gray.add_(x[:, 1:2], alpha=_O_GRAY[1]).add_(x[:, 2:3], alpha=_O_GRAY[2])
    bias = alpha * gray.mean(dim=(-3, -2, -1))
    gray.mul_(_o_ps(beta)).add_(_o_ps(bias))
    return torch.addcmul(gray, x, _o_ps(f), out=x).clamp_(0.0, 1.0)


def _o_sharpness(x, op, on, value):
    h, w = x.shape[2:]
    if h <= 2 or w <= 2:
        return x
    f = torch.where(on & (op == _O_SHARPNESS), value, torch.ones_like(value)).to(x.dtype)
    rows = x[..., :-2] + x[..., 1:-1] + x[..., 2:]
    box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
    inner = x[..., 1:-1, 1:-1]
    blurred = box.mul_(1.0 / 13.0).add_(inner, alpha=4.0 / 13.0)
    inner.addcmul_(blurred.sub_(inner), _o_ps(1.0 - f))
    return x.clamp_(0.0, 1.0)


def _o_cutout(x, op, on, value, centre):
    n, c, h, w = x.shape
    side = value.double() * w
    size = torch.stack([torch.full_like(side, h), torch.full_like(side, w)], 1)
    centre = size + (1.0 - size) * centre.double()  # BCL: np.random.uniform(size)
    corner = torch.floor((centre - side[:, None] / 2).clamp(0))
    rows = torch.arange(h, dtype=torch.float64)
    cols = torch.arange(w, dtype=torch.float64)
    top, left, side = corner[:, :1], corner[:, 1:], side[:, None]
    in_rows = (rows >= top) & (rows <= top + side)
    in_cols = (cols >= left) & (cols <= left + side)
    on_box = on & (op == _O_CUTOUT) & (side[:, 0] > 0)
    box = in_rows[:, :, None] & in_cols[:, None, :] & on_box[:, None, None]
    fill = _O_FILL.to(x.dtype)
    if c == 1:
        fill = _O_GRAY[0] * fill[:, 0] + _O_GRAY[1] * fill[:, 1] + _O_GRAY[2] * fill[:, 2]
        fill = fill.unsqueeze(-3)
    return torch.where(box[:, None], fill, x)


def _all_ops_oracle(images: torch.Tensor, params: RandAugmentParams) -> torch.Tensor:
    """The all-ops ``apply_randaugment``: every op on the whole batch, per slot, masked."""
    x = images.clone(memory_format=torch.contiguous_format)
    values = _o_values(params.ops, params.magnitudes)
    thetas = _o_thetas(params.ops, values, params.signs, *x.shape[2:])
    for j in range(params.ops.shape[1]):
        op, on, v = params.ops[:, j], params.apply[:, j], values[:, j]
        x = _o_geometric(x, op, on, thetas[:, j])
        x = _o_affine_levels(x, op, on)
        x = _o_uint8_levels(x, op, on, v)
        x = _o_blend_ops(x, op, on, v)
        x = _o_sharpness(x, op, on, v)
        x = _o_cutout(x, op, on, v, params.cutout_centres[:, j])
    return x


def _uint8_batch(n: int, channels: int, h: int, w: int, seed: int) -> torch.Tensor:
    """uint8 noise images as float, with a constant, a narrow-range, a two-level and a
    smooth image among them (the flat / few-level branches of AutoContrast and Equalize)."""
    g = _gen(seed)
    u8 = torch.randint(0, 256, (n, channels, h, w), dtype=torch.uint8, generator=g)
    u8[0] = 77
    u8[1] = u8[1] // 32 + 100
    u8[2] = torch.where(u8[2] > 127, 200, 3).to(torch.uint8)
    ramp = torch.arange(h * w).view(h, w) * 255 // (h * w - 1)
    u8[3] = ramp.to(torch.uint8)
    return u8.float().div_(255)


@pytest.mark.parametrize("size", [(32, 32), (H, W)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_ops,m_min", [(1, 10.0), (2, 5.0)])
def test_output_is_pixel_identical_to_the_all_ops_implementation(num_ops, m_min, channels, size):
    """For the same generator seed, ``rand_augment`` returns exactly (``torch.equal``) the
    pixels of the all-ops implementation it replaced, applied to the parameters drawn from
    that seed, and leaves the generator where drawing those parameters leaves it: weights 0,
    1 and mixed (so some op groups hold one image), with and without BCL's magnitude
    jitter, each with its own seed; and so does the all-ops schedule (kept for devices).
    """
    n = 320
    x = _uint8_batch(n, channels, *size, seed=23)
    config = RandAugmentConfig(num_ops=num_ops, min_magnitude=m_min)
    mixed = torch.rand(n, generator=_gen(24))
    mixed[: n // 4] = 0.05  # sparse groups
    jitter = mixed * torch.rand(n, generator=_gen(25))
    ones = torch.ones(n)
    cases = [(torch.zeros(n), None), (ones, None), (ones, None), (mixed, None), (mixed, jitter)]
    for seed, (weights, strength) in enumerate(cases):  # a different seed for each case
        drawn = _gen(100 + seed)
        params = sample_randaugment_params(n, num_ops, weights, config, drawn, None, strength)
        expected = _all_ops_oracle(x, params)
        g = _gen(100 + seed)
        out = rand_augment(x, weights, config, g, strength)
        assert torch.equal(out, expected), (seed, weights[:4], strength is None)
        assert torch.equal(g.get_state(), drawn.get_state())
        assert torch.equal(apply_randaugment(x, params, grouped=False), expected)


def test_grouped_schedule_runs_each_kernel_only_on_the_samples_that_drew_its_ops(monkeypatch):
    """On a CPU each op family's kernel runs once per slot, on exactly the samples that apply
    one of its ops in that slot; samples that apply no op are not touched by any kernel."""
    from sdclr.data.augment import _randaugment_ops as ops_module

    n, k = 200, 2
    family = torch.tensor(ops_module._KERNEL_OF_OP)
    calls = []

    def recording(index, kernel):
        def run(x, op, on, *rest):
            calls.append((index, op.clone(), on.clone(), x.shape[0]))
            return kernel(x, op, on, *rest)

        return run

    kernels = tuple(recording(i, kernel) for i, kernel in enumerate(ops_module.KERNELS))
    monkeypatch.setattr(ops_module, "KERNELS", kernels)
    weights = torch.rand(n, generator=_gen(26))
    config = RandAugmentConfig(num_ops=k, min_magnitude=5)
    params = sample_randaugment_params(n, k, weights, config, _gen(27))
    apply_randaugment(_images(n, 3, seed=28), params)
    expected = []  # (kernel, group size) in call order: slot by slot, kernel by kernel
    for j in range(k):
        counts = torch.bincount(family.take(params.ops[params.apply[:, j], j]), minlength=6)
        expected += [(i, c) for i, c in enumerate(counts.tolist()) if c]
    assert [(index, size) for index, _, _, size in calls] == expected
    for index, op, on, size in calls:
        assert on.all() and op.numel() == size and (family.take(op) == index).all()
