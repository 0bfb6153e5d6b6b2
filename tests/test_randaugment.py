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
