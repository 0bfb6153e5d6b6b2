"""Multi-process pretraining (one process per GPU under torchrun), exercised on CPU with gloo."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sdclr.data.image_dataset import ImageDataset, save_dataset
from sdclr.data.splits import LongTailConfig, make_longtail_split, save_split

ROOT = Path(__file__).resolve().parents[2]


def torchrun(script: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            str(script),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


GRADIENT_SCRIPT = textwrap.dedent("""
    import sys, torch
    from sdclr import distributed
    from sdclr.methods import nt_xent

    world = distributed.setup()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    x1, x2 = torch.randn(8, 6), torch.randn(8, 6)          # the global batch, same everywhere
    if world.size > 1:                                      # this rank's slice
        part = slice(world.rank * 4, world.rank * 4 + 4)
        x1, x2 = x1[part], x2[part]
    loss = nt_xent(model(x1), model(x2), 0.2)
    loss.backward()
    distributed.average_gradients(list(model.parameters()))
    if world.is_main:
        torch.save({"loss": loss.detach(), "grads": [p.grad for p in model.parameters()]},
                   sys.argv[1])
""")


def test_two_processes_compute_the_single_process_gradient(tmp_path):
    """Gathered NT-Xent + averaged gradients over 2 processes, each holding half the batch,
    give the loss and gradients of one process training on the whole batch."""
    script = tmp_path / "grad.py"
    script.write_text(GRADIENT_SCRIPT)
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one.pt")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert single.returncode == 0, single.stderr
    two = torchrun(script, str(tmp_path / "two.pt"))
    assert two.returncode == 0, two.stderr
    one, both = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert torch.allclose(one["loss"], both["loss"], atol=1e-6)
    for a, b in zip(one["grads"], both["grads"], strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)


def settings(gpus: int) -> dict:
    return {
        "dataset": "toy",
        "method": {
            "name": "sdclr",
            "algorithm": "sdclr",
            "pretrain_set": "D_i",
            "hyperparameters": {"prune_ratio": 0.5},
        },
        "model": {"arch": "resnet18", "stem": "cifar", "width": 0.0625, "projection_dim": 16},
        "augmentation": {"crop_size": 12},
        "pretrain": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 0.1,
            "warmup_epochs": 1,
            "checkpoint_every": 1,
            "gpus": gpus,
        },
        "device": "cpu",
    }


@pytest.fixture
def toy_files(tmp_path):
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(30)
    images = torch.randint(0, 256, (120, 3, 14, 14), generator=gen, dtype=torch.uint8)
    dataset = ImageDataset("toy", images, labels, images[:8], labels[:8], ["a", "b", "c", "d"])
    save_dataset(dataset, tmp_path / "dataset.pt")
    split = make_longtail_split(
        labels.numpy(),
        4,
        LongTailConfig(validation_per_class=4, n_max=24, imbalance_ratio=2, fewshot_per_class=2),
        "toy",
        1,
    )
    save_split(split, tmp_path / "split1.json")
    return tmp_path


def _settings_file(files: Path, gpus: int) -> Path:
    path = files / f"settings-{gpus}.json"
    path.write_text(json.dumps(settings(gpus)))
    return path


def run_pretrain(files: Path, out: str, gpus: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "pretrain.py"),
            "--settings",
            str(_settings_file(files, gpus)),
            "--data",
            str(files / "dataset.pt"),
            "--split",
            str(files / "split1.json"),
            "--seed",
            "0",
            "--out-dir",
            str(files / out),
            "--quiet",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_pretrain_script_with_two_gpus_runs_under_torchrun_and_resumes(toy_files):
    """`pretrain.gpus: 2` relaunches the script under torchrun; the run writes a model of the
    same form as a one-process run, a log of every epoch, and resumes from its checkpoint."""
    two = run_pretrain(toy_files, "two", gpus=2)
    assert two.returncode == 0, two.stderr
    one = run_pretrain(toy_files, "one", gpus=1)
    assert one.returncode == 0, one.stderr
    model_two = torch.load(toy_files / "two" / "model.pt", weights_only=False)
    model_one = torch.load(toy_files / "one" / "model.pt", weights_only=False)
    assert {k: v.shape for k, v in model_two["state_dict"].items()} == {
        k: v.shape for k, v in model_one["state_dict"].items()
    }
    log = (toy_files / "two" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss") and "processes" in log[0] and len(log) == 3
    assert np.isfinite(model_two["final_loss"])
    assert "2 processes, BatchNorm statistics synchronised" in two.stderr
    checkpoint = torch.load(toy_files / "two" / "resume.pt", weights_only=False)
    assert len(checkpoint["augment_generators"]) == 2
    again = run_pretrain(toy_files, "two", gpus=2)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stderr and "at epoch 2/2" in again.stderr


SYNC_BN_SCRIPT = textwrap.dedent("""
    import sys, torch
    from sdclr import distributed
    from sdclr.methods import create_method
    from sdclr.models import ModelConfig, branch, convert_sync_batchnorm
    from sdclr.models.dual_bn import DualBatchNorm
    from sdclr.models.sync_bn import SyncBatchNorm2d

    world = distributed.setup()
    torch.manual_seed(0)
    method = create_method("sdclr", {"prune_ratio": 0.5})
    model = method.build_model(ModelConfig(width=0.0625, projection_dim=8), 3).train()
    method.begin_epoch(model, 0)                            # the same mask on every rank
    gen = torch.Generator().manual_seed(1)
    v1, v2 = torch.rand(8, 3, 10, 10, generator=gen), torch.rand(8, 3, 10, 10, generator=gen)
    uneven = torch.randn(8, 5, 3, 3, generator=gen)         # a BatchNorm fed 3 + 5 images
    if world.size > 1:                                      # this rank's half of the batch
        convert_sync_batchnorm(model)
        part = slice(world.rank * 4, world.rank * 4 + 4)
        v1, v2 = v1[part], v2[part]
        uneven = uneven[:3] if world.rank == 0 else uneven[3:]
    stem_bn = model.backbone.stem[1]
    outputs = {}
    stem_bn.bns[0].register_forward_hook(lambda m, i, o: outputs.__setitem__("dense", o))
    stem_bn.bns[1].register_forward_hook(lambda m, i, o: outputs.__setitem__("pruned", o))
    loss = method.training_loss(model, v1, v2, torch.arange(v1.shape[0]))
    loss.backward()
    distributed.average_gradients(list(model.parameters()))
    bn = SyncBatchNorm2d(5)
    bn(uneven.requires_grad_()).pow(3).sum().backward()
    result = {
        "loss": loss.detach(),
        "synced": sum(isinstance(m, SyncBatchNorm2d) for m in model.modules()),
        "dual": sum(isinstance(m, DualBatchNorm) for m in model.modules()),
        "buffers": {k: v for k, v in model.state_dict().items() if "running" in k},
        "grads": {k: p.grad for k, p in model.named_parameters() if p.grad is not None},
        "normalised": {k: distributed.gather(v.detach()) for k, v in outputs.items()},
        "uneven": (bn.running_mean, bn.running_var,    # the gradient of images 0-5
                   distributed.gather(uneven.grad[:3] if world.size > 1 else uneven.grad[:6])),
    }
    if world.is_main:
        torch.save(result, sys.argv[1])
