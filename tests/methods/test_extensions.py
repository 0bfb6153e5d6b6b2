"""Method extensions: BCL's momentum loss and boosted augmentation, temperature schedules, and
how they compose with SimCLR and SDCLR by configuration."""

import copy
import csv
import math
from pathlib import Path

import pytest
import torch
import yaml

from sdclr.data.augment.randaugment import sample_randaugment_params
from sdclr.errors import ConfigError
from sdclr.methods import bcl, create_method
from sdclr.methods.bcl import BoostedMemorization, boost_weights, momentum_update
from sdclr.methods.temperature_schedule import scheduled_temperature
from sdclr.pipeline.config import normalize_config, pretrain_settings
from sdclr.torch_files import torch_load
from sdclr.training.loop import CHECKPOINT_NAME, LOG_NAME
from tests.helpers import (
    assert_a_killed_run_resumes_bit_identically,
    bcl_settings,
    difficult_settings,
    pretrain,
    toy_images,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def test_momentum_loss_stores_the_first_loss_then_blends():
    """L_i <- l_i the first time sample i is seen, then L_i <- 0.97 L_i + 0.03 l_i."""
    loss, seen = torch.zeros(4), torch.zeros(4, dtype=torch.bool)
    momentum_update(loss, seen, torch.tensor([0, 2]), torch.tensor([2.0, 4.0]), 0.97)
    assert loss.tolist() == [2.0, 0.0, 4.0, 0.0] and seen.tolist() == [True, False, True, False]
    momentum_update(loss, seen, torch.tensor([2, 3]), torch.tensor([1.0, 5.0]), 0.97)
    assert loss[2].item() == pytest.approx(0.97 * 4.0 + 0.03 * 1.0)
    assert loss[3].item() == 5.0 and loss[0].item() == 2.0


def test_boost_weights_follow_the_formula_on_hand_made_losses():
    """w = (z / max|z|) / 2 + 1/2 with z the standardised (unbiased std) momentum loss: the
    hardest sample gets 1 (or the easiest 0), the mean sample 1/2; unseen samples get 0."""
    loss = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0])
    seen = torch.tensor([True, True, True, True, False])
    values = [1.0, 2.0, 3.0, 6.0]
    mean = sum(values) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
    z = [(v - mean) / std for v in values]
    peak = max(abs(v) for v in z)
    expected = [zi / peak / 2 + 0.5 for zi in z] + [0.0]
    assert boost_weights(loss, seen).tolist() == pytest.approx(expected)
    assert boost_weights(loss, seen)[3].item() == pytest.approx(1.0)
    assert (
        boost_weights(torch.full((3,), 2.0), torch.ones(3, dtype=torch.bool)).tolist() == [0.5] * 3
    )


def _captured_randaugment(monkeypatch, jitter: bool, seed: int):
    """BCL-D's augment_views on 3 samples (their 2 x 3 views), with the RandAugment call
    replaced by one that records its weights and strength; returns them and the config."""
    settings = BoostedMemorization.Settings(num_ops=2, min_magnitude=5, magnitude_jitter=jitter)
    extension = BoostedMemorization(settings)
    extension.setup(4, torch.device("cpu"))
    extension.weights = torch.tensor([0.0, 0.25, 0.5, 1.0])
    captured = {}

    def record(views, weights, config, generator, strength=None):
        captured.update(weights=weights, strength=strength, config=config)
        return views

    monkeypatch.setattr(bcl, "rand_augment", record)
    indices = torch.tensor([3, 1, 2])
    views = torch.zeros(6, 3, 8, 8)
    generator = torch.Generator().manual_seed(seed)
    extension.augment_views(views, torch.cat([indices, indices]), generator)
    return captured


