"""Contrastive pretraining: SGD with per-iteration warm-up cosine, resumable checkpoints.

The training images sit on the training device as one uint8 tensor; every batch is
augmented there (``sdclr.data.augment``). All randomness (batch order, augmentation) comes
from one ``torch.Generator`` whose state is saved in every checkpoint, so a resumed run ends
with the same weights as an uninterrupted one. The step is :class:`sdclr.training.step.TrainStep`.

Files in ``out_dir``:
  resume.pt       the last checkpoint (model, optimiser, generator, history), rewritten
                  atomically every ``checkpoint_every`` epochs and at the end
  train_log.csv   one row per finished epoch: epoch, loss, lr, and what the method logs
  timing.csv      one row per epoch run: epoch, seconds, views_per_second (appended; an epoch
                  redone after a resume appears again). Wall-clock times live here only, so
                  resume.pt, train_log.csv and model.pt are byte-identical across identical runs
  model.pt        the final encoder with what is needed to rebuild it, and the method's
                  per-sample statistics if it keeps any (written last)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm import tqdm

from sdclr import distributed
from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.device import describe_device
from sdclr.methods import Method, create_method
from sdclr.models import ModelConfig, convert_sync_batchnorm
from sdclr.provenance import provenance
from sdclr.settings import load, setting
from sdclr.torch_files import torch_load, torch_save
from sdclr.training.batches import check_batch, rank_share, step_sizes
from sdclr.training.run_files import (
    CHECKPOINT_NAME,
    LOG_NAME,
    MODEL_NAME,
    TIMING_NAME,
    append_timing,
    set_aside,
    write_train_log,
)
from sdclr.training.step import Runtime, TrainStep, resolve_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings (config key ``pretrain``); defaults are the paper's."""

    epochs: int = setting(doc="Pretraining epochs.", minimum=1)
    batch_size: int = setting(512, doc="Images per step (the global batch).", minimum=2)
    lr: float = setting(0.5, doc="Peak learning rate (after warm-up).", exclusive_minimum=0)
    momentum: float = setting(0.9, doc="SGD momentum.", minimum=0, maximum=1)
    weight_decay: float = setting(1e-4, doc="SGD weight decay.", minimum=0)
    warmup_epochs: float = setting(10, doc="Linear warm-up length in epochs.", minimum=0)
    final_lr: float = setting(1e-6, doc="Learning rate at the end of the cosine.", minimum=0)
    checkpoint_every: int = setting(10, doc="Epochs between checkpoints.", minimum=1)
    precision: Literal["auto", "bf16", "tf32", "fp32"] = setting(
        "auto",
        doc="Arithmetic: fp32 = IEEE float32 everywhere, the reference's (TF32 off on CUDA); "
        "tf32 = float32 with TF32 convs and matmuls on CUDA; bf16 = bf16 autocast on CUDA "
        "(NT-Xent stays fp32); auto = bf16 on CUDA, fp32 on CPU.",
    )
    channels_last: Literal["auto", True, False] = setting(
        "auto", doc="Channels-last convolutions: auto = on CUDA only."
    )
    compile: Literal["auto", True, False] = setting(
        "auto",
        doc="torch.compile the method's forward and loss as one graph: auto = on one-GPU "
        "CUDA runs (a win for SimCLR and SDCLR on an H100), off on CPU, where compiling takes "
        "minutes, and off for several GPUs.",
    )
    sync_batchnorm: bool = setting(
        True,
        doc="With several processes, BatchNorm statistics over the global batch (as the "
        "reference's DDP runs; dual BN stays dual); false: each rank's own.",
    )
    drop_last: bool = setting(
        False,
        doc="Drop each epoch's last partial batch; the reference keeps it (CIFAR-10-LT: 21 "
        "steps of 512 and one of 413), see sdclr/training/batches.py.",
    )
    gpus: int = setting(
        1,
        doc="GPUs (processes) of one job; more than 1 runs under torchrun with the global "
        "batch split between them (sdclr/distributed.py).",
        minimum=1,
    )


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


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state with every tensor in the default (contiguous) layout, whatever the
    training memory format, so saved files look the same from every runtime."""
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@dataclass
class Training:
    """Everything one pretraining run holds, built once by :func:`_setup`."""

    settings: dict[str, Any]
    seed: int
    world: distributed.World
    device: torch.device
    method: Method
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    runtime: Runtime
    config: PretrainConfig
    model_config: ModelConfig
    generator: torch.Generator  # batch order (the same on every rank)
    augment_generator: torch.Generator  # augmentation (one stream per rank)
    step: TrainStep
    num_images: int
    in_channels: int
    history: list[dict[str, float]] = field(default_factory=list)
    start_epoch: int = 0

    @cached_property
    def step_sizes(self) -> list[int]:
        """The global batch of each step of an epoch (the last may be partial)."""
        return step_sizes(
            self.num_images, self.config.batch_size, self.config.drop_last, self.world.size
        )

    @property
    def steps_per_epoch(self) -> int:
        """Steps of an epoch, a partial last one included: the cosine counts it as a step."""
        return len(self.step_sizes)

    def lr(self, iteration: int) -> float:
        """The warm-up cosine learning rate of ``iteration`` (0-based, over the whole run)."""
        total = self.steps_per_epoch * self.config.epochs
        warmup = round(self.config.warmup_epochs * self.steps_per_epoch)
        return warmup_cosine_lr(iteration, total, warmup, self.config.lr, self.config.final_lr)


def pretrain(
    settings: dict[str, Any],
    images: torch.Tensor,
    out_dir: str | Path,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    sample_ids: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Pretrain ``settings["method"]`` on ``images`` (uint8 [N, C, H, W]); return a summary.

    Resumes from ``out_dir/resume.pt`` when it exists. ``on_epoch_end(epoch, metrics)`` is
    called after each finished (and, when due, checkpointed) epoch. ``sample_ids`` (the
    images' training-set indices) go into model.pt with the method's per-sample statistics.
    """
    out_dir = Path(out_dir)
    run = _setup(settings, images.shape, seed, device)
    _resume(run, out_dir / CHECKPOINT_NAME)
    images = images.to(run.device)
    _log_start(run)
    bar = tqdm(
        total=run.config.epochs,
        initial=run.start_epoch,
        desc=f"pretrain {settings['method']['name']}",
        unit="epoch",
        disable=not progress or not run.world.is_main,
        mininterval=2.0,
    )
    run.model.train()
    for epoch in range(run.start_epoch, run.config.epochs):
        metrics, timing = _train_epoch(run, images, epoch, out_dir)
        run.history.append(metrics)
        done = epoch + 1
        if done % run.config.checkpoint_every == 0 or done == run.config.epochs:
            _save_checkpoint(run, out_dir / CHECKPOINT_NAME, done)
        if run.world.is_main:
            write_train_log(out_dir / LOG_NAME, run.history)
            append_timing(out_dir / TIMING_NAME, timing)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.3g}")
        bar.update(1)
        log.info(
            "epoch %d/%d loss %.4f lr %.4g %.1fs",
            done,
            run.config.epochs,
            metrics["loss"],
            metrics["lr"],
            timing["seconds"],
        )
        if on_epoch_end is not None:
            on_epoch_end(done, {**metrics, **timing})
    bar.close()
    return _save_model(run, out_dir, sample_ids)


