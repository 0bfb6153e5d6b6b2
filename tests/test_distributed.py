"""Multi-process pretraining (one process per GPU under torchrun), exercised on CPU with gloo."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sdclr.data.datasets import ImageDataset, save_dataset
from sdclr.data.splits import LongTailConfig, make_longtail_split, save_split

ROOT = Path(__file__).resolve().parents[1]


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
    checkpoint = torch.load(toy_files / "two" / "resume.pt", weights_only=False)
    assert len(checkpoint["augment_generators"]) == 2
    again = run_pretrain(toy_files, "two", gpus=2)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stderr and "at epoch 2/2" in again.stderr
