"""The errors a user can fix: a bad input file or config value, a full disk, a busy run.

Each carries a one-line message that names the file or config key and the fix. The scripts
print these messages without a traceback (``sdclr.pipeline.cli.main``); every other exception is a
bug
and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """A file or value the pipeline was given is wrong; the message names it and the fix."""


class ConfigError(InputError):
    """A configuration problem, with the key path and the fix in its message."""


class NoSpaceError(OSError):
    """The disk filled up while writing an output; the previous copy of it is kept."""


class RunDirectoryBusy(RuntimeError):
    """Another live process holds the lock on a run directory."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    InputError,
    FileNotFoundError,
    NoSpaceError,
    RunDirectoryBusy,
)
