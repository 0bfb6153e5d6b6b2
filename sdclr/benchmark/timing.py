"""Clock readings the device cannot run ahead of, peak GPU memory, synthetic images, and the
figures every timed pipeline shares (the projected run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from sdclr.benchmark.config import BenchConfig


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls, the device synchronised around."""
    sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - started) / repeats


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def synthetic_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 ``[n, 3, size, size]`` noise images (CPU), the shape of CIFAR's."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)


def projection(cfg: BenchConfig, step_seconds: float, mask_seconds: float) -> dict[str, float]:
    per_epoch = cfg.steps_per_epoch * step_seconds + mask_seconds
    return {
        "step_seconds_amortised": per_epoch / cfg.steps_per_epoch,
        "projected_run_hours": cfg.epochs * per_epoch / 3600.0,
    }


def complete(
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
    result.update(projection(cfg, step_seconds, mask_seconds))
    peak = peak_gib(device)
    if peak is not None:
        result["peak_gpu_memory_gib"] = peak
    return result
