"""The pipeline's own pretraining loop, timed (:func:`bench_loop`), and the operators one of
its steps dispatches (:func:`step_operator_counts`)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch._dynamo
from torch.profiler import ProfilerActivity, profile

from sdclr.benchmark.config import BenchConfig, build, compile_setting, method_spec
from sdclr.benchmark.timing import peak_gib, reset_peak, sync, synthetic_images
from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.torch_files import torch_load
from sdclr.training.config import PretrainConfig, PretrainJob
from sdclr.training.loop import CHECKPOINT_NAME, pretrain
from sdclr.training.step import TrainStep, resolve_runtime


def loop_settings(cfg: BenchConfig, method_name: str, epochs: int) -> dict[str, Any]:
    """A pretraining job's settings (what ``results/settings/<dataset>/pretrain/<m>.json``
    holds) for the benchmark's method and shape: the paper's optimiser and augmentation, and
    the method's extensions as the paper configs set them."""
    algorithm, hyper, extensions = method_spec(cfg, method_name)
    compile_value = compile_setting(cfg.compile)
    return {
        "dataset": "benchmark",
        "method": {
            "name": method_name,
            "algorithm": algorithm,
            "pretrain_set": "D_i",
            "hyperparameters": hyper,
            **({"extensions": extensions} if extensions else {}),
        },
        "model": {"width": cfg.width},
        "augmentation": {"crop_size": cfg.image_size},
        "pretrain": {
            "epochs": epochs,
            "batch_size": cfg.batch_size,
            "checkpoint_every": 10,
            "precision": cfg.precision,
            "channels_last": cfg.channels_last,
            "compile": compile_value,
        },
    }


def bench_loop(cfg: BenchConfig, method_name: str, device: torch.device) -> dict[str, Any]:
    """Whole epochs of :func:`sdclr.training.loop.pretrain`, the loop the pipeline runs: the
    method's per-epoch work (SDCLR's mask), every step, the epoch's loss read-back and the
    checkpoint writes, on synthetic images in a temporary run directory.

    The first ``loop_warmup_epochs`` epochs (compilation, cuDNN's kernel search) are timed
    apart; the projection is ``warm-up epochs + (epochs - warm-up) x steady epoch``. A compiled
    loop also reports the graphs compiled after each epoch and the graph breaks: a step that
    recompiles shows as a count that grows after the first epoch."""
    epochs = cfg.loop_warmup_epochs + cfg.loop_epochs
    settings = loop_settings(cfg, method_name, epochs)
    images = synthetic_images(cfg.dataset_size, cfg.image_size, cfg.seed)
    epochs_seen: list[dict[str, Any]] = []
    reset_peak(device)
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as run_dir:
        pretrain(
            PretrainJob.from_settings(settings),
            images,
            run_dir,
            cfg.seed,
            device,
            progress=False,
            on_epoch_end=lambda epoch, metrics: epochs_seen.append(metrics),
        )
        runtime = torch_load(Path(run_dir) / CHECKPOINT_NAME, "checkpoint")["runtime"]
    seconds = [epoch["seconds"] for epoch in epochs_seen]
    warmup, steady = seconds[: cfg.loop_warmup_epochs], seconds[cfg.loop_warmup_epochs :]
    epoch_seconds = sum(steady) / len(steady)
    views = 2 * cfg.dataset_size  # every image once per epoch, the partial batch included
    result: dict[str, Any] = {
        "epoch_seconds": epoch_seconds,
        "warmup_epoch_seconds": warmup,
        "step_seconds": epoch_seconds / cfg.steps_per_epoch,
        "views_per_second": views / epoch_seconds,
        "precision": runtime["precision"],
        "channels_last": runtime["channels_last"],
        "compile": runtime["compile"],
        "projected_run_hours": (sum(warmup) + (cfg.epochs - len(warmup)) * epoch_seconds) / 3600.0,
    }
    result["step_seconds_amortised"] = result["step_seconds"]  # the loop includes the mask
    if runtime["compile"]:
        result["compiled_graphs_per_epoch"] = [e["compiled_graphs"] for e in epochs_seen]
        result["graph_breaks"] = epochs_seen[-1]["graph_breaks"]
    peak = peak_gib(device)
    if peak is not None:
        result["peak_gpu_memory_gib"] = peak
    return result


def _operator_counts(step: TrainStep, batch: torch.Tensor, device: torch.device) -> dict[str, int]:
    """Operators one call of ``step`` dispatches on ``batch`` (after two warm-up calls, which
    compile where the step is compiled): every ``aten::`` op, the top-level ones (called from
    Python or from a compiled graph, not from inside another op), and on CUDA the kernels."""
    indices = torch.arange(batch.shape[0], device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(2):
        step(batch, indices, generator, 0.01)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step(batch, indices, generator, 0.01)
        sync(device)
    events = prof.events()
    ops = [e for e in events if e.name.startswith("aten::")]
    top = [e for e in ops if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    counts = {"aten_ops": len(ops), "top_level_aten_ops": len(top)}
    if device.type == "cuda":
        counts["cuda_kernels"] = sum(
            e.device_type == torch.autograd.DeviceType.CUDA for e in events
        )
    return counts


def step_operator_counts(
    cfg: BenchConfig, method_name: str, device: torch.device
) -> dict[str, dict[str, int]]:
    """Operators one step dispatches, on a fixed batch: ``before`` is the step as this
    pipeline ran it before the launch-cost work (eager, torch's default SGD: a for-loop over
    the parameters on a CPU); ``now`` the step ``pretrain`` runs here (foreach SGD, compiled
    where ``compile`` resolves to on: on CUDA by default); ``compiled`` the compiled step when
    ``count_compiled`` asks for it on a device where ``now`` is eager."""
    runtime = resolve_runtime(
        PretrainConfig(
            epochs=1,
            precision=cfg.precision,
            channels_last=cfg.channels_last,
            compile=compile_setting(cfg.compile),
        ),
        device,
    )
    runtime.set_arithmetic()
    variants = {
        "before": (None, dataclasses.replace(runtime, compile=False)),
        "now": (True, runtime),
    }
    if cfg.count_compiled and not runtime.compile:
        variants["compiled"] = (True, dataclasses.replace(runtime, compile=True))
    batch = synthetic_images(cfg.batch_size, cfg.image_size, cfg.seed).to(device)
    counts = {}
    for label, (foreach, variant) in variants.items():
        method, model, _ = build(cfg, method_name, device)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=foreach
        )
        method.setup(batch.shape[0], device, model)  # per-sample state (BCL) for these images
        method.begin_epoch(model, 0)
        step = TrainStep(
            method, model, optimizer, BatchAugment(AugmentConfig(cfg.image_size)), variant
        )
        counts[label] = {**_operator_counts(step, batch, device), "compile": variant.compile}
        torch._dynamo.reset()
    return counts
