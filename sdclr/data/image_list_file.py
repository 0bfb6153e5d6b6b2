"""ImageNet-style list files: one ``relative/path label`` line per image. Read by the
``image_list`` dataset source and by the reference splits, which name images by such lists
(kept out of the sources package so that reading a list loads no dataset reader)."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def read_image_list(path: str | os.PathLike) -> tuple[list[str], torch.Tensor]:
    """Parse a list file of ``relative/path label`` lines; blank lines are skipped.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and
    line number for a malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image list {path} does not exist")
    paths: list[str] = []
    labels: list[int] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            label = None
            if len(parts) == 2:
                try:
                    label = int(parts[1])
                except ValueError:
                    label = None
            if label is None or label < 0:
                raise ValueError(
                    f"{path}, line {number}: expected 'relative/path non-negative-integer-label', "
                    f"got {line.rstrip()!r}"
                )
            paths.append(parts[0])
            labels.append(label)
    if not paths:
        raise ValueError(f"image list {path} has no entries")
    return paths, torch.tensor(labels, dtype=torch.int64)
