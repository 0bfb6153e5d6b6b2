"""Temperature schedules for NT-Xent (Kukleva, Böhle, Schiele, Kuehne, Rupprecht, "Temperature
Schedules for Self-Supervised Contrastive Methods on Long-Tail Data", ICLR 2023).

A cosine schedule of the NT-Xent temperature over epochs::

    t(e) = t_min + 0.5 * (t_max - t_min) * (1 + cos(pi * e / T))

with t_min = 0.1, t_max = 1.0, T = 200 (so t(T) = t_min, t(2T) = t_max: one cycle every 400
epochs). A high temperature spreads the loss over many negatives (group-wise,
instance discrimination weak), a low one concentrates it on the hardest (instance-wise); the
oscillation lets the long tail's classes form both kinds of structure.

Choices the paper leaves to us, written down:

* ``e`` is the epoch counted from 1, as the reference counts it (Annusha/temperature_schedules,
  ``train_simCLR.py``: ``for epoch in range(start_epoch, args.epochs + 1)`` with
  ``start_epoch = 1``, and ``tau`` computed from that ``epoch`` in every step): the first epoch
  trains at t(1), just below t_max. The temperature is the same for every step of an epoch
  (the reference recomputes it per step from the epoch, so it changes only between epochs);
  the train log gets a ``temperature`` column.
* It composes with any method whose loss has a temperature (SimCLR, SDCLR, and either with
  BCL); it replaces ``hyperparameters.temperature``, so setting both is a config error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from sdclr.errors import ConfigError
from sdclr.methods.base import Extension, Method
from sdclr.methods.registry import register_extension
from sdclr.settings import setting


def scheduled_temperature(epoch: float, t_min: float, t_max: float, period: float) -> float:
    """``t(e) = t_min + 0.5 (t_max - t_min) (1 + cos(pi e / T))`` with ``T = period``."""
    return t_min + 0.5 * (t_max - t_min) * (1.0 + math.cos(math.pi * epoch / period))


@register_extension
class TemperatureSchedule(Extension):
    """The NT-Xent temperature follows a cosine over epochs (config key
    ``temperature_schedule``)."""

    name = "temperature_schedule"

    @dataclasses.dataclass(frozen=True)
    class Settings:
        """A cosine schedule of the NT-Xent temperature (Kukleva et al., ICLR 2023)."""

        t_min: float = setting(0.1, doc="Lowest temperature (at e = T).", exclusive_minimum=0)
        t_max: float = setting(
            1.0,
            doc="Highest temperature (at e = 2T, 4T, ...; e counts from 1).",
            exclusive_minimum=0,
        )
        period: float = setting(
            200, doc="T: epochs from t_max down to t_min (a cycle is 2T).", exclusive_minimum=0
        )

    def check(self, method: Method, section: str) -> None:
        if method.temperature is None:
            raise ConfigError(f"{section}: method {method.name!r} has no temperature to schedule")
        if self.settings.t_min > self.settings.t_max:
            raise ConfigError(f"{section}: t_min {self.settings.t_min} exceeds t_max")

    @classmethod
    def check_entry(cls, entry: dict[str, Any], where: str) -> None:
        if "temperature" in (entry.get("hyperparameters") or {}):
            raise ConfigError(
                f"{where}: temperature_schedule sets the temperature of every epoch; remove "
                "hyperparameters.temperature (or the schedule)"
            )

    def on_epoch_start(self, method: Method, epoch: int) -> dict[str, Any]:
        s = self.settings  # ``epoch`` is 0-based; the reference's e counts from 1
        method.temperature = scheduled_temperature(epoch + 1, s.t_min, s.t_max, s.period)
        return {"temperature": round(method.temperature, 6)}
