"""File writing and reading: every output appears whole or not at all.

A job killed mid-write (SLURM preemption, Ctrl-C, out of memory) must never leave a
truncated checkpoint or table behind, nor destroy the previous good copy. Every writer
here writes to a temporary file in the destination's directory and renames it into place,
which is atomic on POSIX file systems. The temporary file is created with the mode the
user's umask gives (group-readable on shared cluster storage where the umask says so), and a
termination signal that arrives meanwhile waits until the file is in place or removed
(``sdclr.signals.critical_section``).

A full disk is reported as "no space left on <path>". Torch files (checkpoints, models) are
written and read by ``sdclr.torch_files`` on top of this module, which needs no torch: the
Snakefile imports it.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sdclr.errors import InputError, NoSpaceError
from sdclr.signals import critical_section

TEMPORARY_SUFFIX = ".tmp"


def _create_temporary(path: Path) -> Path:
    """A new empty file ``.<name>.<random>.tmp`` next to ``path``, mode 0666 minus the umask."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched; a full disk
    raises :class:`NoSpaceError` naming the directory.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with critical_section():
            tmp = _create_temporary(path)
            try:
                yield tmp
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    except (OSError, RuntimeError) as err:
        if isinstance(err, NoSpaceError) or not _is_no_space(err):
            raise
        raise NoSpaceError(
            f"no space left on {path.parent} while writing {path.name}; the previous "
            f"{path.name}, if any, is kept: free space and run again",
        ) from err


def _is_no_space(err: BaseException | None) -> bool:
    """Whether ``err`` or an error it was raised from is "no space left on device" (torch's
    writer reports a full disk as a RuntimeError raised while handling that OSError)."""
    while err is not None:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        err = err.__cause__ or err.__context__
    return False


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that ``atomic_path`` left in ``directory`` when its process
    was killed (SIGKILL) mid-write; call it only where no other process is writing."""
    removed = []
    for stale in Path(directory).glob(f".*{TEMPORARY_SUFFIX}"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file in the error when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(
            f"{path} is not valid JSON ({err}); delete it and re-run its rule"
        ) from err


def save_figure(path: str | os.PathLike, fig: Any, dpi: int = 150) -> None:
    """Save a matplotlib figure atomically (format from the suffix of ``path``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip("."))
