"""Difficult examples (arXiv 2501.01317): the pair selection, margin tuning and temperature
scaling inside NT-Xent, each against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from sdclr.errors import ConfigError
from sdclr.methods import create_method, nt_xent
from sdclr.methods.difficult_examples import (
    band_mask,
    difficult_logits,
    difficult_nt_xent,
    difficult_pairs,
    ranked_threshold,
)


def hand_band(similarity: list[list[float]], candidates: set[tuple[int, int]], high, low):
    """The paper's rule by hand: Sim_q is the ceil(q M)-th largest candidate similarity."""
    values = sorted((similarity[i][j] for i, j in candidates), reverse=True)

    def sim(q):
        k = math.ceil(q * len(values))
        return math.inf if k == 0 else values[k - 1]

    return {(i, j) for i, j in candidates if sim(low) <= similarity[i][j] < sim(high)}


def test_ranked_threshold_is_the_k_th_largest():
    values = torch.tensor([3.0, 5.0, 1.0, 4.0, 2.0])
    assert ranked_threshold(values, 2).item() == 4.0
    assert ranked_threshold(values, 3).item() == 3.0
    assert ranked_threshold(values, 5).item() == 1.0
    assert ranked_threshold(values, 0).item() == math.inf


def test_band_picks_exactly_the_pairs_between_the_two_thresholds():
    # 4 views (N = 2): positives (0, 2) and (1, 3); the candidates are the other 8 ordered pairs
    s = [
        [1.0, 0.9, 0.95, 0.5],
        [0.9, 1.0, 0.3, 0.95],
        [0.95, 0.3, 1.0, 0.1],
        [0.5, 0.95, 0.1, 1.0],
    ]
    candidates = {(i, j) for i in range(4) for j in range(4) if i != j and (i - j) % 4 != 2}
    mask = torch.zeros(4, 4, dtype=torch.bool)
    for i, j in candidates:
        mask[i, j] = True
    got = band_mask(torch.tensor(s), mask, pos_high=0.25, pos_low=0.75)
    # Sim_0.25 = 2nd largest of (.9 .9 .5 .5 .3 .3 .1 .1) = 0.9, Sim_0.75 = 6th = 0.3
    expected = {(0, 3), (3, 0), (1, 2), (2, 1)}
    assert {tuple(ij) for ij in got.nonzero().tolist()} == expected
    # the positives (0.95) and the diagonal (1.0) rank above every candidate but are ignored
    assert torch.equal(band_mask(torch.tensor(s), mask, 0.25, 0.75, count=8), got)
    assert expected == hand_band(s, candidates, 0.25, 0.75)


def test_difficult_pairs_from_features_follow_the_rule_and_skip_self_and_positives():
    g = torch.Generator().manual_seed(3)
    h1, h2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    got = difficult_pairs(h1, h2, pos_high=0.1, pos_low=0.6)
    h = torch.nn.functional.normalize(torch.cat([h1, h2]), dim=1)
    s = (h @ h.T).tolist()
    candidates = {(i, j) for i in range(10) for j in range(10) if i != j and abs(i - j) != 5}
    assert {tuple(ij) for ij in got.nonzero().tolist()} == hand_band(s, candidates, 0.1, 0.6)


def test_margin_and_temperature_change_exactly_the_difficult_logits():
    c = torch.tensor([[0.5, 0.3], [-0.2, 0.8]])
    p = torch.tensor([[True, False], [True, False]])
    logits = difficult_logits(c, p, temperature=0.2, margin=0.1, temperature_ratio=0.5)
    # difficult: (c + 0.1) / (0.2 * 0.5); the others c / 0.2
    expected = torch.tensor([[0.6 / 0.1, 0.3 / 0.2], [-0.1 / 0.1, 0.8 / 0.2]])
    assert torch.allclose(logits, expected)
    only_margin = difficult_logits(c, p, 0.2, margin=0.1, temperature_ratio=1.0)
    assert torch.allclose(only_margin, torch.tensor([[3.0, 1.5], [-0.5, 4.0]]))
    only_temperature = difficult_logits(c, p, 0.2, margin=0.0, temperature_ratio=0.5)
    assert torch.allclose(only_temperature, torch.tensor([[5.0, 1.5], [-2.0, 4.0]]))


def test_switched_off_it_is_exactly_nt_xent():
    g = torch.Generator().manual_seed(0)
    z1, z2, h1, h2 = (torch.randn(6, 8, generator=g) for _ in range(4))
    plain = nt_xent(z1, z2, 0.3)
    assert torch.equal(difficult_nt_xent(z1, z2, h1, h2, 0.3, 0.0, 1.0, 0.1, 0.9), plain)


def test_loss_equals_the_hand_computed_cross_entropy():
    g = torch.Generator().manual_seed(1)
    z1, z2, h1, h2 = (torch.randn(3, 4, generator=g) for _ in range(4))
    t, sigma, rho = 0.5, 0.2, 0.5
    got = difficult_nt_xent(z1, z2, h1, h2, t, sigma, rho, 0.2, 0.7)
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).tolist()
    p = difficult_pairs(h1, h2, 0.2, 0.7).tolist()

    def logit(i, j):
        c = sum(a * b for a, b in zip(z[i], z[j], strict=True))
        return (c + sigma) / (t * rho) if p[i][j] else c / t

    total = 0.0
    for i in range(6):
        denominator = sum(math.exp(logit(i, j)) for j in range(6) if j != i)
        total += -math.log(math.exp(logit(i, (i + 3) % 6)) / denominator)
    assert got.item() == pytest.approx(total / 6, rel=1e-5)
    per_sample = difficult_nt_xent(z1, z2, h1, h2, t, sigma, rho, 0.2, 0.7, per_sample=True)
    assert per_sample.mean().item() == pytest.approx(got.item(), rel=1e-6)


def test_gradients_are_finite_and_do_not_flow_through_the_selection():
    g = torch.Generator().manual_seed(2)
    z1, z2, h1, h2 = (torch.randn(8, 16, generator=g, requires_grad=True) for _ in range(4))
    loss = difficult_nt_xent(z1, z2, h1, h2, 0.1, 0.5, 0.2, 0.1, 0.9)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    assert h1.grad is None and h2.grad is None  # p_ij is a selection, not trained through


@pytest.mark.parametrize("algorithm", ["simclr", "sdclr"])
def test_composes_with_simclr_and_sdclr_and_trains_a_step(algorithm):
    from sdclr.models import ModelConfig

    extensions = {
        "difficult_examples": {"margin": 0.1, "temperature_ratio": 0.5},
        "temperature_schedule": {"period": 5},
    }
    method = create_method(algorithm, {}, "methods.x.hyperparameters", extensions)
    model = method.build_model(ModelConfig(arch="resnet18", stem="cifar", width=0.125), 1)
    views = torch.rand(2, 8, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    method.begin_epoch(model, 0)
    loss = method.loss(model, views[0], views[1])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "change nothing"),
        ({"margin": 0.1, "pos_high": 0.5, "pos_low": 0.4}, "must be below pos_low"),
    ],
)
def test_bad_settings_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        create_method("simclr", {}, "methods.x.hyperparameters", {"difficult_examples": settings})
