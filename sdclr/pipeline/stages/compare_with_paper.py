"""Stage compare_with_paper: our mean ± std next to the paper's reported numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.reporting.figures import plot_paper_comparison
from sdclr.reporting.paper import compare_with_paper, load_reported, write_comparison
from sdclr.reporting.tables import load_records


def comparison_stage(
    report: dict[str, Any], reported: str | Path, outputs: dict[str, str | Path]
) -> None:
    """Tables per probe (``outputs["<probe>_md"]``, ``outputs["<probe>_csv"]``) and a figure
    (``outputs["figure"]``) of our mean ± std next to the paper's reported numbers."""
    reported_numbers = load_reported(reported)
    labels = report["labels"]
    comparisons = {}
    for probe in report["paper_probes"]:  # paths.compared_probes: each has its output
        records = load_records(report["evals"].get(probe, []))
        comparisons[probe] = compare_with_paper(
            records, reported_numbers, probe, report["paper_names"]
        )
        md, csv = outputs[f"{probe}_md"], outputs[f"{probe}_csv"]
        write_comparison(comparisons[probe], probe, md, csv, labels)
    plot_paper_comparison(comparisons, outputs["figure"], labels)
