"""Atomic file writing: every output appears whole or not at all.

A job killed mid-write (SLURM preemption, Ctrl-C, out of memory) must never leave a
truncated checkpoint or table behind, nor destroy the previous good copy. Every writer
here writes to a temporary file in the destination's directory and renames it into place,
which is atomic on POSIX file systems.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that ``atomic_path`` left in ``directory`` when its process
    was killed (SIGKILL) mid-write; call it only where no other process is writing."""
    removed = []
    for stale in Path(directory).glob(".*.tmp"):
        stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, naming the file in the error when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); delete it and re-run its rule"
        ) from err


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def torch_load(path: str | os.PathLike, what: str = "file") -> Any:
    """``torch.load`` on the CPU with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for a damaged file
        raise ValueError(
            f"{what} {path} is corrupt or not a torch file ({type(err).__name__}: {err}); "
            "delete it and re-run the rule that writes it"
        ) from err


def save_figure(path: str | os.PathLike, fig: Any, dpi: int = 150) -> None:
    """Save a matplotlib figure atomically (format from the suffix of ``path``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip("."))


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
