"""Stage make_figures: group accuracies, class profiles, accuracy against frequency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.data.splits import load_split
from sdclr.reporting.figures import (
    plot_accuracy_vs_frequency,
    plot_class_profile,
    plot_group_accuracy,
)
from sdclr.reporting.tables import load_records


def figures_stage(report: dict[str, Any], outputs: dict[str, str | Path]) -> None:
    """Write the figures (``outputs``: name -> path, the keys of
    ``sdclr.pipeline.paths.FIGURES``)."""
    records = load_records([f for files in report["evals"].values() for f in files])
    labels = report["labels"]
    plot_group_accuracy(records, outputs["group_accuracy"], labels)
    splits = [load_split(p) for p in report["splits"]]
    plot_class_profile(splits, outputs["class_profile"], report["group_rules"], labels)
    plot_accuracy_vs_frequency(records, outputs["accuracy_vs_frequency"], labels)
