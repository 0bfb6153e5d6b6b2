"""Contrastive pretraining: SGD with per-iteration warm-up cosine, resumable checkpoints.

The training images sit on the training device as one uint8 tensor; every batch is
augmented there (``sdclr.data.augment``). All randomness (batch order, augmentation) comes
from one ``torch.Generator`` whose state is saved in every checkpoint, so a resumed run ends
with the same weights as an uninterrupted one.

The step (:class:`TrainStep`) is the fast path on every device: both views of a batch in one
batched augmentation call, written straight into the model's memory format; the forward
under bf16 autocast where ``pretrain.precision`` says so (``auto``: bf16 on CUDA, fp32 on
CPU; the NT-Xent similarity matrix stays fp32); channels-last convolutions where
``pretrain.channels_last`` says so (``auto``: on CUDA); optionally ``torch.compile``; and
nothing in the step waits for the device (the epoch's loss is summed on the device and read
once per epoch).

Files in ``out_dir``:
  resume.pt       the last checkpoint (model, optimiser, generator, history), rewritten
                  atomically every ``checkpoint_every`` epochs and at the end
  train_log.csv   one row per finished epoch: epoch, loss, lr, and what the method logs
  timing.csv      one row per epoch run: epoch, seconds, views_per_second (appended; an epoch
                  redone after a resume appears again). Wall-clock times live here only, so
                  resume.pt, train_log.csv and model.pt are byte-identical across identical runs
  model.pt        the final encoder with what is needed to rebuild it (written last)
"""

from __future__ import annotations

import contextlib
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

from sdclr import distributed
from sdclr.config import dataclass_from_dict
from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.errors import ConfigError
from sdclr.io import torch_load, torch_save, write_text
from sdclr.methods import Method, create_method
from sdclr.models import ModelConfig

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "resume.pt"
MODEL_NAME = "model.pt"
LOG_NAME = "train_log.csv"
TIMING_NAME = "timing.csv"
PRECISIONS = ("auto", "bf16", "fp32")


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
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    channels_last: str | bool = "auto"  # auto (on CUDA) | true | false
    compile: bool = False  # torch.compile the model
    gpus: int = 1  # processes (GPUs) in one job; > 1 runs under torchrun (sdclr.distributed)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"pretrain.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.channels_last not in ("auto", True, False):
            raise ValueError(
                f"pretrain.channels_last must be auto, true or false, got {self.channels_last!r}"
            )
        if not isinstance(self.compile, bool):
            raise ValueError(f"pretrain.compile must be true or false, got {self.compile!r}")


@dataclass(frozen=True)
class Runtime:
    """How the step runs on this device, resolved from ``PretrainConfig``'s ``auto`` values."""

    device: str
    precision: str  # "bf16" | "fp32"
    channels_last: bool
    compile: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the device, or nothing for fp32."""
        if self.precision == "bf16":
            return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve_runtime(config: PretrainConfig, device: torch.device | str) -> Runtime:
    """Resolve ``auto``: bf16 and channels-last on CUDA, fp32 and contiguous on CPU."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    precision = config.precision if config.precision != "auto" else ("bf16" if cuda else "fp32")
    channels_last = cuda if config.channels_last == "auto" else bool(config.channels_last)
    return Runtime(str(device), precision, channels_last, config.compile)


