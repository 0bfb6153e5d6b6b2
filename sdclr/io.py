"""File writing and reading: every output appears whole or not at all, and no file runs code.

A job killed mid-write (SLURM preemption, Ctrl-C, out of memory) must never leave a
truncated checkpoint or table behind, nor destroy the previous good copy. Every writer
here writes to a temporary file in the destination's directory and renames it into place,
which is atomic on POSIX file systems. The temporary file is created with the mode the
user's umask gives (group-readable on shared cluster storage where the umask says so), and a
termination signal that arrives meanwhile waits until the file is in place or removed
(``sdclr.signals.critical_section``).

Torch files are written through a file handle, so the archive inside carries no file name
(identical objects give byte-identical files, so DVC and checksums see no change where there
is none); a full disk is reported as "no space left on <path>". They are read with
``weights_only=True``: tensors, numbers, strings, lists and dicts only, so a crafted file
cannot run code.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

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


def _canonical(obj: Any) -> Any:
    """``obj`` rebuilt with fresh containers and interned strings, so its pickle depends on
    its values alone: pickle refers back to an object it has written when the same object
    recurs, so a checkpoint whose history was partly loaded from disk (after a resume) would
    otherwise differ in bytes from an uninterrupted run's."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_canonical(v) for v in obj)
    return obj


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` ``obj`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    The bytes depend on ``obj``'s values alone: equal objects always give the same file.
    """
    obj = _canonical(obj)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)  # to a handle, not a path: the archive names no file


def torch_load(path: str | os.PathLike, what: str = "file") -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU, with one-line errors naming the
    file for a missing, corrupt or unsafe one (one that holds objects that could run code)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    redo = "delete it and re-run the rule that writes it"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL (\S+) was not an allowed global", str(err))
        if unsafe is None:
            raise InputError(f"{what} {path} is corrupt or not a torch file; {redo}") from None
        raise InputError(
            f"{what} {path} holds a Python object ({unsafe.group(1)}) other than tensors, "
            f"numbers, strings, lists and dicts, and loading it could run code: refused. If "
            f"an older version of this pipeline wrote it, {redo}"
        ) from None
    except Exception as err:  # torch raises several types for a damaged file
        raise InputError(
            f"{what} {path} is corrupt or not a torch file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); {redo}"
        ) from None


def save_figure(path: str | os.PathLike, fig: Any, dpi: int = 150) -> None:
    """Save a matplotlib figure atomically (format from the suffix of ``path``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip("."))