def test_bcl_d_jitter_is_one_uniform_draw_per_sample_shared_by_its_two_views(monkeypatch):
    """BCL's code for k = 2 (a2342f8): magnitude 5 + 25 w_i u_i with one u_i ~ U(0, 1) per
    sample, the same for its two views; the probability stays w_i. By hand: u from the same
    seeded generator, in sample order."""
    captured = _captured_randaugment(monkeypatch, jitter=True, seed=7)
    u = torch.rand(3, generator=torch.Generator().manual_seed(7)).tolist()
    w = [1.0, 0.25, 0.5]  # the weights of samples 3, 1, 2
    assert captured["weights"].tolist() == w + w  # probability: w, not jittered
    assert captured["strength"].tolist() == pytest.approx(
        [wi * ui for wi, ui in zip(w, u, strict=True)] * 2
    )
    params = sample_randaugment_params(
        6, 2, captured["weights"], captured["config"], torch.Generator().manual_seed(0),
        strength=captured["strength"],
    )  # fmt: skip
    by_hand = [5 + 25 * wi * ui for wi, ui in zip(w, u, strict=True)] * 2
    assert params.magnitudes.tolist() == pytest.approx(by_hand)
    assert params.magnitudes[:3].tolist() == params.magnitudes[3:].tolist()  # shared by views


def test_without_jitter_the_magnitude_is_the_formula(monkeypatch):
    """magnitude_jitter off (the default): magnitude m_min + (30 - m_min) w_i."""
    captured = _captured_randaugment(monkeypatch, jitter=False, seed=7)
    assert captured["strength"] is None
    params = sample_randaugment_params(6, 2, captured["weights"], captured["config"])
    assert params.magnitudes.tolist() == pytest.approx([5 + 25 * w for w in (1.0, 0.25, 0.5)] * 2)


def test_temperature_schedule_values():
    """t(e) = 0.1 + 0.45 (1 + cos(pi e / 200)): 1.0 at 0, 0.55 at 100, 0.1 at 200, 1.0 at 400."""
    values = [scheduled_temperature(e, 0.1, 1.0, 200) for e in (0, 100, 200, 400)]
    assert values == pytest.approx([1.0, 0.55, 0.1, 1.0])


def test_the_schedule_sets_the_method_temperature_each_epoch_and_logs_it():
    """Composed with SDCLR, the schedule changes the loss's temperature at each epoch start
    and the epoch's log gets a temperature column; the first epoch (0-based 0) is the
    reference's epoch 1: t(1), t(2), t(3) with T = 2."""
    method = create_method(
        "sdclr", {}, extensions={"temperature_schedule": {"t_min": 0.1, "t_max": 1.0, "period": 2}}
    )
    model = method.build_model(tiny_model_config(), 3)
    logs = [method.begin_epoch(model, e)["temperature"] for e in range(3)]
    assert logs == pytest.approx([0.55, 0.1, 0.55]) and method.temperature == pytest.approx(0.55)


def tiny_model_config():
    from sdclr.models import ModelConfig

    return ModelConfig(width=0.0625, projection_dim=8)


def _config(**methods):
    config = yaml.safe_load(TINY.read_text())
    config["methods"] = methods
    return config


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"algorithm": "sdclr", "bcl": {"num_ops": 2}}, r"methods\.x\.bcl: 'min_magnitude'"),
        (
            {"algorithm": "sdclr", "bcl": {"num_ops": 2, "min_magnitude": 5, "k": 1}},
            r"methods\.x\.bcl\.k: unknown key",
        ),
        ({"algorithm": "simclr", "boost": {}}, r"methods\.x\.boost: unknown key"),
        (
            {
                "algorithm": "simclr",
                "temperature_schedule": {},
                "hyperparameters": {"temperature": 0.5},
            },
            r"methods\.x: temperature_schedule sets the temperature",
        ),
        (
            {"algorithm": "simclr", "temperature_schedule": {"t_min": 2.0}},
            r"methods\.x\.temperature_schedule: t_min 2\.0 exceeds t_max",
        ),
        ({"algorithm": "simclr", "pretrain": {"weight_decay": -1}}, r"methods\.x\.pretrain"),
    ],
)
def test_impossible_compositions_are_config_errors_naming_the_key(entry, message):
    """Unknown extension keys, missing settings and impossible combinations stop the config
    check with the key's path."""
    with pytest.raises(ConfigError, match=message):
        normalize_config(_config(x=entry))


