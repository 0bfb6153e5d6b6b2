"""The GPU speeds a cost estimate assumes (``sdclr.pipeline.cost``): measured, from the JSON
of ``scripts/bench_pretrain.py --json``, or the stated defaults.

A speed is the pretraining loop's views per second per GPU for each algorithm (a view is
one augmented image: every image is two views per epoch; SDCLR's dense and pruned forward
passes are inside its figure), and for each other method the benchmark measured (``bcl_d``,
``sdclr_de``: the paper configs' entries of those names, extensions included), which prices a
run of a config entry of that name; and a forward-only images-per-second for probes, analyses and
selections, taken as :data:`FORWARD_PER_VIEW` times SimCLR's training speed (a training
view costs its forward and a backward about twice as long).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdclr.errors import InputError

#: The issue's targets for an H100-class GPU at the paper's CIFAR settings (ResNet-18, CIFAR
#: stem, batch 512, 32 px): defaults, not measurements.
DEFAULT_VIEWS_PER_SECOND = {"simclr": 110_000.0, "sdclr": 90_000.0}
DEFAULT_DEVICE = "an H100-class GPU"
#: Forward-only images per second per training view per second.
FORWARD_PER_VIEW = 3.0
#: The benchmark's model: ResNet-18 (CIFAR stem) of this width at this crop size.
DEFAULT_REFERENCE = (1.0, 32)


@dataclass(frozen=True)
class Speeds:
    """Views/s per algorithm (and per measured method), forward images/s, the model they were
    measured on, and where they come from."""

    views_per_second: dict[str, float]
    reference: tuple[float, int]  # (ResNet-18 width, crop size) of the benchmark
    device: str
    measured: bool
    notes: tuple[str, ...] = ()
    #: Views/s of the benchmark's composed methods, by their config entry's name (``bcl_d``).
    methods: dict[str, float] = field(default_factory=dict)

    @property
    def forward_images_per_second(self) -> float:
        return FORWARD_PER_VIEW * self.views_per_second["simclr"]

    def training(self, algorithm: str, method: str = "") -> float:
        """Views/s of a run of config entry ``method``: the benchmark's figure for a method of
        that name where it measured one, else its ``algorithm``'s (an algorithm the table
        lacks runs at SimCLR's speed)."""
        if method in self.methods:
            return self.methods[method]
        return self.views_per_second.get(algorithm, self.views_per_second["simclr"])

    def describe(self) -> str:
        """Where the speeds come from, in a few words."""
        if self.measured:
            return f"{self.device} (measured)"
        return f"{self.device} (default speeds, not measurements)"


def _fill(found: dict[str, float]) -> dict[str, float]:
    """Both algorithms' speeds: one not measured scaled from the other by the defaults'
    ratio."""
    simclr = found.get("simclr")
    if simclr is None:
        simclr = (
            found["sdclr"] * DEFAULT_VIEWS_PER_SECOND["simclr"] / DEFAULT_VIEWS_PER_SECOND["sdclr"]
        )
    sdclr = found.get(
        "sdclr", simclr * DEFAULT_VIEWS_PER_SECOND["sdclr"] / DEFAULT_VIEWS_PER_SECOND["simclr"]
    )
    return {"simclr": simclr, "sdclr": sdclr}


def default_speeds(views_per_second: float | None = None) -> Speeds:
    """The default table, or SimCLR at ``views_per_second`` (SDCLR at the defaults' ratio)."""
    if views_per_second is None:
        return Speeds(dict(DEFAULT_VIEWS_PER_SECOND), DEFAULT_REFERENCE, DEFAULT_DEVICE, False)
    if not (views_per_second > 0 and math.isfinite(views_per_second)):
        raise InputError(
            f"--gpu-views-per-second must be a positive number, got {views_per_second}"
        )
    note = "SDCLR's speed is SimCLR's given one times the defaults' ratio (90,000 / 110,000)"
    return Speeds(
        _fill({"simclr": views_per_second}), DEFAULT_REFERENCE, "the given speed", True, (note,)
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def read_benchmark(path: str | Path) -> Speeds:
    """The speeds of a ``bench_pretrain.py --json`` file; a file that is not one raises an
    ``InputError`` whose one line says why."""
    bad = f"{path} is not the JSON of scripts/bench_pretrain.py --json"
    try:
        results = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"benchmark file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{bad} ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    pretrain = results.get("pretrain") if isinstance(results, dict) else None
    if not isinstance(pretrain, dict):
        raise InputError(f"{bad} (no 'pretrain' results)")
    found = {}
    for name, entry in pretrain.items():
        speed = entry.get("loop", {}).get("views_per_second") if isinstance(entry, dict) else None
        if not _positive(speed):
            raise InputError(f"{bad} (pretrain.{name}.loop.views_per_second is {speed!r})")
        found[name] = float(speed)
    if not {"simclr", "sdclr"} & set(found):
        raise InputError(f"{bad} (neither simclr nor sdclr was measured)")
    settings = results.get("settings") or {}
    reference = (float(settings.get("width", 1.0)), int(settings.get("image_size", 32)))
    notes = tuple(
        f"{name} was not measured: its speed is the other's times the defaults' ratio"
        for name in ("simclr", "sdclr")
        if name not in found
    )
    device = str(results.get("device", "the benchmark's device"))
    methods = {name: speed for name, speed in found.items() if name not in ("simclr", "sdclr")}
    return Speeds(_fill(found), reference, device, True, notes, methods)