def _setup(
    settings: dict[str, Any], shape: torch.Size, seed: int, device: torch.device | str
) -> Training:
    """Build the method, model, optimiser, augmentation and generators of a fresh run."""
    world = distributed.setup()
    device = torch.device(device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
    spec = settings["method"]
    method = create_method(
        spec["algorithm"],
        spec["hyperparameters"],
        f"methods.{spec['name']}.hyperparameters",
        spec.get("extensions"),
    )
    model_config = load(ModelConfig, settings.get("model"), "model")
    config = load(PretrainConfig, settings["pretrain"], "pretrain")
    augment = BatchAugment(load(AugmentConfig, settings["augmentation"], "augmentation"))
    runtime = resolve_runtime(config, device, world.size)
    runtime.set_arithmetic()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels
    check_batch(settings, config.batch_size, shape[0], world.size)

    torch.manual_seed(seed)
    model = method.build_model(model_config, shape[1])
    if world.size > 1 and config.sync_batchnorm:
        convert_sync_batchnorm(model)
    model = model.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        foreach=True,  # multi-tensor updates: the for-loop's arithmetic, far fewer kernels
    )
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    augment_generator = generator
    if world.size > 1:
        augment_generator = torch.Generator(device=device)
        augment_generator.manual_seed(seed + 1_000_003 * (world.rank + 1))
    method.setup(shape[0], device, model)
    step = TrainStep(method, model, optimizer, augment, runtime)
    return Training(
        settings, seed, world, device, method, model, optimizer, runtime, config, model_config,
        generator, augment_generator, step, num_images=shape[0], in_channels=shape[1],
    )  # fmt: skip


