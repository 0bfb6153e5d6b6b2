"""What many test modules share: tiny pretraining settings and images, a toy dataset with its
split and a saved model, an evaluation record, a pretraining run in a child process that can be
killed, and ``pretrain`` taking a settings file's dict (as a job reads it) for brevity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sdclr.data.image_dataset import ImageDataset
from sdclr.data.splits import LongTailConfig, make_longtail_split
from sdclr.io import write_json
from sdclr.methods import create_method
from sdclr.models import ModelConfig
from sdclr.torch_files import torch_load, torch_save
from sdclr.training import loop
from sdclr.training.config import PretrainJob

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def pretrain(settings: dict[str, Any] | PretrainJob, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``sdclr.training.loop.pretrain`` of a settings file's dict (typed as the stage types it)."""
    job = settings if isinstance(settings, PretrainJob) else PretrainJob.from_settings(settings)
    return loop.pretrain(job, *args, **kwargs)


def toy_images(n=48):
    return torch.randint(
        0, 256, (n, 3, 14, 14), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )


def tiny_settings(method="sdclr", epochs=4):
    return {
        "dataset": "toy",
        "method": {
            "name": method,
            "algorithm": method,
            "pretrain_set": "D_i",
            "hyperparameters": {"temperature": 0.2},
        },
        "model": {"arch": "resnet18", "stem": "cifar", "width": 0.0625, "projection_dim": 16},
        "augmentation": {"crop_size": 12},
        "pretrain": {
            "epochs": epochs,
            "batch_size": 16,
            "lr": 0.1,
            "warmup_epochs": 1,
            "checkpoint_every": 1,
        },
        "device": "cpu",
    }


def difficult_settings(epochs=5):
    """SDCLR + margin tuning and temperature scaling of difficult pairs (in-batch selection) +
    a temperature schedule."""
    settings = tiny_settings("sdclr", epochs=epochs)
    settings["method"]["hyperparameters"] = {"prune_ratio": 0.9}
    settings["method"]["extensions"] = {
        "difficult_examples": {"margin": 0.1, "temperature_ratio": 0.5},
        "temperature_schedule": {"period": 2},
    }
    return settings


def pool_images(n: int = 30) -> torch.Tensor:
    """Images outside the pretraining set, for COLT's pool (toy_images' shape, another seed)."""
    return torch.randint(
        0, 256, (n, 3, 14, 14), generator=torch.Generator().manual_seed(7), dtype=torch.uint8
    )


def _run(settings_path, out_dir, pause="0", pool=False):
    """Pretrain a settings file in a child process that prints ``epoch N`` after each epoch
    and sleeps ``pause`` seconds; ``pool``: with :func:`pool_images` and 4 classes' labels."""
    return subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, str(settings_path), str(out_dir), pause, str(pool)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
    )


def assert_a_killed_run_resumes_bit_identically(
    settings: dict[str, Any], tmp_path: Path, pool: bool = False, records: tuple[str, ...] = ()
) -> None:
    """Pretrain ``settings`` straight through in a child process; pretrain it again in another,
    SIGKILLed once it reports epoch 2 (a scheduler's kill: no handler runs) and then rerun; the
    resumed run ends with the uninterrupted run's bytes (model, checkpoint, log and the
    method's ``records``). ``pool``: the runs get :func:`pool_images` (COLT)."""
    settings_path = tmp_path / "settings.json"
    write_json(settings_path, settings)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _run(settings_path, straight, pool=pool).wait(timeout=600) == 0
    killed = _run(settings_path, resumed, pause="30", pool=pool)
    deadline = time.monotonic() + 600
    while killed.stdout.readline().strip() != "epoch 2":
        assert time.monotonic() < deadline and killed.poll() is None
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert torch_load(resumed / loop.CHECKPOINT_NAME)["epoch"] == 2
    assert _run(settings_path, resumed, pool=pool).wait(timeout=600) == 0
    for name in (loop.MODEL_NAME, loop.CHECKPOINT_NAME, loop.LOG_NAME, *records):
        assert (straight / name).read_bytes() == (resumed / name).read_bytes(), name


def bcl_settings(epochs=4):
    settings = tiny_settings("sdclr", epochs=epochs)
    settings["method"]["extensions"] = {
        "bcl": {"num_ops": 2, "min_magnitude": 5},
        "temperature_schedule": {"period": 2},
    }
    return settings


def saved_model(path, algorithm="sdclr"):
    torch.manual_seed(0)
    method = create_method(algorithm, {})
    config = ModelConfig(width=0.0625, projection_dim=8)
    model = method.build_model(config, in_channels=1)
    spec = {
        "name": algorithm,
        "algorithm": algorithm,
        "pretrain_set": "D_i",
        "hyperparameters": {},
    }
    torch_save(
        path,
        {
            "state_dict": model.state_dict(),
            "algorithm": algorithm,
            "method": spec,
            "model_config": vars(config),
            "in_channels": 1,
        },
    )
    return model


def toy_split(dataset):
    """Split 1 of the toy dataset: 10 validation images per class, D_i from 50 down, S_b 3."""
    config = LongTailConfig(
        validation_per_class=10, n_max=50, imbalance_ratio=10, fewshot_per_class=3
    )
    return make_longtail_split(dataset.train_labels.numpy(), 4, config, "toy", 1)


def toy_dataset(per_class=60, test_per_class=20, num_classes=4, size=12):
    """Class c has mean brightness 40 + 60c plus noise: separable by pooled features of any
    backbone, and unchanged by crops and flips."""
    gen = torch.Generator().manual_seed(0)

    def make(n):
        labels = torch.arange(num_classes).repeat_interleave(n)
        noise = torch.randint(0, 30, (len(labels), 1, size, size), generator=gen)
        images = (40 + 60 * labels.view(-1, 1, 1, 1) + noise).to(torch.uint8)
        return images, labels

    train, test = make(per_class), make(test_per_class)
    return ImageDataset(
        "toy", train[0], train[1], test[0], test[1], [f"c{i}" for i in range(num_classes)]
    )


def record(method, split, seed, many, medium, few, probe="linear", dataset="toy"):
    summary = {
        "Many": many,
        "Medium": medium,
        "Few": few,
        "Std": float(np.std([many, medium, few])),
        "All": (many + medium + few) / 3,
    }
    return {
        "dataset": dataset,
        "method": method,
        "split": split,
        "seed": seed,
        "probe": probe,
        "summary": summary,
    }


_KILLABLE = """
import sys, time
import torch
from sdclr.io import read_json
from tests.helpers import pool_images, pretrain, toy_images

def slow(epoch, metrics):
    print(f"epoch {epoch}", flush=True)
    time.sleep(float(sys.argv[3]))

pool = {"pool": pool_images(), "labels": torch.arange(48) % 4} if sys.argv[4] == "True" else {}
pretrain(read_json(sys.argv[1]), toy_images(48), sys.argv[2], seed=0, progress=False,
         on_epoch_end=slow, **pool)
"""
