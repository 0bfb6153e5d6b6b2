"""Pretraining throughput on this machine: the pipeline's own loop against a reference-style
pipeline, and what one step dispatches.

What is timed (CUDA is synchronised before each clock reading):

* **loop**: :func:`sdclr.training.loop.pretrain` itself, the loop every ``pretrain`` job runs, for
  ``loop_warmup_epochs + loop_epochs`` whole epochs on synthetic images in a temporary run
  directory: the method's per-epoch work (SDCLR's mask, ranked on the device), every step of
  :class:`sdclr.training.step.TrainStep` (the images as one uint8 tensor on the device, both
  views from one batched augmentation call, bf16 autocast, channels-last and compilation
  where the runtime resolves to them), the epoch's loss read-back and the checkpoint writes.
  The warm-up epochs (compilation, cuDNN's kernel search) are timed apart and counted in the
  projected run: ``warm-up epochs + (epochs - warm-up) x steady epoch``.
* **reference**: the reference implementation's structure -- per-image torchvision PIL
  transforms (RandomResizedCrop(32, scale=(0.1, 1), bicubic), flip, ColorJitter(0.4, 0.4,
  0.4, 0.1) p=0.8, grayscale p=0.2, ToTensor) in a ``DataLoader`` with worker processes (the
  reference's default of 10, or fewer CPUs), fp32,
  NT-Xent through ``exp`` / ``masked_select``, the loss read back every step (its running
  average), and for SDCLR the pruned branch run twice per step (once without gradient for the
  dense branch's loss, once with it), two backward passes; the per-epoch mask from a numpy
  sort of all conv weights copied to the CPU, timed separately and amortised; its steps are
  timed after ``warmup`` untimed ones, and its projection is ``epochs x (steps_per_epoch x
  step time + mask time)``.
* **operators per step**: ``torch.profiler`` over one step on a fixed batch -- the step as it
  ran before the launch-cost work (eager, torch's default SGD) and as it runs now (foreach
  SGD, compiled where ``compile`` resolves to on), and on CUDA the kernels launched.
* **augmentation alone**: :class:`BatchAugment` on the device (when it is CUDA) and on the
  CPU against the per-image PIL pipeline in one process, images per second.
* **RandAugment alone**: BCL's RandAugment (k = 1 and 2 ops, every op applied) on the device
  in its grouped and all-ops schedules against torchvision's per-image PIL ``RandAugment``,
  images per second (``scripts/bench_randaugment.py`` runs only this part).

Images are synthetic uint8 of the paper's shape (32 x 32 RGB); ``steps_per_epoch =
ceil(dataset_size / batch_size)``, the last partial step kept as training keeps it
(CIFAR-10-LT's ``D_i``: 11,165 / 512 -> 22, the last of 413 images).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn

from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.device import pick_device, set_fp32_arithmetic
from sdclr.methods import create_method
from sdclr.models import ModelConfig, masked_convs, set_branch
from sdclr.training.config import PretrainConfig, PretrainJob
from sdclr.training.loop import pretrain
from sdclr.training.step import TrainStep, resolve_runtime

CIFAR10_LT_IMAGES = 11_165  # |D_i| of CIFAR-10-LT (imbalance ratio 100)
PAPER_EPOCHS = 2000
METHODS = ("simclr", "sdclr")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Benchmark settings; the defaults are the paper's (ResNet-18 CIFAR stem, batch 512)."""

    batch_size: int = 512
    image_size: int = 32
    width: float = 1.0
    steps: int = 20
    warmup: int = 5
    methods: tuple[str, ...] = METHODS
    reference: bool = True
    workers: int | None = None  # reference DataLoader workers; None: min(10, CPUs)
    dataset_size: int = CIFAR10_LT_IMAGES
    epochs: int = PAPER_EPOCHS
    precision: str = "auto"
    channels_last: str | bool = "auto"
    compile: str | bool = "auto"  # as pretrain.compile: auto = on CUDA
    loop_epochs: int = 3  # timed epochs of the real loop
    loop_warmup_epochs: int = 1  # its first epochs, timed apart (compilation, kernel search)
    count_compiled: bool = False  # also count a compiled step's operators where it is eager
    augment_batch_size: int = 512
    augment_batches: int = 5
    augment_rounds: int = 3
    pil_images: int = 512
    mask_repeats: int = 3
    temperature: float = 0.2
    prune_ratio: float = 0.9
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; the benchmark knows {METHODS}")
        for name in (
            "batch_size",
            "image_size",
            "steps",
            "augment_batch_size",
            "augment_batches",
            "augment_rounds",
            "pil_images",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (NT-Xent needs negatives)")
        if self.warmup < 0 or self.mask_repeats < 1:
            raise ValueError("warmup must be >= 0 and mask_repeats >= 1")
        if self.loop_epochs < 1 or self.loop_warmup_epochs < 0:
            raise ValueError("loop_epochs must be >= 1 and loop_warmup_epochs >= 0")
        if self.dataset_size < self.batch_size:
            raise ValueError("dataset_size must be at least batch_size")

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.dataset_size // self.batch_size)

    @property
    def num_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        return max(1, min(10, os.cpu_count() or 1))  # the reference's default is 10


# --------------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls, the device synchronised around."""
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - started) / repeats


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def synthetic_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 ``[n, 3, size, size]`` noise images (CPU), the shape of CIFAR's."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)


