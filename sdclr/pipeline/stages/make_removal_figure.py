"""Stage removal_figure: where a removal run's difficult examples come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.io import read_json
from sdclr.reporting.figures import plot_removal


def removal_figure_stage(
    report: dict[str, Any], records: list[str | Path], out: str | Path
) -> None:
    """The figure of where a removal run's difficult examples come from (its records: every
    split and seed of one dataset)."""
    files = [f for p in map(Path, records) for f in (sorted(p.glob("split*/seed*.json")) or [p])]
    plot_removal([read_json(f) for f in files], out, report["labels"])
