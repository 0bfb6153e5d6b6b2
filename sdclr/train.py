"""Contrastive pretraining: SGD with per-iteration warm-up cosine, resumable checkpoints.

The training images sit on the training device as one uint8 tensor; every batch is
augmented there (``sdclr.data.augment``). All randomness (batch order, augmentation) comes
from one ``torch.Generator`` whose state is saved in every checkpoint, so a resumed run ends
with the same weights as an uninterrupted one.

Files in ``out_dir``:
  resume.pt       the last checkpoint (model, optimiser, generator, history), rewritten
                  atomically every ``checkpoint_every`` epochs and at the end
  train_log.csv   one row per finished epoch: epoch, loss, lr, seconds, views_per_second, ...
  model.pt        the final encoder with what is needed to rebuild it (written last)
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sdclr.config import dataclass_from_dict
from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.io import torch_load, torch_save, write_text
from sdclr.methods import create_method
from sdclr.models import ModelConfig

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "resume.pt"
MODEL_NAME = "model.pt"
LOG_NAME = "train_log.csv"


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings (config key ``pretrain``); defaults are the paper's."""

    epochs: int
    batch_size: int = 512
    lr: float = 0.5
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 10
    final_lr: float = 1e-6
    checkpoint_every: int = 10


def warmup_cosine_lr(
    iteration: int, total: int, warmup: int, base_lr: float, final_lr: float
) -> float:
    """Learning rate at ``iteration`` (0-based) of ``total``.

    Linear warm-up ``base_lr * (iteration + 1) / warmup`` for the first ``warmup`` iterations,
    then ``final_lr + 0.5 * (base_lr - final_lr) * (1 + cos(pi * progress))`` with
    ``progress = (iteration - warmup) / (total - warmup)``.
    """
    if iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    progress = (iteration - warmup) / max(1, total - warmup)
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * progress))


def _write_log(path: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    write_text(path, buffer.getvalue())


def pretrain(
    settings: dict[str, Any],
    images: torch.Tensor,
    out_dir: str | Path,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Pretrain ``settings["method"]`` on ``images`` (uint8 [N, C, H, W]); return a summary.

    Resumes from ``out_dir/resume.pt`` when it exists. ``on_epoch_end(epoch, metrics)`` is
    called after each finished (and, when due, checkpointed) epoch.
    """
    out_dir = Path(out_dir)
    device = torch.device(device)
    spec = settings["method"]
    method = create_method(spec["algorithm"], spec["hyperparameters"])
    model_config = dataclass_from_dict(ModelConfig, settings.get("model"), "model")
    opt_config = dataclass_from_dict(PretrainConfig, settings["pretrain"], "pretrain")
    augment = BatchAugment(
        dataclass_from_dict(AugmentConfig, settings["augmentation"], "augmentation")
    )

    torch.manual_seed(seed)
    in_channels = images.shape[1]
    model = method.build_model(model_config, in_channels).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=opt_config.lr,
        momentum=opt_config.momentum,
        weight_decay=opt_config.weight_decay,
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)

    n = images.shape[0]
    batch_size = min(opt_config.batch_size, n)
    steps_per_epoch = n // batch_size
    total_steps = steps_per_epoch * opt_config.epochs
    warmup_steps = round(opt_config.warmup_epochs * steps_per_epoch)
    history: list[dict[str, float]] = []
    start_epoch = 0

    checkpoint_path = out_dir / CHECKPOINT_NAME
    if checkpoint_path.exists():
        state = torch_load(checkpoint_path, "checkpoint")
        if state.get("settings") != settings or state.get("seed") != seed:
            raise ValueError(
                f"checkpoint {checkpoint_path} was written with other settings or seed; "
                "move it away (or delete it) to start this run afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].to(generator.get_state().device))
        history = state["history"]
        start_epoch = state["epoch"]
        log.info("resumed from %s at epoch %d/%d", checkpoint_path, start_epoch, opt_config.epochs)

    images = images.to(device)
    log.info(
        "pretraining %s (%s) on %d images, %d epochs x %d steps of batch %d, device %s",
        spec["name"],
        spec["algorithm"],
        n,
        opt_config.epochs,
        steps_per_epoch,
        batch_size,
        device,
    )
    bar = tqdm(
        total=opt_config.epochs,
        initial=start_epoch,
        desc=f"pretrain {spec['name']}",
        unit="epoch",
        disable=not progress,
        mininterval=2.0,
    )
    model.train()
    for epoch in range(start_epoch, opt_config.epochs):
        started = time.perf_counter()
        extra = method.on_epoch_start(model, epoch)
        order = torch.randperm(n, device=device, generator=generator)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            iteration = epoch * steps_per_epoch + step
            lr = warmup_cosine_lr(
                iteration, total_steps, warmup_steps, opt_config.lr, opt_config.final_lr
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = images[order[step * batch_size : (step + 1) * batch_size]]
            view1, view2 = augment(batch, generator), augment(batch, generator)
            loss = method.loss(model, view1, view2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        seconds = time.perf_counter() - started
        mean_loss = float(loss_sum) / steps_per_epoch
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"loss became {mean_loss} at epoch {epoch + 1}; lower pretrain.lr "
                f"(the last checkpoint in {out_dir} is kept)"
            )
        metrics = {
            "epoch": epoch + 1,
            "loss": round(mean_loss, 6),
            "lr": lr,
            "seconds": round(seconds, 3),
            "views_per_second": round(2 * steps_per_epoch * batch_size / seconds, 1),
            **extra,
        }
        history.append(metrics)
        done = epoch + 1
        if done % opt_config.checkpoint_every == 0 or done == opt_config.epochs:
            torch_save(
                checkpoint_path,
                {
                    "epoch": done,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "history": history,
                    "settings": settings,
                    "seed": seed,
                },
            )
        _write_log(out_dir / LOG_NAME, history)
        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.3g}")
        bar.update(1)
        log.info(
            "epoch %d/%d loss %.4f lr %.4g %.1fs", done, opt_config.epochs, mean_loss, lr, seconds
        )
        if on_epoch_end is not None:
            on_epoch_end(done, metrics)
    bar.close()

    summary = {
        "method": spec,
        "algorithm": spec["algorithm"],
        "model_config": asdict(model_config),
        "in_channels": in_channels,
        "seed": seed,
        "epochs": opt_config.epochs,
        "final_loss": history[-1]["loss"] if history else None,
        "num_images": n,
    }
    torch_save(out_dir / MODEL_NAME, {**summary, "state_dict": model.state_dict()})
    _write_log(out_dir / LOG_NAME, history)
    return summary
