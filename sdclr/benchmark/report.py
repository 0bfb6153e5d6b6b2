"""The benchmark's results as lines a person reads, and as a JSON file."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from sdclr.device import describe_device
from sdclr.io import write_json


def describe_machine(device: torch.device) -> str:
    """``cuda (<GPU name>)`` as outputs record it, or ``cpu (<cores> cores, <processor>)``."""
    if device.type == "cuda":
        return describe_device(device)
    return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def _hours(hours: float) -> str:
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:.1f} h"


def _loop_lines(name: str, r: dict[str, Any], s: dict[str, Any]) -> list[str]:
    warmup = ", ".join(f"{x:.1f}" for x in r["warmup_epoch_seconds"]) or "none"
    line = (
        f"  {name:<8} {'loop':<9} {r['views_per_second']:10,.0f} views/s  "
        f"{r['step_seconds'] * 1e3:9.1f} ms/step  ({r['precision']}, channels_last "
        f"{r['channels_last']}, compile {r['compile']}; the pretrain loop, "
        f"{s['loop_epochs']} epochs after warm-up epochs of {warmup} s)"
    )
    if "peak_gpu_memory_gib" in r:
        line += f"  peak GPU memory {r['peak_gpu_memory_gib']:.2f} GiB"
    lines = [line]
    if "compiled_graphs_per_epoch" in r:
        graphs, steps = r["compiled_graphs_per_epoch"], -(-s["dataset_size"] // s["batch_size"])
        lines.append(
            f"  {'':<8} {'':<9} graphs compiled by the end of each epoch {graphs}, "
            f"{r['graph_breaks']} graph breaks (a step recompiling every time would add "
            f"{steps} graphs an epoch)"
        )
    return lines


def _reference_lines(name: str, r: dict[str, Any]) -> list[str]:
    line = (
        f"  {name:<8} {'reference':<9} {r['views_per_second']:10,.0f} views/s  "
        f"{r['step_seconds'] * 1e3:9.1f} ms/step  (fp32, PIL DataLoader x{r['workers']} workers)"
    )
    if "peak_gpu_memory_gib" in r:
        line += f"  peak GPU memory {r['peak_gpu_memory_gib']:.2f} GiB"
    lines = [line]
    if "mask_seconds_per_epoch" in r:
        lines.append(
            f"  {'':<8} {'':<9} prune mask {r['mask_seconds_per_epoch'] * 1e3:.1f} ms/epoch "
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
                f"  {name:<8} real loop / reference: {entry['speedup']:.1f}x views/s "
                f"({entry['speedup_amortised']:.1f}x with the reference's per-epoch mask)"
            )
        runs = [
            f"{kind} {_hours(entry[kind]['projected_run_hours'])}"
            for kind in ("loop", "reference")
            if kind in entry
        ]
        lines.append(
            f"  {name:<8} projected {s['epochs']}-epoch run "
            f"({results['steps_per_epoch']} steps/epoch): " + ", ".join(runs)
        )
        for label, counts in entry["operators_per_step"].items():
            kernels = f", {counts['cuda_kernels']} CUDA kernels" if "cuda_kernels" in counts else ""
            lines.append(
                f"  {name:<8} operators per step, {label:<8} {counts['aten_ops']:6d} aten ops, "
                f"{counts['top_level_aten_ops']:5d} top-level{kernels} "
                f"(compile {counts['compile']})"
            )
    return "\n".join(lines)


def write_results(results: dict[str, Any], path: str | Path) -> None:
    """Write the results as JSON to ``path`` (atomically; its folder made first), the file
    ``make cost BENCHMARK=...`` reads."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(path, results)
