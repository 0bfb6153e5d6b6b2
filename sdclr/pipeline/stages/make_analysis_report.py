"""Stage make_analysis_report: one analysis over every model's record, as a table and a
figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.reporting.analyses import load_analysis_records, write_analysis_report


def analysis_report_stage(
    report: dict[str, Any], analysis: str, outputs: dict[str, str | Path]
) -> None:
    """The table (md, csv) and the figure of one analysis over every model's record."""
    records = load_analysis_records(report["analysis_files"])
    order = [tuple(pair) for pair in report["row_order"]]
    write_analysis_report(records, analysis, outputs, order, report["labels"])
