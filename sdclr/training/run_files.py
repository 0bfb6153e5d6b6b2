"""The files of a pretraining run directory: their names, the per-epoch log, the wall-clock
timing log, and keeping a checkpoint that cannot be resumed. No torch: the workflow's path
templates (``sdclr.pipeline.paths``) take the names from here."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sdclr.io import write_text

CHECKPOINT_NAME = "resume.pt"  # the last checkpoint, resumed by a restarted job
MODEL_NAME = "model.pt"  # the final encoder and what rebuilds it
LOG_NAME = "train_log.csv"  # one row per finished epoch
TIMING_NAME = "timing.csv"  # wall-clock seconds of every epoch run (a log, not an output)
LIVE_NAME = "live.tsv"  # the live view, one row per finished epoch (sdclr.training.live)


def write_train_log(path: Path, history: list[dict[str, float]]) -> None:
    """Write the per-epoch rows of ``history`` as CSV, atomically."""
    buffer = io.StringIO()
    if history:
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    write_text(path, buffer.getvalue())


def append_timing(path: Path, row: dict[str, float]) -> None:
    """Append one epoch's wall-clock figures to ``path`` (a log, not an output)."""
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def set_aside(path: Path) -> Path:
    """Rename ``path`` to the first free ``<stem>.stale-<n><suffix>`` next to it."""
    n = 1
    while (kept := path.with_name(f"{path.stem}.stale-{n}{path.suffix}")).exists():
        n += 1
    path.rename(kept)
    return kept