class TrainStep:
    """One SGD step of ``method`` on a uint8 batch: augment, forward, one backward, update.

    Both views come from one :class:`BatchAugment` call on ``cat([batch, batch])`` (per-sample
    parameters, so the two halves are independent views), already in the model's memory
    format. Nothing here reads a value back to the host: the returned loss is a detached
    device tensor.
    """

    def __init__(
        self,
        method: Method,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        augment: BatchAugment,
        runtime: Runtime,
    ) -> None:
        self.method = method
        self.model = model
        self.optimizer = optimizer
        self.augment = augment
        self.runtime = runtime
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward_model: torch.nn.Module = torch.compile(model) if runtime.compile else model
        self.parameters = list(model.parameters())

    def views(
        self, batch: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views of ``batch`` (uint8 [B, C, H, W] on the device)."""
        both = self.augment(torch.cat([batch, batch]), generator, self.runtime.memory_format)
        view1, view2 = both.chunk(2)
        return view1, view2

    def loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """The method's loss, under the runtime's autocast."""
        with self.runtime.autocast():
            return self.method.loss(self.forward_model, view1, view2)

    def __call__(
        self, batch: torch.Tensor, generator: torch.Generator | None, lr: float
    ) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.loss(*self.views(batch, generator))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.parameters)
        self.optimizer.step()
        return loss.detach()


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


def _write_log(path: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    write_text(path, buffer.getvalue())


def _append_timing(path: Path, row: dict[str, float]) -> None:
    """Append one epoch's wall-clock figures to ``path`` (a log, not an output)."""
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to the first free ``<stem>.stale-<n><suffix>`` next to it."""
    n = 1
    while (kept := path.with_name(f"{path.stem}.stale-{n}{path.suffix}")).exists():
        n += 1
    path.rename(kept)
    return kept


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
    world = distributed.setup()
    device = torch.device(device)
    if device.type == "cuda" and world.size > 1:
        device = torch.device("cuda", world.local_rank)
    spec = settings["method"]
    method = create_method(spec["algorithm"], spec["hyperparameters"])
    model_config = dataclass_from_dict(ModelConfig, settings.get("model"), "model")
    opt_config = dataclass_from_dict(PretrainConfig, settings["pretrain"], "pretrain")
    augment = BatchAugment(
        dataclass_from_dict(AugmentConfig, settings["augmentation"], "augmentation")
    )

    runtime = resolve_runtime(opt_config, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest conv kernels

    torch.manual_seed(seed)
    in_channels = images.shape[1]
    model = method.build_model(model_config, in_channels).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=opt_config.lr,
        momentum=opt_config.momentum,
        weight_decay=opt_config.weight_decay,
    )
    # `generator` draws the batch order (the same on every rank); `augment_generator` the
    # augmentations (one stream per rank; the same object as `generator` on one process).
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    augment_generator = generator
    if world.size > 1:
        augment_generator = torch.Generator(device=device)
        augment_generator.manual_seed(seed + 1_000_003 * (world.rank + 1))

    n = images.shape[0]
    batch_size = opt_config.batch_size
    if batch_size > n:
        raise ConfigError(
            f"datasets.{settings['dataset']}.pretrain.batch_size: {batch_size} is larger than "
            f"the {n} pretraining images of {spec['pretrain_set']}; set it to at most {n}"
        )
    if batch_size % world.size:
        raise ValueError(
            f"pretrain.batch_size {batch_size} must be divisible by the {world.size} processes"
        )
    local_batch = batch_size // world.size
    steps_per_epoch = n // batch_size
    total_steps = steps_per_epoch * opt_config.epochs
    warmup_steps = round(opt_config.warmup_epochs * steps_per_epoch)
    history: list[dict[str, float]] = []
    start_epoch = 0

    checkpoint_path = out_dir / CHECKPOINT_NAME
    state = torch_load(checkpoint_path, "checkpoint") if checkpoint_path.exists() else None
    if state is not None and (state.get("settings") != settings or state.get("seed") != seed):
        # The config changed since this checkpoint (a new hyperparameter, say): this is a new
        # run. The old checkpoint is kept, renamed, never deleted.
        kept = _set_aside(checkpoint_path)
        log.warning(
            "%s was written with other settings or seed: starting afresh; kept it as %s",
            checkpoint_path,
            kept,
        )
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].to(generator.get_state().device))
        if world.size > 1:
            saved = state.get("augment_generators") or []
            if len(saved) != world.size:
                raise ValueError(
                    f"checkpoint {checkpoint_path} was written by {len(saved) or 1} processes, "
                    f"this run has {world.size}; resume with pretrain.gpus unchanged"
                )
            augment_generator.set_state(saved[world.rank].to(generator.get_state().device))
        history = state["history"]
        start_epoch = state["epoch"]
        log.info("resumed from %s at epoch %d/%d", checkpoint_path, start_epoch, opt_config.epochs)
        saved_runtime = state.get("runtime")
        if saved_runtime is not None and saved_runtime != asdict(runtime):
            log.warning(
                "the checkpoint's epochs ran as %s, the rest runs as %s", saved_runtime, runtime
            )

    step_fn = TrainStep(method, model, optimizer, augment, runtime)
    images = images.to(device)
    log.info(
        "pretraining %s (%s) on %d images, %d epochs x %d steps of batch %d, device %s, "
        "%s, channels_last %s, compile %s",
        spec["name"],
        spec["algorithm"],
        n,
        opt_config.epochs,
        steps_per_epoch,
        batch_size,
        device,
        runtime.precision,
        runtime.channels_last,
        runtime.compile,
    )
    bar = tqdm(
        total=opt_config.epochs,
        initial=start_epoch,
        desc=f"pretrain {spec['name']}",
        unit="epoch",
        disable=not progress or not world.is_main,
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
            start = step * batch_size + world.rank * local_batch
            batch = images[order[start : start + local_batch]]
            loss_sum += step_fn(batch, augment_generator, lr)
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
            **({"processes": world.size} if world.size > 1 else {}),
            **extra,
        }
        history.append(metrics)
        timing = {
            "epoch": epoch + 1,
            "seconds": round(seconds, 3),
            "views_per_second": round(2 * steps_per_epoch * batch_size / seconds, 1),
        }
        done = epoch + 1
        if done % opt_config.checkpoint_every == 0 or done == opt_config.epochs:
            augment_states = distributed.all_gather_objects(augment_generator.get_state().cpu())
            if world.is_main:
                torch_save(
                    checkpoint_path,
                    {
                        "epoch": done,
                        "model": _state_dict(model),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                        "augment_generators": augment_states if world.size > 1 else None,
                        "history": history,
                        "settings": settings,
                        "seed": seed,
                        "runtime": asdict(runtime),
                    },
                )
            distributed.barrier()
        if world.is_main:
            _write_log(out_dir / LOG_NAME, history)
            _append_timing(out_dir / TIMING_NAME, timing)
        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.3g}")
        bar.update(1)
        log.info(
            "epoch %d/%d loss %.4f lr %.4g %.1fs", done, opt_config.epochs, mean_loss, lr, seconds
        )
        if on_epoch_end is not None:
            on_epoch_end(done, {**metrics, **timing})
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
    if world.is_main:
        torch_save(out_dir / MODEL_NAME, {**summary, "state_dict": _state_dict(model)})
        _write_log(out_dir / LOG_NAME, history)
    distributed.barrier()
    return summary