# --------------------------------------------------------------------------------------------
# The reference-style pipeline
# --------------------------------------------------------------------------------------------


def pil_transform(size: int):
    """The reference's per-image torchvision pipeline (PIL in, float tensor out)."""
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode

    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.1, 1.0), interpolation=InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
        ]
    )


class PILPairs(torch.utils.data.Dataset):
    """Two independently transformed PIL views of each image (the reference's dataset)."""

    def __init__(self, images_hwc: np.ndarray, size: int) -> None:
        self.images = images_hwc
        self.transform = pil_transform(size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        image = Image.fromarray(self.images[index])
        return self.transform(image), self.transform(image)


def reference_nt_xent(x1: torch.Tensor, x2: torch.Tensor, t: float) -> torch.Tensor:
    """NT-Xent as the reference computes it: ``exp`` of the similarity matrix, the diagonal
    removed with ``masked_select`` (a data-dependent shape: it waits for the device)."""
    x1, x2 = F.normalize(x1, dim=1), F.normalize(x2, dim=1)
    batch = x1.size(0)
    out = torch.cat([x1, x2], dim=0)
    sim = torch.exp(torch.mm(out, out.t().contiguous()) / t)
    mask = (torch.ones_like(sim) - torch.eye(2 * batch, device=sim.device)).bool()
    sim = sim.masked_select(mask).view(2 * batch, -1)
    pos = torch.exp(torch.sum(x1 * x2, dim=-1) / t)
    pos = torch.cat([pos, pos], dim=0)
    return (-torch.log(pos / sim.sum(dim=-1))).mean()


@torch.no_grad()
def numpy_prune(model: nn.Module, ratio: float) -> int:
    """The reference's per-epoch mask: every conv weight copied to the CPU, ``|w|`` sorted with
    numpy, the ``ceil(ratio * N)``-th smallest as the threshold, masks ``|w| > threshold``
    copied back to the device. Returns the number masked."""
    convs = masked_convs(model)
    weights = [conv.weight.detach().cpu().numpy() for conv in convs]
    magnitudes = np.concatenate([np.abs(w).ravel() for w in weights])
    k = math.ceil(ratio * magnitudes.size - 1e-9)
    if k == 0:
        for conv in convs:
            conv.weight_mask.fill_(1.0)
        return 0
    threshold = np.sort(magnitudes)[k - 1]
    masked = 0
    for conv, w in zip(convs, weights, strict=True):
        keep = (np.abs(w) > threshold).astype(np.float32)
        masked += int(keep.size - keep.sum())
        conv.weight_mask.copy_(torch.from_numpy(keep))
    return masked


def _reference_step(
    method_name: str, model: nn.Module, optimizer: torch.optim.Optimizer, t: float
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    def simclr(v1: torch.Tensor, v2: torch.Tensor) -> float:
        features = model(torch.cat([v1, v2]))
        f1, f2 = features.chunk(2)
        loss = reference_nt_xent(f1, f2, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.item())  # the reference's running average reads it every step

    def sdclr(v1: torch.Tensor, v2: torch.Tensor) -> float:
        # Pruned branch without gradient, for the dense branch's loss.
        with torch.no_grad():
            set_branch(model, pruned=True)
            f2_no_grad = model(v2).detach()
        set_branch(model, pruned=False)
        f1 = model(v1)
        loss = reference_nt_xent(f1, f2_no_grad, t)
        optimizer.zero_grad()
        loss.backward()
        # The pruned branch again, now with gradient, against the detached dense features.
        set_branch(model, pruned=True)
        f2 = model(v2)
        loss = reference_nt_xent(f1.detach(), f2, t)
        loss.backward()
        set_branch(model, pruned=False)
        optimizer.step()
        return float(loss.item())

    return sdclr if method_name == "sdclr" else simclr


# --------------------------------------------------------------------------------------------
# The benchmarks
# --------------------------------------------------------------------------------------------


def _build(cfg: BenchConfig, method_name: str, device: torch.device):
    hyper: dict[str, Any] = {"temperature": cfg.temperature}
    if method_name == "sdclr":
        hyper["prune_ratio"] = cfg.prune_ratio
    method = create_method(method_name, hyper)
    torch.manual_seed(cfg.seed)
    model = method.build_model(ModelConfig(width=cfg.width), in_channels=3).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    return method, model, optimizer


def _projection(cfg: BenchConfig, step_seconds: float, mask_seconds: float) -> dict[str, float]:
    per_epoch = cfg.steps_per_epoch * step_seconds + mask_seconds
    return {
        "step_seconds_amortised": per_epoch / cfg.steps_per_epoch,
        "projected_run_hours": cfg.epochs * per_epoch / 3600.0,
    }


def _compile_setting(value: str | bool) -> str | bool:
    """``pretrain.compile``'s value from the benchmark's flag (``auto``, ``true``, ``false``)."""
    return {"auto": "auto", "true": True, "false": False}[str(value).lower()]


def loop_settings(cfg: BenchConfig, method_name: str, epochs: int) -> dict[str, Any]:
    """A pretraining job's settings (what ``results/settings/<dataset>/pretrain/<m>.json``
    holds) for the benchmark's method and shape: the paper's optimiser and augmentation."""
    hyper: dict[str, Any] = {"temperature": cfg.temperature}
    if method_name == "sdclr":
        hyper["prune_ratio"] = cfg.prune_ratio
    compile_setting = _compile_setting(cfg.compile)
    return {
        "dataset": "benchmark",
        "method": {
            "name": method_name,
            "algorithm": method_name,
            "pretrain_set": "D_i",
            "hyperparameters": hyper,
        },
        "model": {"width": cfg.width},
        "augmentation": {"crop_size": cfg.image_size},
        "pretrain": {
            "epochs": epochs,
            "batch_size": cfg.batch_size,
            "checkpoint_every": 10,
            "precision": cfg.precision,
            "channels_last": cfg.channels_last,
            "compile": compile_setting,
        },
    }


def bench_loop(cfg: BenchConfig, method_name: str, device: torch.device) -> dict[str, Any]:
    """Whole epochs of :func:`sdclr.training.loop.pretrain`, the loop the pipeline runs: the
    method's
    per-epoch work (SDCLR's mask), every step, the epoch's loss read-back and the
    checkpoint writes, on synthetic images in a temporary run directory.

    The first ``loop_warmup_epochs`` epochs (compilation, cuDNN's kernel search) are timed
    apart; the projection is ``warm-up epochs + (epochs - warm-up) x steady epoch``."""
    epochs = cfg.loop_warmup_epochs + cfg.loop_epochs
    settings = loop_settings(cfg, method_name, epochs)
    images = synthetic_images(cfg.dataset_size, cfg.image_size, cfg.seed)
    seconds: list[float] = []
    _reset_peak(device)
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as run_dir:
        pretrain(
            PretrainJob.from_settings(settings),
            images,
            run_dir,
            cfg.seed,
            device,
            progress=False,
            on_epoch_end=lambda epoch, metrics: seconds.append(metrics["seconds"]),
        )
        runtime = torch.load(Path(run_dir) / "resume.pt", weights_only=True)["runtime"]
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
    peak = _peak_gib(device)
    if peak is not None:
        result["peak_gpu_memory_gib"] = peak
    return result


def _complete(
    result: dict[str, Any],
    cfg: BenchConfig,
    method_name: str,
    step_seconds: float,
    mask_seconds: float,
    device: torch.device,
) -> dict[str, Any]:
    """Add what every pipeline's figures share: the prune-mask time (SDCLR), the projected
    2,000-epoch run, and the peak GPU memory (CUDA)."""
    if method_name == "sdclr":
        result["mask_seconds_per_epoch"] = mask_seconds
    result.update(_projection(cfg, step_seconds, mask_seconds))
    peak = _peak_gib(device)
    if peak is not None:
        result["peak_gpu_memory_gib"] = peak
    return result


def _operator_counts(step: TrainStep, batch: torch.Tensor, device: torch.device) -> dict[str, int]:
    """Operators one call of ``step`` dispatches on ``batch`` (after two warm-up calls, which
    compile where the step is compiled): every ``aten::`` op, the top-level ones (called from
    Python or from a compiled graph, not from inside another op), and on CUDA the kernels."""
    from torch.profiler import ProfilerActivity, profile

    indices = torch.arange(batch.shape[0], device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(2):
        step(batch, indices, generator, 0.01)
    _sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step(batch, indices, generator, 0.01)
        _sync(device)
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
            compile=_compile_setting(cfg.compile),
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
        method, model, _ = _build(cfg, method_name, device)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=foreach
        )
        method.begin_epoch(model, 0)
        step = TrainStep(
            method, model, optimizer, BatchAugment(AugmentConfig(cfg.image_size)), variant
        )
        counts[label] = {**_operator_counts(step, batch, device), "compile": variant.compile}
        torch._dynamo.reset()
    return counts


def bench_reference(cfg: BenchConfig, method_name: str, device: torch.device) -> dict[str, Any]:
    """Steady-state steps of the reference-style pipeline (see the module docstring)."""
    set_fp32_arithmetic(conv_tf32=True, matmul_tf32=False)  # PyTorch's defaults, as it runs
    method, model, optimizer = _build(cfg, method_name, device)
    images = synthetic_images(cfg.dataset_size, cfg.image_size, cfg.seed)
    dataset = PILPairs(images.permute(0, 2, 3, 1).contiguous().numpy(), cfg.image_size)
    total = cfg.warmup + cfg.steps
    sampler = torch.utils.data.RandomSampler(
        dataset,
        num_samples=cfg.batch_size * total,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    step = _reference_step(method_name, model, optimizer, cfg.temperature)
    _reset_peak(device)
    mask_seconds = 0.0
    if method_name == "sdclr":
        numpy_prune(model, cfg.prune_ratio)
        mask_seconds = _timed(lambda: numpy_prune(model, cfg.prune_ratio), cfg.mask_repeats, device)
    batches = iter(loader)
    started = 0.0
    for i in range(total):
        if i == cfg.warmup:
            _sync(device)
            started = time.perf_counter()
        v1, v2 = next(batches)
        step(v1.to(device, non_blocking=True), v2.to(device, non_blocking=True))
    _sync(device)
    step_seconds = (time.perf_counter() - started) / cfg.steps
    del batches, loader
    result: dict[str, Any] = {
        "step_seconds": step_seconds,
        "views_per_second": 2 * cfg.batch_size / step_seconds,
        "precision": "fp32",
        "workers": cfg.num_workers,
    }
    return _complete(result, cfg, method_name, step_seconds, mask_seconds, device)


def bench_augmentation(cfg: BenchConfig, device: torch.device) -> dict[str, float]:
    """Images per second: batched augmentation (device, CPU) and the per-image PIL pipeline.

    ``augment_rounds`` interleaved rounds (batched, then PIL, then again), each pipeline's best
    round reported -- as ``timeit`` does -- so that load from other processes on a shared
    machine biases neither side.
    """
    from PIL import Image

    augment = BatchAugment(AugmentConfig(cfg.image_size))
    batch_size = cfg.augment_batch_size
    images = synthetic_images(batch_size, cfg.image_size, cfg.seed)
    devices = [device] if device.type == "cpu" else [device, torch.device("cpu")]
    batches = {dev: images.to(dev) for dev in devices}
    generators = {dev: torch.Generator(device=dev).manual_seed(cfg.seed) for dev in devices}
    transform = pil_transform(cfg.image_size)
    hwc = images.permute(0, 2, 3, 1).numpy()
    pils = [Image.fromarray(hwc[i % len(hwc)]) for i in range(cfg.pil_images)]
    for dev in devices:  # warm-up: weight tables, kernels, allocator
        for _ in range(2):
            augment(batches[dev], generators[dev])
    for image in pils[: min(16, len(pils))]:
        transform(image)

    best: dict[str, float] = {}
    for _ in range(cfg.augment_rounds):
        for dev in devices:
            seconds = _timed(
                lambda d=dev: augment(batches[d], generators[d]), cfg.augment_batches, dev
            )
            key = f"batched_{dev.type}_images_per_second"
            best[key] = max(best.get(key, 0.0), batch_size / seconds)
        started = time.perf_counter()
        for image in pils:
            transform(image)
        rate = cfg.pil_images / (time.perf_counter() - started)
        key = "pil_per_image_images_per_second"
        best[key] = max(best.get(key, 0.0), rate)
    for dev in devices:
        best[f"batched_{dev.type}_vs_pil"] = (
            best[f"batched_{dev.type}_images_per_second"] / best["pil_per_image_images_per_second"]
        )
    return best


def bench_randaugment(cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    """Images per second of BCL's RandAugment alone with k = 1 (BCL-I) and k = 2 (BCL-D) ops,
    every op applied (w = 1), in both schedules on the device -- ``grouped`` (each op family
    only on the samples that drew it; the CPU default) and ``all_ops`` (every op on the whole
    batch, masked; the default on other devices) -- against torchvision's per-image PIL
    ``RandAugment(num_ops=k)``; best of ``augment_rounds`` interleaved rounds each. The
    top-level ``batched_*`` figures are k = 2 in the device's default schedule."""
    from PIL import Image
    from torchvision import transforms

    from sdclr.data.augment.randaugment import RandAugmentConfig, rand_augment

    images = synthetic_images(cfg.augment_batch_size, cfg.image_size, cfg.seed)
    views = images.to(device).float().div_(255)
    weights = torch.ones(views.shape[0], device=device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    hwc = images.permute(0, 2, 3, 1).numpy()
    pils = [Image.fromarray(hwc[i % len(hwc)]) for i in range(cfg.pil_images)]
    result: dict[str, Any] = {}
    for k, min_magnitude in ((1, 10.0), (2, 5.0)):
        config = RandAugmentConfig(num_ops=k, min_magnitude=min_magnitude)
        pil = transforms.RandAugment(num_ops=k, magnitude=9)
        schedules = {
            name: functools.partial(rand_augment, views, weights, config, generator, None, grouped)
            for name, grouped in (("all_ops", False), ("grouped", True))
        }
        for run in schedules.values():  # warm-up
            run()
        best = dict.fromkeys(("pil", *schedules), 0.0)
        for _ in range(cfg.augment_rounds):
            started = time.perf_counter()
            for image in pils:
                pil(image)
            best["pil"] = max(best["pil"], cfg.pil_images / (time.perf_counter() - started))
            for name, run in schedules.items():
                seconds = _timed(run, cfg.augment_batches, device)
                best[name] = max(best[name], views.shape[0] / seconds)
        entry = {f"{name}_images_per_second": rate for name, rate in best.items()}
        for name in schedules:
            entry[f"{name}_vs_pil"] = best[name] / best["pil"]
        result[f"k{k}"] = entry
    default = "grouped" if device.type == "cpu" else "all_ops"
    k2 = result["k2"]
    return {
        "batched_images_per_second": k2[f"{default}_images_per_second"],
        "pil_per_image_images_per_second": k2["pil_images_per_second"],
        "batched_vs_pil": k2[f"{default}_vs_pil"],
        "default_schedule": default,
        **result,
    }


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Run every part on the device ``cfg.device`` resolves to; return the nested results."""
    device = pick_device(cfg.device)
    info: dict[str, Any] = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "settings": dataclasses.asdict(cfg),
        "steps_per_epoch": cfg.steps_per_epoch,
    }
    info["augmentation"] = bench_augmentation(cfg, device)
    info["randaugment"] = bench_randaugment(cfg, device)
    pretrain: dict[str, Any] = {}
    for name in cfg.methods:
        entry: dict[str, Any] = {"loop": bench_loop(cfg, name, device)}
        if cfg.reference:
            entry["reference"] = bench_reference(cfg, name, device)
            entry["speedup"] = (
                entry["loop"]["views_per_second"] / entry["reference"]["views_per_second"]
            )
            entry["speedup_amortised"] = (
                entry["reference"]["step_seconds_amortised"]
                / entry["loop"]["step_seconds_amortised"]
            )
        entry["operators_per_step"] = step_operator_counts(cfg, name, device)
        pretrain[name] = entry
    info["pretrain"] = pretrain
    return info


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _hours(hours: float) -> str:
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:.1f} h"


def _loop_lines(name: str, r: dict[str, Any], s: dict[str, Any]) -> list[str]:
    warmup = ", ".join(f"{x:.1f}" for x in r["warmup_epoch_seconds"]) or "none"
    line = (
        f"  {name:<6} {'loop':<9} {r['views_per_second']:10,.0f} views/s  "
        f"{r['step_seconds'] * 1e3:9.1f} ms/step  ({r['precision']}, channels_last "
        f"{r['channels_last']}, compile {r['compile']}; the pretrain loop, "
        f"{s['loop_epochs']} epochs after warm-up epochs of {warmup} s)"
    )
    if "peak_gpu_memory_gib" in r:
        line += f"  peak GPU memory {r['peak_gpu_memory_gib']:.2f} GiB"
    return [line]


def _reference_lines(name: str, r: dict[str, Any]) -> list[str]:
    line = (
        f"  {name:<6} {'reference':<9} {r['views_per_second']:10,.0f} views/s  "
        f"{r['step_seconds'] * 1e3:9.1f} ms/step  (fp32, PIL DataLoader x{r['workers']} workers)"
    )
    if "peak_gpu_memory_gib" in r:
        line += f"  peak GPU memory {r['peak_gpu_memory_gib']:.2f} GiB"
    lines = [line]
    if "mask_seconds_per_epoch" in r:
        lines.append(
            f"  {'':<6} {'':<9} prune mask {r['mask_seconds_per_epoch'] * 1e3:.1f} ms/epoch "
            f"(numpy sort on the CPU), amortised {r['step_seconds_amortised'] * 1e3:.1f} ms/step"
        )
    return lines


def randaugment_lines(ra: dict[str, Any], s: dict[str, Any]) -> list[str]:
    """The table of :func:`bench_randaugment`'s results (settings ``s``)."""
    lines = [
        f"BCL's RandAugment alone (every drawn op applied; batch {s['augment_batch_size']}, "
        f"{s['image_size']} px), images/s:",
        f"  {'ops':<6}{'per-image PIL':>15}{'all-ops batched':>24}{'grouped batched':>24}",
    ]
    for k in (1, 2):
        r = ra[f"k{k}"]
        cells = [
            f"{r[f'{name}_images_per_second']:,.0f} ({r[f'{name}_vs_pil']:.1f}x PIL)"
            for name in ("all_ops", "grouped")
        ]
        lines.append(
            f"  {f'k = {k}':<6}{r['pil_images_per_second']:>15,.0f}{cells[0]:>24}{cells[1]:>24}"
        )
    lines.append(
        f"  (torchvision RandAugment(num_ops=k) per image for PIL; {ra['default_schedule']} is "
        f"this device's default; best of {s['augment_rounds']} interleaved rounds each)"
    )
    return lines


def format_results(results: dict[str, Any]) -> str:
    """Human-readable lines of :func:`run_benchmark`'s results."""
    s = results["settings"]
    lines = [
        f"device: {results['device']}, torch {results['torch']}, "
        f"{results['cpu_threads']} CPU threads",
        f"ResNet-18 (CIFAR stem, width {s['width']}), batch {s['batch_size']}, "
        f"{s['image_size']} px; {s['warmup']} warm-up + {s['steps']} timed steps; "
        f"run = {s['epochs']} epochs x {results['steps_per_epoch']} steps "
        f"({s['dataset_size']} images)",
        "",
        f"augmentation alone (batch {s['augment_batch_size']}, {s['image_size']} px), images/s:",
    ]
    aug = results["augmentation"]
    pil = aug["pil_per_image_images_per_second"]
    for key, value in aug.items():
        if key.startswith("batched_") and key.endswith("_images_per_second"):
            dev = key.removeprefix("batched_").removesuffix("_images_per_second")
            ratio = aug[f"batched_{dev}_vs_pil"]
            lines.append(f"  batched on {dev:<5} {value:12,.0f}   ({ratio:.1f}x PIL)")
    lines.append(f"  per-image PIL    {pil:12,.0f}   (one process)")
    lines.append(f"  (best of {s['augment_rounds']} interleaved rounds each)")
    if "randaugment" in results:
        lines += randaugment_lines(results["randaugment"], s)
    lines += ["", "pretraining (views/s = 2 x batch / step time):"]
    for name, entry in results["pretrain"].items():
        lines += _loop_lines(name, entry["loop"], s)
        if "reference" in entry:
            lines += _reference_lines(name, entry["reference"])
            lines.append(
                f"  {name:<6} real loop / reference: {entry['speedup']:.1f}x views/s "
                f"({entry['speedup_amortised']:.1f}x with the reference's per-epoch mask)"
            )
        runs = [
            f"{kind} {_hours(entry[kind]['projected_run_hours'])}"
            for kind in ("loop", "reference")
            if kind in entry
        ]
        lines.append(
            f"  {name:<6} projected {s['epochs']}-epoch run "
            f"({results['steps_per_epoch']} steps/epoch): " + ", ".join(runs)
        )
        for label, counts in entry["operators_per_step"].items():
            kernels = f", {counts['cuda_kernels']} CUDA kernels" if "cuda_kernels" in counts else ""
            lines.append(
                f"  {name:<6} operators per step, {label:<8} {counts['aten_ops']:6d} aten ops, "
                f"{counts['top_level_aten_ops']:5d} top-level{kernels} "
                f"(compile {counts['compile']})"
            )
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