def _resume(run: Training, checkpoint_path: Path) -> None:
    """Continue from ``checkpoint_path`` when it holds this run's settings and seed; a
    checkpoint of other settings is kept, renamed, and the run starts afresh."""
    state = torch_load(checkpoint_path, "checkpoint") if checkpoint_path.exists() else None
    if state is None:
        return
    if state.get("settings") != run.settings or state.get("seed") != run.seed:
        kept = set_aside(checkpoint_path)
        changed = settings_differences(state.get("settings"), run.settings)
        if state.get("seed") != run.seed:
            changed.append(f"seed {state.get('seed')} -> {run.seed}")
        log.warning(
            "%s was written under other settings or code (%s): starting afresh, not mixing "
            "the two; kept it as %s",
            checkpoint_path,
            "; ".join(changed[:6]) + (f"; {len(changed) - 6} more" if len(changed) > 6 else ""),
            kept,
        )
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    device = run.generator.get_state().device
    run.generator.set_state(state["generator"].to(device))
    if run.world.size > 1:
        saved = state.get("augment_generators") or []
        if len(saved) != run.world.size:
            raise ValueError(
                f"checkpoint {checkpoint_path} was written by {len(saved) or 1} processes, "
                f"this run has {run.world.size}; resume with pretrain.gpus unchanged"
            )
        run.augment_generator.set_state(saved[run.world.rank].to(device))
    run.method.load_state_dict(state.get("method_state") or {})
    run.history = state["history"]
    run.start_epoch = state["epoch"]
    log.info("resumed from %s at epoch %d/%d", checkpoint_path, run.start_epoch, run.config.epochs)
    saved_runtime = state.get("runtime")
    if saved_runtime is not None and saved_runtime != asdict(run.runtime):
        log.warning(
            "the checkpoint's epochs ran as %s, the rest runs as %s", saved_runtime, run.runtime
        )


