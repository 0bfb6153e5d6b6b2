"""The contract every pretraining method follows, and the name -> class registry.

A method is a small class: it declares its hyperparameters as a dataclass, builds its model,
may act at the start of every epoch, and turns two augmented views of a batch into a loss.
Adding a method means one module in ``sdclr/methods/`` decorated with ``@register`` plus its
name under ``methods:`` in the config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from sdclr.models import ContrastiveModel, ModelConfig, build_model
from sdclr.settings import load, setting

METHODS: dict[str, type[Method]] = {}


class Method:
    """Base class: subclasses set ``name`` and ``Hyperparameters`` and implement ``loss``."""

    name: ClassVar[str]

    @dataclasses.dataclass(frozen=True)
    class Hyperparameters:
        """SimCLR's hyperparameters (config key ``methods.<run>.hyperparameters``)."""

        temperature: float = setting(0.2, doc="NT-Xent temperature.", exclusive_minimum=0)
        head_hidden_layers: int = setting(
            1, doc="Hidden Linear + BN + ReLU blocks of the projection head.", minimum=0
        )

    dual_bn: ClassVar[bool] = False

    def __init__(
        self, hyperparameters: dict[str, Any] | None = None, section: str = "hyperparameters"
    ) -> None:
        self.hparams = load(self.Hyperparameters, hyperparameters, section)

    def build_model(self, model_config: ModelConfig, in_channels: int) -> ContrastiveModel:
        """The network this method trains."""
        return build_model(
            model_config, in_channels, self.hparams.head_hidden_layers, dual_bn=self.dual_bn
        )

    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Called before every epoch (0-based); returns numbers worth logging."""
        return {}

    def loss(self, model: nn.Module, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch given its two augmented views."""
        raise NotImplementedError


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; an unknown name lists the known ones."""
    if name not in METHODS:
        raise ValueError(
            f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))} "
            "(add one as a module in sdclr/methods/ decorated with @register)"
        )
    return METHODS[name]


def create_method(
    name: str, hyperparameters: dict[str, Any] | None = None, section: str = "hyperparameters"
) -> Method:
    """Instantiate the method ``name`` with its hyperparameters (validated; errors name
    ``section``, the config key they came from)."""
    return get_method(name)(hyperparameters, section)
