"""Pretraining methods, registered by name.

Importing this package imports every module in it, so a new method is one file here with a
class decorated by ``@register`` (an extension: ``@register_extension``); no other edit is
needed for the registry to know it.
"""

import importlib
import pkgutil

from sdclr.methods.base import Extension, Method
from sdclr.methods.losses import nt_xent
from sdclr.methods.registry import (
    EXTENSIONS,
    METHODS,
    create_method,
    get_method,
    register,
    register_extension,
)

_INFRASTRUCTURE = {"base", "losses", "registry"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _INFRASTRUCTURE and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "EXTENSIONS",
    "METHODS",
    "Extension",
    "Method",
    "create_method",
    "get_method",
    "nt_xent",
    "register",
    "register_extension",
]
