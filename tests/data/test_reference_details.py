"""Details in which the pipeline follows the reference implementation (PROTOCOL.md,
"Reference details"): the probe's lr schedule and initialisation, input normalisation, the
last partial batch, precision."""

import pytest
import torch
from torch import nn

import sdclr.probes.linear as linear_module
from sdclr.probes.linear import ProbeConfig, new_linear, probe_lr, train_probe


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

    for path in sorted((Path(__file__).parents[2] / "config/paper").glob("*_lt.yaml")):
        for entry in yaml.safe_load(path.read_text())["datasets"].values():
            assert entry["model"]["input_normalization"] == "imagenet", path
            for probe in ("linear_probe", "fewshot_probe"):
                assert entry[probe]["decay_at_epoch_start"] is True, (path, probe)
                assert entry[probe]["init_std"] == 0.01, (path, probe)


def test_a_model_file_from_before_the_setting_loads_without_normalisation(tmp_path):
    """A model.pt whose metadata has no ``input_normalization`` was trained on [0, 1]
    pixels: it is rebuilt without normalisation; a new one keeps what it was trained with."""
    from dataclasses import asdict

    from sdclr.methods import create_method
    from sdclr.models import ModelConfig
    from sdclr.probes import load_backbone
    from sdclr.torch_files import torch_save

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


def test_an_epoch_keeps_its_last_partial_batch_as_the_reference_dataloader():
    """CIFAR-10-LT's 11,165 images at batch 512: 22 steps, the last of 413 (21 with
    ``drop_last``); on 2 processes the last loses its odd image (412), on 8 five (408)."""
    from sdclr.training.batches import rank_share, step_sizes

    kept = step_sizes(11_165, 512, drop_last=False)
    assert len(kept) == 22 and kept[:-1] == [512] * 21 and kept[-1] == 413
    assert sum(kept) == 11_165
    assert step_sizes(11_165, 512, drop_last=True) == [512] * 21
    assert step_sizes(11_165, 512, False, processes=2)[-1] == 412
    assert step_sizes(11_165, 512, False, processes=8)[-1] == 408
    assert step_sizes(1_025, 512, False) == [512, 512]  # a batch of one cannot be normalised
    assert [rank_share(21 * 512, 412, r, 2) for r in (0, 1)] == [(10_752, 10_958), (10_958, 11_164)]


def _recorded_steps(monkeypatch, settings, images, out_dir):
    """(batch size, lr) of every training step of a real pretraining run."""
    from sdclr.training.step import TrainStep
    from tests.helpers import pretrain

    steps = []
    original = TrainStep.__call__

    def recording(self, batch, indices, generator, lr):
        steps.append((batch.shape[0], lr))
        return original(self, batch, indices, generator, lr)

    monkeypatch.setattr(TrainStep, "__call__", recording)
    pretrain(settings, images, out_dir, seed=0, progress=False)
    return steps


@pytest.mark.parametrize("drop_last", [False, True])
def test_pretraining_steps_and_cosine_count_the_partial_batch(tmp_path, monkeypatch, drop_last):
    """40 images at batch 16 for 3 epochs: steps of 16, 16 and 8 each epoch (16, 16 with
    ``drop_last``), and the per-iteration warm-up cosine runs over all 9 (6) steps with one
    epoch of warm-up = 3 (2) steps, ending at ``final_lr``'s side of the cosine."""
    from sdclr.training.loop import warmup_cosine_lr
    from tests.helpers import tiny_settings, toy_images

    settings = tiny_settings("simclr", epochs=3)
    settings["pretrain"]["drop_last"] = drop_last
    steps = _recorded_steps(monkeypatch, settings, toy_images(40), tmp_path)
    per_epoch = [16, 16] if drop_last else [16, 16, 8]
    assert [size for size, _ in steps] == per_epoch * 3
    total = len(per_epoch) * 3
    expected = [warmup_cosine_lr(i, total, len(per_epoch), 0.1, 1e-6) for i in range(total)]
    assert [lr for _, lr in steps] == pytest.approx(expected)