def settings_differences(old: Any, new: Any, where: str = "") -> list[str]:
    """What differs between two settings (dotted keys; a source file by its path)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            name = f"{where}.{key}" if where else str(key)
            if where == "code":
                name = f"code of {key}"
            if old.get(key) != new.get(key):
                if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                    found.extend(settings_differences(old[key], new[key], name))
                elif key not in old or key not in new:
                    found.append(f"{name} {'added' if key not in old else 'removed'}")
                elif where == "code":
                    found.append(f"{name} changed")
                else:
                    found.append(f"{name} {old[key]!r} -> {new[key]!r}")
        return found
    return [] if old == new else [f"{where or 'settings'} differ"]


def _log_start(run: Training) -> None:
    spec = run.settings["method"]
    config, runtime = run.config, run.runtime
    log.info(
        "pretraining %s (%s) on %d images, %d epochs x %d steps of batch %d (last %d), device %s, "
        "%s, channels_last %s, compile %s",
        *(spec["name"], spec["algorithm"], run.num_images, config.epochs, run.steps_per_epoch),
        *(config.batch_size, run.step_sizes[-1], run.device, runtime.precision),
        *(runtime.channels_last, runtime.compile),
    )
    if run.world.size > 1:
        bn = "synchronised" if run.config.sync_batchnorm else "per rank"
        log.info("%d processes, BatchNorm statistics %s", run.world.size, bn)


def _train_epoch(
    run: Training, images: torch.Tensor, epoch: int, out_dir: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """One epoch: the method's epoch hook, then every step; returns (metrics, timing)."""
    started = time.perf_counter()
    extra = run.method.begin_epoch(run.model, epoch)
    order = torch.randperm(run.num_images, device=run.device, generator=run.generator)
    loss_sum = torch.zeros((), device=run.device)
    sizes = run.step_sizes
    steps, step_start = len(sizes), 0
    for step, size in enumerate(sizes):
        lr = run.lr(epoch * steps + step)
        start, stop = rank_share(step_start, size, run.world.rank, run.world.size)
        indices = order[start:stop]
        loss_sum += run.step(images[indices], indices, run.augment_generator, lr)
        step_start += size
    extra.update(run.method.end_epoch(epoch))
    mean_loss = float(loss_sum) / steps  # waits for the device: the clock then sees all work
    seconds = time.perf_counter() - started
    if not math.isfinite(mean_loss):
        raise FloatingPointError(
            f"loss became {mean_loss} at epoch {epoch + 1}; lower pretrain.lr "
            f"(the last checkpoint in {out_dir} is kept)"
        )
    metrics = {
        "epoch": epoch + 1,
        "loss": round(mean_loss, 6),
        "lr": lr,
        **({"processes": run.world.size} if run.world.size > 1 else {}),
        **extra,
    }
    timing = {
        "epoch": epoch + 1,
        "seconds": round(seconds, 3),
        "views_per_second": round(2 * step_start / seconds, 1),
    }
    return metrics, timing


def _save_checkpoint(run: Training, path: Path, epoch: int) -> None:
    """Write the resumable state after ``epoch`` finished epochs (rank 0 writes)."""
    augment_states = distributed.all_gather_objects(run.augment_generator.get_state().cpu())
    if run.world.is_main:
        torch_save(
            path,
            {
                "epoch": epoch,
                "model": _state_dict(run.model),
                "optimizer": run.optimizer.state_dict(),
                "generator": run.generator.get_state(),
                "augment_generators": augment_states if run.world.size > 1 else None,
                "method_state": run.method.state_dict(),
                "history": run.history,
                "settings": run.settings,
                "seed": run.seed,
                "runtime": asdict(run.runtime),
            },
        )
    distributed.barrier()


def _sample_statistics(run: Training, ids: torch.Tensor | None) -> dict[str, Any]:
    """model.pt's ``sample_statistics``: the method's, by position, with the positions'
    training-set indices ``ids`` (default 0..N-1); nothing when the method keeps none."""
    if not (statistics := run.method.sample_statistics()):
        return {}
    ids = torch.arange(run.num_images) if ids is None else ids
    return {"sample_statistics": {"pretrain_indices": ids.cpu().long(), **statistics}}


def _save_model(run: Training, out_dir: Path, ids: torch.Tensor | None) -> dict[str, Any]:
    """Write model.pt (the encoder and what rebuilds it) and the final log; return the
    summary."""
    spec = run.settings["method"]
    summary = {
        "method": spec,
        "algorithm": spec["algorithm"],
        "model_config": asdict(run.model_config),
        "in_channels": run.in_channels,
        "seed": run.seed,
        "epochs": run.config.epochs,
        "final_loss": run.history[-1]["loss"] if run.history else None,
        "num_images": run.num_images,
        "provenance": provenance(describe_device(run.device), run.runtime.precision),
    }
    extra = _sample_statistics(run, ids)
    if run.world.is_main:
        torch_save(out_dir / MODEL_NAME, {**summary, **extra, "state_dict": _state_dict(run.model)})
        write_train_log(out_dir / LOG_NAME, run.history)
    distributed.barrier()
    return summary
