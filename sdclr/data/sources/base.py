"""The contract of a dataset source, and the name -> source registry.

A source reads one raw dataset from disk (downloading it where it can) into an
:class:`~sdclr.data.image_dataset.ImageDataset`. It declares its config keys besides ``name``
(``Settings``, a settings dataclass: the schema and the validation come from it) and, when it
knows them before loading, its classes and training images per class (``geometry``, which lets
the config check a batch against the long-tail sizes before any job runs). Adding one is a
module in ``sdclr/data/sources/`` with a class decorated by ``@register_source`` and its name
as a dataset's ``source: {name: ...}``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from sdclr.data.image_dataset import ImageDataset
from sdclr.registry import Registry
from sdclr.settings import load

SOURCES: Registry[Source] = Registry(
    "dataset source", "sources", "sdclr/data/sources/", "register_source"
)


class Source:
    """Base class: subclasses set ``name`` (and ``Settings``, ``geometry``) and ``load``."""

    name: ClassVar[str]
    #: (classes, training images per class) when known before loading, else None.
    geometry: ClassVar[tuple[int, int] | None] = None

    @dataclasses.dataclass(frozen=True)
    class Settings:
        pass

    def settings(self, source: dict[str, Any], section: str = "source") -> Any:
        """Its settings from a dataset's ``source`` entry (``name`` aside), validated."""
        return load(self.Settings, {k: v for k, v in source.items() if k != "name"}, section)

    def load(self, settings: Any, root: Path, download: bool) -> ImageDataset:
        """The dataset; raw files live (or are fetched) under ``root``."""
        raise NotImplementedError


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator adding a source (one instance) to the registry under ``cls.name``."""
    return SOURCES.register(cls)


def get_source(name: str) -> Source:
    """The source registered as ``name``; an unknown name lists the known ones."""
    return SOURCES.lookup(name)