def test_per_sample_state_sees_every_image_once_an_epoch_with_the_partial_batch(tmp_path):
    """BCL's per-sample state (the extension contract) with 40 images at batch 16: after one
    epoch every image has been seen, the 8 of the partial batch included; dropping the
    partial batch leaves 8 unseen."""
    from sdclr.torch_files import torch_load
    from sdclr.training.loop import CHECKPOINT_NAME
    from tests.helpers import bcl_settings, pretrain, toy_images

    for drop_last, seen in [(False, 40), (True, 32)]:
        settings = bcl_settings(epochs=1)
        settings["pretrain"]["drop_last"] = drop_last
        out = tmp_path / str(drop_last)
        pretrain(settings, toy_images(40), out, seed=0, progress=False)
        state = torch_load(out / CHECKPOINT_NAME)["method_state"]["bcl"]
        assert int(state["seen"].sum()) == seen


def _fp32_flags() -> tuple[str, str]:
    """(conv, matmul) float32 arithmetic on CUDA as PyTorch's switches say it: tf32 or ieee."""
    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        return cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    flag = {True: "tf32", False: "ieee"}
    return flag[cudnn.allow_tf32], flag[torch.backends.cuda.matmul.allow_tf32]


@pytest.fixture
def restore_fp32_flags():
    from sdclr.device import set_fp32_arithmetic

    yield
    set_fp32_arithmetic(conv_tf32=True, matmul_tf32=False)  # PyTorch's defaults


@pytest.mark.filterwarnings("ignore:CUDA is not available")
@pytest.mark.parametrize(
    ("precision", "flags"),
    [("fp32", ("ieee", "ieee")), ("tf32", ("tf32", "tf32")), ("bf16", ("tf32", "ieee"))],
)
def test_precision_sets_cudas_float32_arithmetic(restore_fp32_flags, precision, flags):
    """``pretrain.precision: fp32`` is IEEE float32 for convolutions and matmuls on CUDA
    (PyTorch would otherwise run fp32 convs as TF32 on Ampere and later: not the reference's
    arithmetic); tf32 allows TF32 for both; bf16 autocasts and keeps PyTorch's defaults."""
    from sdclr.training.loop import PretrainConfig
    from sdclr.training.step import resolve_runtime

    runtime = resolve_runtime(PretrainConfig(epochs=1, precision=precision), "cuda")
    assert runtime.precision == precision
    runtime.set_arithmetic()
    assert _fp32_flags() == flags
    region = runtime.autocast()  # bf16 autocast, or no autocast region at all
    assert isinstance(region, torch.autocast) == (precision == "bf16")
    if precision == "bf16":
        assert region.fast_dtype == torch.bfloat16 and region.device == "cuda"


def test_cpu_runs_are_float32_and_model_jobs_are_ieee(tmp_path, monkeypatch, restore_fp32_flags):
    """On a CPU ``auto`` is fp32 (no autocast); the features, probe and analysis jobs each
    switch CUDA's TF32 off, so a dense pass of the features job and PIE's pruned pass of the
    analysis job compute IEEE float32 alike, as the reference evaluates."""
    from sdclr.analyses.run import run_analysis
    from sdclr.device import set_fp32_arithmetic
    from sdclr.pipeline.stages import features
    from sdclr.probes import run_probe
    from sdclr.training.loop import PretrainConfig
    from sdclr.training.step import resolve_runtime
    from tests.helpers import saved_model, toy_dataset, toy_split

    assert resolve_runtime(PretrainConfig(epochs=1), "cpu").precision == "fp32"
    dataset = toy_dataset()
    split = toy_split(dataset)
    model = tmp_path / "model.pt"
    saved_model(model)
    settings = {"dataset": "toy", "probe": "mean", "groups": {"kind": "thirds"}, "crop_size": 12}
    cpu = torch.device("cpu")
    analysis = {**settings, "analyses": ["pie"], "pie_analysis": {"prune_ratio": 0.5}}
    jobs = {
        "probe": lambda: run_probe(model, dataset, split, settings, 0, cpu, progress=False),
        "analysis": lambda: run_analysis(model, dataset, split, analysis, 0, cpu),
        "features": lambda: features.features_stage(
            "d", "s", model, settings, 0, tmp_path / "features.pt"
        ),
    }
    monkeypatch.setattr(features, "job_inputs", lambda *_: (dataset, split, cpu))
    for name, job in jobs.items():
        set_fp32_arithmetic(conv_tf32=True, matmul_tf32=True)
        job()
        assert _fp32_flags() == ("ieee", "ieee"), name


