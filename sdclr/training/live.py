"""The live view of a pretraining run: ``live.tsv`` in its run directory and one log line per
finished epoch, for following a long job on a cluster (``tail -f``, ``column -t``, ``dvc
plots show``).

``live.tsv`` has one tab-separated row per finished epoch, appended and flushed as the epoch
ends: the epoch, the run's epochs, the mean loss, the last step's learning rate, the NT-Xent
temperature, the epoch's wall-clock seconds and images per second, the training seconds so
far (every attempt's) and the estimated seconds left. A resumed run first cuts the file back
to the epochs its checkpoint holds, so an epoch redone after a kill appears once.

It is a log, like ``timing.csv``: wall-clock figures, not an output of the pretraining stage
(no rule or stage reads it, so its changing reruns nothing). Everything here runs once per
epoch on numbers the loop already has on the host: no device synchronisation of its own.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Mapping
from pathlib import Path

from sdclr.io import write_text

#: The columns of ``live.tsv``, in order.
COLUMNS = (
    "epoch",
    "epochs",
    "loss",
    "lr",
    "temperature",
    "seconds",
    "images_per_second",
    "elapsed_seconds",
    "eta_seconds",
    "time",
)
#: Epochs of the current attempt the ETA averages (its first is left out once there are
#: others: it carries the compilation and cuDNN's kernel search).
ETA_WINDOW = 20


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a live file (none when it is missing or has other columns)."""
    if not path.exists():
        return []
    reader = csv.DictReader(io.StringIO(path.read_text()), delimiter="\t")
    if tuple(reader.fieldnames or ()) != COLUMNS:
        return []
    return [row for row in reader if row.get("time")]  # a row cut short by a kill is dropped


def format_duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``4m05s`` or ``12s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class LiveLog:
    """``live.tsv`` of one run: cut back to ``start_epoch`` rows when opened, then one row
    per :meth:`record`. Only the main process writes (``enabled``)."""

    def __init__(self, path: Path, epochs: int, start_epoch: int, enabled: bool = True):
        self.path, self.epochs, self.enabled = Path(path), epochs, enabled
        self.attempt_seconds: list[float] = []
        kept = [r for r in read_rows(self.path) if int(r["epoch"]) <= start_epoch]
        self.elapsed = float(kept[-1]["elapsed_seconds"]) if kept else 0.0
        if enabled:
            write_text(self.path, _tsv([dict(zip(COLUMNS, COLUMNS, strict=True)), *kept]))

    def eta(self, done: int) -> float:
        """Seconds left after ``done`` epochs, from this attempt's recent epochs."""
        recent = self.attempt_seconds[1:] or self.attempt_seconds
        recent = recent[-ETA_WINDOW:]
        return (self.epochs - done) * sum(recent) / len(recent)

    def record(
        self, metrics: Mapping[str, float], seconds: float, images: int, temperature: float | None
    ) -> dict[str, str]:
        """Append the row of a finished epoch (``metrics``: the train log's row; ``images``:
        the images it trained on) and return it, formatted."""
        done = int(metrics["epoch"])
        self.attempt_seconds.append(seconds)
        self.elapsed += seconds
        row = {
            "epoch": str(done),
            "epochs": str(self.epochs),
            "loss": f"{metrics['loss']:.6f}",
            "lr": f"{metrics['lr']:.6g}",
            "temperature": "" if temperature is None else f"{temperature:.6g}",
            "seconds": f"{seconds:.3f}",
            "images_per_second": f"{images / seconds if seconds > 0 else 0.0:.1f}",
            "elapsed_seconds": f"{self.elapsed:.1f}",
            "eta_seconds": f"{self.eta(done):.0f}",
            "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        if self.enabled:
            with open(self.path, "a", newline="") as handle:
                handle.write(_tsv([row]))
                handle.flush()
        return row


def log_line(row: Mapping[str, str]) -> str:
    """The readable log line of a live row: ``epoch 12/2000 loss 5.1234 lr 0.4998 T 0.2
    11,523 img/s 0.97s elapsed 12s ETA 32m10s``."""
    temperature = f" T {float(row['temperature']):.3g}" if row["temperature"] else ""
    return (
        f"epoch {row['epoch']}/{row['epochs']} loss {float(row['loss']):.4f} "
        f"lr {float(row['lr']):.4g}{temperature} "
        f"{float(row['images_per_second']):,.0f} img/s {float(row['seconds']):.1f}s "
        f"elapsed {format_duration(float(row['elapsed_seconds']))} "
        f"ETA {format_duration(float(row['eta_seconds']))}"
    )


def _tsv(rows: list[Mapping[str, str]]) -> str:
    return "".join("\t".join(row[c] for c in COLUMNS) + "\n" for row in rows)