""")


def test_two_processes_synchronise_batchnorm_as_one_process_over_the_whole_batch(tmp_path):
    """SDCLR (dual BN) on 2 processes with synchronised BatchNorm, each rank holding half the
    batch, gives one process's loss, BatchNorm outputs (the normalisation used in the step),
    running statistics of both the dense and the pruned BatchNorms (kept apart) and
    gradients over the whole batch; a BatchNorm fed 3 and 5 images weighs them by count."""
    script = tmp_path / "sync_bn.py"
    script.write_text(SYNC_BN_SCRIPT)
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one.pt")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    two = torchrun(script, str(tmp_path / "two.pt"))
    assert two.returncode == 0, two.stderr
    one, both = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one["synced"] == 0 and both["synced"] > 0 and both["dual"] == one["dual"] > 0
    torch.testing.assert_close(both["loss"], one["loss"], atol=1e-6, rtol=1e-5)
    for key in ("dense", "pruned"):
        torch.testing.assert_close(
            both["normalised"][key], one["normalised"][key], atol=1e-5, rtol=1e-5
        )
    assert one["buffers"].keys() == both["buffers"].keys()
    for key, value in one["buffers"].items():
        torch.testing.assert_close(both["buffers"][key], value, atol=1e-6, rtol=1e-5, msg=key)
    dense = one["buffers"]["backbone.stem.1.bns.0.running_mean"]
    assert not torch.allclose(dense, one["buffers"]["backbone.stem.1.bns.1.running_mean"])
    assert one["grads"].keys() == both["grads"].keys()
    scale = max(g.abs().max() for g in one["grads"].values())  # the largest gradient entry
    for key, value in one["grads"].items():  # equal up to float32 summation order
        error = (both["grads"][key] - value).abs().max() / scale
        assert error < 1e-5, (key, float(error))
    for a, b in zip(both["uneven"], one["uneven"], strict=True):  # statistics, gradient
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-5
