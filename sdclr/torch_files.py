"""Torch files: checkpoints, models and prepared datasets, written atomically
(``sdclr.io``) and read without running code.

They are written through a file handle, so the archive inside carries no file name
(identical objects give byte-identical files, so DVC and checksums see no change where there
is none). They are read with ``weights_only=True``: tensors, numbers, strings, lists and dicts
only, so a crafted file cannot run code.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch

from sdclr.errors import InputError
from sdclr.io import atomic_path


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
