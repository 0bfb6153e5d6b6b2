"""Augmentation alone, images per second: the batched augmentation against the per-image PIL
pipeline, and BCL's RandAugment in its two schedules against torchvision's per-image one."""

from __future__ import annotations

import functools
import time
from typing import Any

import torch
from PIL import Image
from torchvision import transforms

from sdclr.benchmark.config import BenchConfig
from sdclr.benchmark.reference import pil_transform
from sdclr.benchmark.timing import synthetic_images, timed
from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.data.augment.randaugment import RandAugmentConfig, rand_augment


def bench_augmentation(cfg: BenchConfig, device: torch.device) -> dict[str, float]:
    """Images per second: batched augmentation (device, CPU) and the per-image PIL pipeline.

    ``augment_rounds`` interleaved rounds (batched, then PIL, then again), each pipeline's best
    round reported -- as ``timeit`` does -- so that load from other processes on a shared
    machine biases neither side.
    """
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
            seconds = timed(
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
                seconds = timed(run, cfg.augment_batches, device)
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
