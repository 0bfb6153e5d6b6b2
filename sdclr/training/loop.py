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
  live.tsv        the live view: one row per finished epoch (loss, lr, temperature,
                  images/s, elapsed, ETA), appended as it ends and cut back to the
                  checkpoint's epochs on resume (``sdclr.training.live``); a log, not an output
  model.pt        the final encoder with what is needed to rebuild it, and the method's
                  per-sample statistics if it keeps any (written last)

Each finished epoch also logs one line (``epoch 12/2000 loss ... img/s ... ETA ...``); the
progress bar is shown on a terminal only (tqdm's own check), so a log file under SLURM gets
those lines and no bar redraws.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sdclr import distributed
from sdclr.data.augment import BatchAugment
from sdclr.device import describe_device
from sdclr.io import write_json
from sdclr.methods import create_method
from sdclr.models import convert_sync_batchnorm
from sdclr.provenance import provenance
from sdclr.torch_files import torch_save
from sdclr.training.batches import check_batch, rank_share, step_sizes
from sdclr.training.checkpoint import plain_state_dict, resume, save_checkpoint
from sdclr.training.compile_counts import compile_counts, counts_since
from sdclr.training.config import PretrainConfig, PretrainJob
from sdclr.training.live import LiveLog, log_line
from sdclr.training.run_files import (
    CHECKPOINT_NAME,
    LIVE_NAME,
    LOG_NAME,
    MODEL_NAME,
    TIMING_NAME,
    append_timing,
    write_train_log,
)
from sdclr.training.state import Training, warmup_cosine_lr
from sdclr.training.step import TrainStep, resolve_runtime

log = logging.getLogger(__name__)


def pretrain(
    job: PretrainJob,
    images: torch.Tensor,
    out_dir: str | Path,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    sample_ids: torch.Tensor | None = None,
    pool: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Pretrain ``job.method`` on ``images`` (uint8 [N, C, H, W]); return a summary.

    Resumes from ``out_dir/resume.pt`` when it exists. ``on_epoch_end(epoch, metrics)`` is
    called after each finished (and, when due, checkpointed) epoch. ``sample_ids`` (the
    images' training-set indices) go into model.pt with the method's per-sample statistics.
    ``pool`` (uint8 [M, C, H, W]): images outside the pretraining set that an extension may
    add to an epoch (``select_samples``: positions N.. are the pool's); ``labels``: the
    images' classes, for the extensions' records.
    """
    out_dir = Path(out_dir)
    run = _setup(job, images.shape, seed, device)
    run.method.sample_labels = labels
    resume(run, out_dir / CHECKPOINT_NAME)
    images = images if pool is None else torch.cat([images, pool.to(images.device)])
    images = images.to(run.device)
    _log_start(run)
    bar = tqdm(
        total=run.config.epochs,
        initial=run.start_epoch,
        desc=f"pretrain {job.method.name}",
        unit="epoch",
        disable=True if not progress or not run.world.is_main else None,  # None: TTY only
        mininterval=2.0,
    )
    live = LiveLog(out_dir / LIVE_NAME, run.config.epochs, run.start_epoch, run.world.is_main)
    compiled_before, compiled = compile_counts(), {}
    epoch_images = sum(run.step_sizes)
    run.model.train()
    for epoch in range(run.start_epoch, run.config.epochs):
        metrics, timing = _train_epoch(run, images, epoch, out_dir)
        if run.runtime.compile:  # a recompiling step shows in the log and in timing.csv
            compiled = _record_compilation(timing, compiled_before, compiled)
        run.history.append(metrics)
        if run.world.is_main and (warning := stuck_loss_warning(run.history)):
            log.warning(warning)
        done = epoch + 1
        if done % run.config.checkpoint_every == 0 or done == run.config.epochs:
            save_checkpoint(run, out_dir / CHECKPOINT_NAME, done)
        if run.world.is_main:
            _write_epoch_files(run, out_dir, timing)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.3g}")
        bar.update(1)
        temperature = metrics.get("temperature", run.method.temperature)
        log.info("%s", log_line(live.record(metrics, timing["seconds"], epoch_images, temperature)))
        if on_epoch_end is not None:
            on_epoch_end(done, {**metrics, **timing})
    bar.close()
    return _save_model(run, out_dir, sample_ids)


def _write_epoch_files(run: Training, out_dir: Path, timing: dict[str, float]) -> None:
    """The train log, the epoch's timing row and the method's records (main process)."""
    write_train_log(out_dir / LOG_NAME, run.history)
    append_timing(out_dir / TIMING_NAME, timing)
    for name, content in run.method.records().items():
        write_json(out_dir / name, content)


def _setup(job: PretrainJob, shape: torch.Size, seed: int, device: torch.device | str) -> Training:
    """Build the method, model, optimiser, augmentation and generators of a fresh run."""
    world = distributed.setup()
    device = torch.device(device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
    spec = job.method
    method = create_method(
        spec.algorithm,
        spec.hyperparameters,
        f"methods.{spec.name}.hyperparameters",
        spec.extensions or None,
    )
    model_config, config = job.model, job.pretrain
    augment = BatchAugment(job.augmentation)
    runtime = resolve_runtime(config, device, world.size)
    runtime.set_arithmetic()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels
    check_batch(job.dataset, spec.pretrain_set, config.batch_size, shape[0], world.size)

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
        job.identity, seed, world, device, method, model, optimizer, runtime, config, model_config,
        generator, augment_generator, step, num_images=shape[0], in_channels=shape[1],
    )  # fmt: skip


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
    chosen = run.method.select_samples(run.model, images, run.num_images, epoch)
    if chosen is None:  # the pretraining set
        order = torch.randperm(run.num_images, device=run.device, generator=run.generator)
        sizes = run.step_sizes
    else:  # an extension's choice (with pool images): the epoch's steps follow its size
        order = chosen[torch.randperm(len(chosen), device=run.device, generator=run.generator)]
        sizes = step_sizes(len(chosen), run.config.batch_size, run.config.drop_last, run.world.size)
    loss_sum = torch.zeros((), device=run.device)
    steps, step_start = len(sizes), 0
    for step, size in enumerate(sizes):
        lr = run.epoch_lr(epoch, step, steps)
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


def _record_compilation(
    timing: dict[str, float], before: dict[str, int], last: dict[str, int]
) -> dict[str, int]:
    """Add the graphs compiled and graph breaks met since ``before`` to the epoch's ``timing``;
    log them when they differ from ``last`` epoch's (the first epoch, and any recompilation)."""
    compiled = counts_since(before)
    timing.update(compiled)
    if compiled != last:
        log.info(
            "compiled step: %d graphs, %d graph breaks in this run so far",
            compiled["compiled_graphs"],
            compiled["graph_breaks"],
        )
    return compiled


def stuck_loss_warning(history: list[dict[str, Any]]) -> str | None:
    """A one-line warning when the last epoch's mean loss equals the previous epoch's exactly
    (to the 6 digits the log keeps), said once per streak: a loss that does not move at all,
    as when every logit is equal (a huge temperature), learns nothing. Only the per-epoch means
    the loop already has are compared: no extra device work per step."""
    losses = [row["loss"] for row in history[-3:]]
    if len(losses) < 2 or losses[-1] != losses[-2] or (len(losses) == 3 and losses[0] == losses[1]):
        return None
    return (
        f"loss {losses[-1]} did not move from epoch {history[-2]['epoch']} to "
        f"{history[-1]['epoch']}: every step gives the same loss, so nothing is learned "
        "(all logits equal? check the method's temperature and pretrain.lr)"
    )


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
        torch_save(
            out_dir / MODEL_NAME, {**summary, **extra, "state_dict": plain_state_dict(run.model)}
        )
        write_train_log(out_dir / LOG_NAME, run.history)
    distributed.barrier()
    return summary


__all__ = [  # what callers import from the loop (the run files' names, its config, schedule)
    "CHECKPOINT_NAME",
    "LOG_NAME",
    "MODEL_NAME",
    "PretrainConfig",
    "pretrain",
    "stuck_loss_warning",
    "warmup_cosine_lr",
]
