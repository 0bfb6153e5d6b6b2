"""Pretraining methods, registered by name. Importing this package registers the built-ins."""

from sdclr.methods import sdclr as _sdclr  # noqa: F401  (registers "sdclr")
from sdclr.methods import simclr as _simclr  # noqa: F401  (registers "simclr")
from sdclr.methods.base import METHODS, Method, create_method, get_method, register
from sdclr.methods.losses import nt_xent

__all__ = ["METHODS", "Method", "create_method", "get_method", "register", "nt_xent"]
