"""What the benchmark runs (:class:`BenchConfig`, the paper's shape by default) and its
methods: SimCLR and SDCLR, and BCL-D and SDCLR + difficult pairs as the paper configs compose
them (``config/paper/cifar_base.yaml``'s ``bcl_d`` and ``sdclr_de``)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import nn

from sdclr.methods import Method, create_method
from sdclr.models import ModelConfig

CIFAR10_LT_IMAGES = 11_165  # |D_i| of CIFAR-10-LT (imbalance ratio 100)
PAPER_EPOCHS = 2000

#: The benchmark's methods: name -> (algorithm, extensions). The extensions are the paper
#: configs' (a test holds them equal to config/paper/cifar_base.yaml's entries of these names).
METHOD_SPECS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "simclr": ("simclr", {}),
    "sdclr": ("sdclr", {}),
    "bcl_d": ("sdclr", {"bcl": {"num_ops": 2, "min_magnitude": 5}}),
    "sdclr_de": (
        "sdclr",
        {
            "difficult_examples": {
                "margin": 0.1,
                "temperature_ratio": 0.5,
                "pos_high": 0.1,
                "pos_low": 0.9,
            }
        },
    ),
}
METHODS = tuple(METHOD_SPECS)
#: What the reference-style pipeline reproduces: the SimCLR and SDCLR reference code.
REFERENCE_METHODS = ("simclr", "sdclr")
DEFAULT_METHODS = ("simclr", "sdclr")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Benchmark settings; the defaults are the paper's (ResNet-18 CIFAR stem, batch 512)."""

    batch_size: int = 512
    image_size: int = 32
    width: float = 1.0
    steps: int = 20
    warmup: int = 5
    methods: tuple[str, ...] = DEFAULT_METHODS
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


def method_spec(cfg: BenchConfig, name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(algorithm, hyperparameters, extensions) of the benchmark's method ``name``."""
    algorithm, extensions = METHOD_SPECS[name]
    hyperparameters: dict[str, Any] = {"temperature": cfg.temperature}
    if algorithm == "sdclr":
        hyperparameters["prune_ratio"] = cfg.prune_ratio
    return algorithm, hyperparameters, extensions


def build(
    cfg: BenchConfig, name: str, device: torch.device
) -> tuple[Method, nn.Module, torch.optim.Optimizer]:
    """The method ``name``, its model on ``device`` (seeded) and an SGD optimiser."""
    algorithm, hyperparameters, extensions = method_spec(cfg, name)
    method = create_method(algorithm, hyperparameters, extensions=extensions or None)
    torch.manual_seed(cfg.seed)
    model = method.build_model(ModelConfig(width=cfg.width), in_channels=3).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    return method, model, optimizer


def compile_setting(value: str | bool) -> str | bool:
    """``pretrain.compile``'s value from the benchmark's flag (``auto``, ``true``, ``false``)."""
    return {"auto": "auto", "true": True, "false": False}[str(value).lower()]
