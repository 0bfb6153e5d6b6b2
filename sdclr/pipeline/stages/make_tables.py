"""Stage make_tables: one probe's evaluation records as mean ± std tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.reporting.tables import load_records, write_tables


def tables_stage(report: dict[str, Any], probe: str, outputs: dict[str, str | Path]) -> None:
    """Aggregate ``probe``'s evaluation records (listed in the report settings) into its table
    in every requested format."""
    order = [tuple(pair) for pair in report["row_order"]]
    write_tables(load_records(report["evals"][probe]), probe, outputs, order, report["labels"])