def test_bcl_d_is_sdclr_plus_bcl_with_its_own_weight_decay():
    """A composed entry's pretraining settings: SDCLR's algorithm, BCL's settings as an
    extension, the method's weight decay over the dataset's; plain methods' settings carry no
    extensions key (their checkpoints stay valid)."""
    config = normalize_config(
        _config(
            sdclr={},
            bcl_d={
                "algorithm": "sdclr",
                "bcl": {"num_ops": 2, "min_magnitude": 5},
                "temperature_schedule": {"period": 200},
                "pretrain": {"weight_decay": 5e-4},
            },
        )
    )
    settings = pretrain_settings(config, "fmnist_lt", "bcl_d")
    assert settings["method"]["algorithm"] == "sdclr"
    assert settings["method"]["extensions"] == {
        "bcl": {"num_ops": 2, "min_magnitude": 5},
        "temperature_schedule": {"period": 200},
    }
    assert settings["pretrain"]["weight_decay"] == 5e-4
    assert "extensions" not in pretrain_settings(config, "fmnist_lt", "sdclr")["method"]


def test_bcl_keeps_per_sample_state_in_the_checkpoint_and_boosts_after_epoch_one(tmp_path):
    """After training, the checkpoint holds BCL's per-sample momentum loss and weights (one
    per pretraining image, weights in [0, 1], not all equal); the log has the temperature and
    the mean boost weight, which is 0 in the first epoch (no RandAugment yet)."""
    pretrain(bcl_settings(), toy_images(48), tmp_path, seed=0, progress=False)
    state = torch_load(tmp_path / CHECKPOINT_NAME)["method_state"]["bcl"]
    assert state["momentum_loss"].shape == (48,) and bool(state["seen"].all())
    weights = state["weights"]
    assert float(weights.min()) >= 0 and float(weights.max()) <= 1 and weights.std() > 0
    rows = list(csv.DictReader((tmp_path / LOG_NAME).read_text().splitlines()))
    assert {"pruned_weights", "temperature", "bcl_mean_weight"} <= set(rows[0])
    assert [float(r["temperature"]) for r in rows] == pytest.approx([0.55, 0.1, 0.55, 1.0])
    assert float(rows[0]["bcl_mean_weight"]) == 0.0 < float(rows[1]["bcl_mean_weight"])


def test_the_difficult_band_is_logged_per_epoch(tmp_path):
    """The train log gets the epoch's mean thresholds of the difficult band, Sim_posHigh above
    Sim_posLow, both cosine similarities."""
    pretrain(difficult_settings(epochs=2), toy_images(48), tmp_path, seed=0, progress=False)
    rows = list(csv.DictReader((tmp_path / LOG_NAME).read_text().splitlines()))
    for row in rows:
        assert -1 <= float(row["difficult_sim_low"]) < float(row["difficult_sim_high"]) <= 1
    assert {"temperature", "pruned_weights"} <= set(rows[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_settings", [lambda: bcl_settings(epochs=5), difficult_settings], ids=["bcl", "difficult"]
)
def test_a_run_with_state_or_selection_survives_a_kill_bit_identically(tmp_path, make_settings):
    """A BCL-D + schedule run (per-sample state) or an SDCLR + difficult-pairs + schedule run
    (in-batch selection) SIGKILLed after its second epoch and run again ends with the same
    bytes (model, checkpoint with the per-sample state, log) as an uninterrupted run."""
    assert_a_killed_run_resumes_bit_identically(make_settings(), tmp_path)


def test_a_plain_method_trains_exactly_as_before_the_contract_grew(tmp_path):
    """SimCLR without extensions takes the plain mean loss path: the per-sample path (what
    BCL uses) gives the same loss value, so plain runs keep their numbers."""
    method = create_method("simclr", {"temperature": 0.2})
    model = method.build_model(tiny_model_config(), 3)
    v1, v2 = torch.rand(6, 3, 12, 12), torch.rand(6, 3, 12, 12)
    mean = method.training_loss(model, v1, v2, torch.arange(6))
    per_sample = method.loss(model, v1, v2, per_sample=True)
    assert per_sample.shape == (6,)
    assert mean.item() == pytest.approx(per_sample.mean().item(), rel=1e-6)


def test_extension_settings_copy_is_not_shared():
    """Two methods built from one extension settings dict keep separate per-sample state."""
    ext = {"bcl": {"num_ops": 1, "min_magnitude": 10}}
    a = create_method("simclr", {}, extensions=copy.deepcopy(ext))
    b = create_method("simclr", {}, extensions=ext)
    a.setup(4, torch.device("cpu"))
    b.setup(4, torch.device("cpu"))
    a.extensions[0].observe_losses(torch.tensor([0]), torch.tensor([1.0]))
    assert b.extensions[0].momentum_loss.tolist() == [0.0] * 4
