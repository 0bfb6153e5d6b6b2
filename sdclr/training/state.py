"""What one pretraining run holds (:class:`Training`, built once by the loop's setup) and its
learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from sdclr import distributed
from sdclr.methods import Method
from sdclr.models import ModelConfig
from sdclr.training.batches import step_sizes
from sdclr.training.config import PretrainConfig
from sdclr.training.step import Runtime, TrainStep


def warmup_cosine_lr(
    iteration: float, total: int, warmup: int, base_lr: float, final_lr: float
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


@dataclass
class Training:
    """Everything one pretraining run holds, built once by :func:`_setup`."""

    settings: dict[str, Any]  # the job's settings file: its identity (the checkpoint's)
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

    def lr(self, iteration: float) -> float:
        """The warm-up cosine learning rate of ``iteration`` (0-based, over the whole run)."""
        total = self.steps_per_epoch * self.config.epochs
        warmup = round(self.config.warmup_epochs * self.steps_per_epoch)
        return warmup_cosine_lr(iteration, total, warmup, self.config.lr, self.config.final_lr)

    def epoch_lr(self, epoch: int, step: int, steps: int) -> float:
        """The learning rate of step ``step`` of ``steps`` in epoch ``epoch``: ``lr(e S + s)``
        with S the pretraining set's steps per epoch; an epoch of another size (pool images
        added) advances the schedule by the same one epoch, ``lr(e S + s S / steps)``."""
        base = self.steps_per_epoch
        if steps == base:
            return self.lr(epoch * base + step)
        return self.lr(epoch * base + step * base / steps)
