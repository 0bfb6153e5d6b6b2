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

The methods (``--methods``): ``simclr`` and ``sdclr``, and ``bcl_d`` (SDCLR + BCL, k = 2,
m_min = 5) and ``sdclr_de`` (SDCLR + margin and temperature scaling of difficult pairs), each
with the extensions of the paper config's entry of that name. The loop and the operator counts
run every method; the reference-style pipeline only SimCLR and SDCLR, the reference code that
exists for it. ``scripts/bench_pretrain.py`` is the command; ``make cost BENCHMARK=<its JSON>``
prices a config's jobs at the loop's measured views/s.

Images are synthetic uint8 of the paper's shape (32 x 32 RGB); ``steps_per_epoch =
ceil(dataset_size / batch_size)``, the last partial step kept as training keeps it
(CIFAR-10-LT's ``D_i``: 11,165 / 512 -> 22, the last of 413 images).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from sdclr.benchmark.augmentation import bench_augmentation, bench_randaugment
from sdclr.benchmark.config import (
    DEFAULT_METHODS,
    METHOD_SPECS,
    METHODS,
    REFERENCE_METHODS,
    BenchConfig,
)
from sdclr.benchmark.loop import bench_loop, loop_settings, step_operator_counts
from sdclr.benchmark.reference import bench_reference, numpy_prune, reference_nt_xent
from sdclr.benchmark.report import (
    describe_machine,
    format_results,
    randaugment_lines,
    write_results,
)
from sdclr.device import pick_device

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "METHOD_SPECS",
    "REFERENCE_METHODS",
    "BenchConfig",
    "bench_augmentation",
    "bench_loop",
    "bench_randaugment",
    "bench_reference",
    "format_results",
    "loop_settings",
    "numpy_prune",
    "randaugment_lines",
    "reference_nt_xent",
    "run_benchmark",
    "step_operator_counts",
    "write_results",
]


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Run every part on the device ``cfg.device`` resolves to; return the nested results."""
    device = pick_device(cfg.device)
    info: dict[str, Any] = {
        "device": describe_machine(device),
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
        if cfg.reference and name in REFERENCE_METHODS:
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