def test_paper_configs_pretrain_in_the_references_fp32_and_keep_the_partial_batch():
    """The paper configs use the reference's arithmetic, batching and multi-GPU BatchNorm."""
    from pathlib import Path

    import yaml

    for path in sorted((Path(__file__).parents[2] / "config/paper").glob("*_lt.yaml")):
        for entry in yaml.safe_load(path.read_text())["datasets"].values():
            assert entry["pretrain"]["precision"] == "fp32", path
            assert entry["pretrain"]["drop_last"] is False, path
            assert entry["pretrain"]["sync_batchnorm"] is True, path


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp32_convolutions_on_cuda_are_ieee(restore_fp32_flags):
    """With precision fp32 a CUDA convolution matches float64 to float32 rounding (1e-5
    relative); TF32 would be off by about 1e-3."""
    from sdclr.device import set_fp32_arithmetic

    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(8, 64, 16, 16, generator=gen), torch.randn(64, 64, 3, 3, generator=gen)
    exact = torch.nn.functional.conv2d(x.double(), w.double(), padding=1)
    set_fp32_arithmetic(conv_tf32=False, matmul_tf32=False)
    out = torch.nn.functional.conv2d(x.cuda(), w.cuda(), padding=1).cpu().double()
    assert ((out - exact).abs().max() / exact.abs().max()).item() < 1e-5


def test_sync_batchnorm_conversion_keeps_dual_bn_and_is_plain_bn_in_one_process():
    """Converting a dual-BN model swaps every BatchNorm for its synchronised twin (the dense
    and the pruned one each), keeps the state dict, and outside a process group computes
    exactly what plain BatchNorm does, running statistics included."""
    import copy

    from sdclr.models import ModelConfig, build_model, convert_sync_batchnorm
    from sdclr.models.sync_bn import SyncBatchNorm1d, SyncBatchNorm2d

    torch.manual_seed(0)
    plain = build_model(ModelConfig(width=0.0625, projection_dim=8), 3, 2, dual_bn=True).train()
    synced = convert_sync_batchnorm(copy.deepcopy(plain))
    kinds = [type(m) for m in synced.modules()]
    assert nn.BatchNorm2d not in kinds and nn.BatchNorm1d not in kinds
    n_plain = sum(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in plain.modules())
    assert kinds.count(SyncBatchNorm2d) + kinds.count(SyncBatchNorm1d) == n_plain
    assert synced.state_dict().keys() == plain.state_dict().keys()
    x = torch.rand(6, 3, 10, 10)
    torch.testing.assert_close(synced(x), plain(x), rtol=0, atol=0)
    for (key, a), b in zip(synced.state_dict().items(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


def test_a_probe_validated_every_k_epochs_picks_among_those(monkeypatch):
    """``validate_every: 5`` (the reference's few-shot scripts): over 12 epochs the probe
    validates after epochs 5, 10 and 12 (the last), and the best epoch is one of them."""
    images = torch.randint(0, 255, (8, 1, 4, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 1] * 4)
    config = ProbeConfig(epochs=12, milestones=(40, 60), augment=False, validate_every=5)
    _, best, history = train_probe(
        _MeanBackbone(), (images, labels), (images, labels), 2, config,
        torch.device("cpu"), torch.Generator().manual_seed(0), progress=False,
    )  # fmt: skip
    assert [h["epoch"] for h in history if "val_accuracy" in h] == [5, 10, 12]
    assert best in (5, 10, 12) and len(history) == 12
    assert all(h["lr"] == 30.0 for h in history)


def test_paper_few_shot_probes_validate_every_five_epochs():
    from pathlib import Path

    import yaml

    for path in sorted((Path(__file__).parents[2] / "config/paper").glob("*_lt.yaml")):
        for entry in yaml.safe_load(path.read_text())["datasets"].values():
            assert entry["fewshot_probe"]["validate_every"] == 5, path
            assert entry["linear_probe"].get("validate_every", 1) == 1, path
