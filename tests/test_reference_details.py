"""Details in which the pipeline follows the reference implementation (PROTOCOL.md,
"Reference details"): the probe's lr schedule and initialisation, input normalisation, the
last partial batch, precision."""

import pytest
import torch
from torch import nn

import sdclr.evaluation.linear as linear_module
from sdclr.evaluation.linear import ProbeConfig, new_linear, probe_lr, train_probe


class _MeanBackbone(nn.Module):
    """A frozen 'backbone' whose features are per-channel means (any image size)."""

    feature_dim = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def _lrs_seen_by_training(monkeypatch, config: ProbeConfig) -> list[float]:
    """The optimizer's lr during each probe epoch's training steps, epoch by epoch."""
    seen: list[float] = []
    original = linear_module._probe_epoch

    def recording(backbone, linear, optimizer, *args):
        seen.append(optimizer.param_groups[0]["lr"])
        return original(backbone, linear, optimizer, *args)

    monkeypatch.setattr(linear_module, "_probe_epoch", recording)
    images = torch.randint(0, 255, (8, 1, 4, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 1] * 4)
    train_probe(
        _MeanBackbone(), (images, labels), (images, labels), 2, config,
        torch.device("cpu"), torch.Generator().manual_seed(0), progress=False,
    )  # fmt: skip
    return seen


def test_probe_lr_decays_take_effect_in_the_milestone_epoch_as_the_reference(monkeypatch):
    """The reference steps MultiStepLR at each epoch's start: with milestones (10, 20) epochs
    1-9 train at 30, 10-19 at 3 and 20-30 at 0.3 (few-shot: 1-39, 40-59, 60-100)."""
    linear = ProbeConfig(epochs=30, augment=False)
    expected = [30.0] * 9 + [3.0] * 10 + [0.3] * 11
    assert _lrs_seen_by_training(monkeypatch, linear) == pytest.approx(expected)
    fewshot = ProbeConfig(epochs=100, milestones=(40, 60))
    assert [probe_lr(e, fewshot) for e in range(1, 101)] == pytest.approx(
        [30.0] * 39 + [3.0] * 20 + [0.3] * 41
    )


def test_probe_lr_can_decay_after_the_milestone_epoch_instead(monkeypatch):
    """``decay_at_epoch_start: false``: milestone m takes effect in epoch m + 1."""
    config = ProbeConfig(epochs=30, augment=False, decay_at_epoch_start=False)
    expected = [30.0] * 10 + [3.0] * 10 + [0.3] * 10
    assert _lrs_seen_by_training(monkeypatch, config) == pytest.approx(expected)


def test_probe_history_records_each_epochs_lr():
    """The probe record's history says which lr every epoch trained with."""
    images = torch.randint(0, 255, (8, 1, 4, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 1] * 4)
    config = ProbeConfig(epochs=4, milestones=(2, 3), augment=False)
    _, _, history = train_probe(
        _MeanBackbone(), (images, labels), (images, labels), 2, config,
        torch.device("cpu"), torch.Generator().manual_seed(0), progress=False,
    )  # fmt: skip
    assert [h["lr"] for h in history] == pytest.approx([30.0, 3.0, 0.3, 0.3])


def test_probe_linear_layer_starts_from_normal_001_weights_and_zero_bias():
    """The reference's probe layer: weights ~ N(0, 0.01^2), bias 0 (512 x 100 = 51,200
    weights: their std is within 2 % of 0.01 and their mean within 3e-4 of 0)."""
    torch.manual_seed(0)
    layer = new_linear(512, 100, ProbeConfig(epochs=1))
    assert layer.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert abs(layer.weight.mean().item()) < 3e-4
    assert torch.count_nonzero(layer.bias) == 0
    torch.manual_seed(0)
    default = new_linear(512, 100, ProbeConfig(epochs=1, init_std=None))
    bound = 1 / 512**0.5  # PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) weights and bias
    assert default.weight.abs().max().item() <= bound and default.bias.abs().max() > 0
    assert default.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.02)


def test_backbone_normalises_its_input_with_imagenet_statistics_first():
    """``input_normalization: imagenet`` (the default): the backbone's first op is
    (x - mean) / std with ImageNet's per-channel statistics, so it equals the unnormalised
    backbone fed the normalised images; 1 channel uses the means 0.449 / 0.226."""
    from sdclr.models import ModelConfig, build_model

    for channels, mean, std in [
        (3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        (1, [0.449], [0.226]),
    ]:
        torch.manual_seed(0)
        normalised = build_model(ModelConfig(width=0.0625), channels).backbone.eval()
        torch.manual_seed(0)
        plain = build_model(
            ModelConfig(width=0.0625, input_normalization="none"), channels
        ).backbone.eval()
        x = torch.rand(4, channels, 16, 16)
        by_hand = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        torch.testing.assert_close(normalised(x), plain(by_hand), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(normalised(x), plain(x), atol=1e-4)
        assert normalised.state_dict().keys() == plain.state_dict().keys()  # no new weights


def test_paper_configs_use_the_reference_input_normalisation_and_probe_details():
    """Every paper config normalises with ImageNet's statistics and probes with the
    reference's schedule and init."""
    from pathlib import Path

    import yaml

    for path in sorted((Path(__file__).parents[1] / "config/paper").glob("*_lt.yaml")):
        for entry in yaml.safe_load(path.read_text())["datasets"].values():
            assert entry["model"]["input_normalization"] == "imagenet", path
            for probe in ("linear_probe", "fewshot_probe"):
                assert entry[probe]["decay_at_epoch_start"] is True, (path, probe)
                assert entry[probe]["init_std"] == 0.01, (path, probe)


def test_a_model_file_from_before_the_setting_loads_without_normalisation(tmp_path):
    """A model.pt whose metadata has no ``input_normalization`` was trained on [0, 1]
    pixels: it is rebuilt without normalisation; a new one keeps what it was trained with."""
    from dataclasses import asdict

    from sdclr.evaluation import load_backbone
    from sdclr.io import torch_save
    from sdclr.methods import create_method
    from sdclr.models import ModelConfig

    config = ModelConfig(width=0.0625, projection_dim=8)
    model = create_method("simclr", {}).build_model(config, 1)
    spec = {"name": "simclr", "algorithm": "simclr", "pretrain_set": "D_i", "hyperparameters": {}}
    for meta, expected in [({k: v for k, v in asdict(config).items()
                             if k != "input_normalization"}, "none"),
                           (asdict(config), "imagenet")]:  # fmt: skip
        torch_save(
            tmp_path / "model.pt",
            {"state_dict": model.state_dict(), "algorithm": "simclr", "method": spec,
             "model_config": meta, "in_channels": 1},
        )  # fmt: skip
        backbone, _ = load_backbone(tmp_path / "model.pt")
        assert backbone.input_normalization == expected
