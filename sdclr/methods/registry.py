"""The registries of methods and extensions, and the composition of a run's method from its
config entry: the method's class by name, its hyperparameters, then its extensions, each
checked against the method."""

from __future__ import annotations

from typing import Any

from sdclr.errors import ConfigError
from sdclr.methods.base import Extension, Method
from sdclr.registry import Registry
from sdclr.settings import load

METHODS: Registry[type[Method]] = Registry(
    "method", "methods", "sdclr/methods/", "register", instances=False
)
EXTENSIONS: Registry[type[Extension]] = Registry(
    "extension", "extensions", "sdclr/methods/", "register_extension", instances=False
)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    return METHODS.register(cls)


def register_extension(cls: type[Extension]) -> type[Extension]:
    """Class decorator adding an extension to the registry under ``cls.name``."""
    return EXTENSIONS.register(cls)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; an unknown name lists the known ones."""
    return METHODS.lookup(name)


def create_extension(
    name: str, values: dict[str, Any] | None, section: str, method: Method
) -> Extension:
    """The extension ``name`` with its settings (config key ``section.name``), checked
    against ``method``."""
    if name not in EXTENSIONS:
        raise ConfigError(
            f"{section}.{name}: unknown extension; known: {', '.join(sorted(EXTENSIONS))}"
        )
    cls = EXTENSIONS[name]
    extension = cls(load(cls.Settings, values, f"{section}.{name}"))
    extension.check(method, f"{section}.{name}")
    return extension


def create_method(
    name: str,
    hyperparameters: dict[str, Any] | None = None,
    section: str = "hyperparameters",
    extensions: dict[str, dict[str, Any]] | None = None,
) -> Method:
    """Instantiate the method ``name`` with its hyperparameters and extensions (validated;
    errors name ``section``, the config key the hyperparameters came from, and its run's
    key for the extensions)."""
    method = get_method(name)(hyperparameters, section)
    run = section.rsplit(".", 1)[0]
    method.extensions = [
        create_extension(key, values, run, method) for key, values in (extensions or {}).items()
    ]
    replacing = [e.name for e in method.extensions if e.replaces_loss]
    if len(replacing) > 1:
        raise ConfigError(
            f"{run}: {' and '.join(replacing)} both replace the contrastive loss; keep one"
        )
    return method
