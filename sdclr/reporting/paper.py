"""Our tables next to the paper's reported numbers: ours, the paper's, and the difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sdclr.io import write_text
from sdclr.probes import COMPARED_PROBES
from sdclr.reporting.tables import COLUMNS, PROBE_TITLES, _cell, aggregate, records_frame

#: Keys of a reported dataset entry that are not method rows.
ENTRY_KEYS = ("splits", "source")


def load_reported(path: str | Path) -> dict[str, Any]:
    """The paper's numbers: ``{probe: {table: {method: {column: [mean, std|None]}}}}``.

    Each top-level key is the probe the numbers are of (one of
    :data:`sdclr.probes.COMPARED_PROBES`), so reported numbers are only ever set beside
    our records of the same probe. A table may say ``splits: [1]`` (its numbers are of those
    splits only: they are compared with ours of the same splits, never with a 5-split mean)
    and ``source:``; a method row may omit columns its source does not report.
    """
    reported = yaml.safe_load(Path(path).read_text())
    for probe, tables in reported.items():
        if probe not in COMPARED_PROBES:
            raise ValueError(
                f"{path}: {probe!r} is not a probe with reported numbers; known: "
                f"{', '.join(COMPARED_PROBES)}"
            )
        for table, methods in tables.items():
            for method, columns in methods.items():
                if method in ENTRY_KEYS:
                    continue
                unknown = [c for c in columns if c not in COLUMNS]
                if unknown or not columns:
                    raise ValueError(f"{path}: {probe}.{table}.{method}: columns {unknown}")
    return reported


def compare_with_paper(
    records: list[dict[str, Any]],
    reported: dict[str, Any],
    probe: str,
    paper_names: dict[str, dict[str, Any]],
) -> pd.DataFrame:
    """Long table, one row per dataset x method x reported table x column the paper reports.

    ``records`` are ``probe``'s evaluation records; ``paper_names[dataset]`` is ``{"names":
    [reported table, ...], "methods": {method: paper method name}}``. Ours is the mean ± std
    over the splits the reported table covers (all of ours when it names none). Columns:
    dataset, method, reported_as, splits, column, ours_mean, ours_std, paper_mean, paper_std,
    difference (ours_mean - paper_mean, in percentage points).
    """
    rows = []
    for dataset, names in paper_names.items():
        for table_name in names["names"]:
            table = reported.get(probe, {}).get(table_name)
            if table is None:
                continue
            splits = table.get("splits")
            chosen = [
                r
                for r in records
                if r["dataset"] == dataset and (splits is None or r["split"] in splits)
            ]
            if not chosen:
                continue
            ours = aggregate(records_frame(chosen))
            for row in ours.itertuples(index=False):
                paper = table.get(names["methods"].get(row.method, ""))
                if paper is None:
                    continue
                for column, (paper_mean, paper_std) in paper.items():
                    ours_mean = getattr(row, f"{column}_mean")
                    rows.append(
                        {
                            "dataset": dataset,
                            "method": row.method,
                            "reported_as": table_name,
                            "splits": int(row.splits),
                            "column": column,
                            "ours_mean": ours_mean,
                            "ours_std": getattr(row, f"{column}_std"),
                            "paper_mean": paper_mean,
                            "paper_std": np.nan if paper_std is None else paper_std,
                            "difference": ours_mean - paper_mean,
                        }
                    )
    columns = ["dataset", "method", "reported_as", "splits", "column", "ours_mean", "ours_std"]
    columns += ["paper_mean", "paper_std", "difference"]
    return pd.DataFrame(rows, columns=columns)


def _comparison_cells(by_column: pd.DataFrame) -> tuple[str, str, str]:
    """Ours, the paper's and the difference as table cells, "–" where the paper has none."""

    def cells(format_one: Any) -> str:
        return " | ".join(format_one(c) if c in by_column.index else "–" for c in COLUMNS)

    def paper(c: str) -> str:
        mean, std = by_column.at[c, "paper_mean"], by_column.at[c, "paper_std"]
        return f"{mean:.2f}" if np.isnan(std) else _cell(mean, std)

    return (
        cells(lambda c: _cell(by_column.at[c, "ours_mean"], by_column.at[c, "ours_std"])),
        cells(paper),
        cells(lambda c: f"{by_column.at[c, 'difference']:+.2f}"),
    )


def comparison_markdown(comparison: pd.DataFrame, probe: str, labels: dict | None = None) -> str:
    """Three rows per dataset x method: ours (mean ± std), the paper's, and ours - paper."""
    labels = labels or {"datasets": {}, "methods": {}}
    lines = [
        f"## {PROBE_TITLES.get(probe, probe)}: ours vs the paper (%)",
        "",
        "| Dataset | Method | | " + " | ".join(COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(COLUMNS),
    ]
    if comparison.empty:
        lines.append("| (no run of this config is linked to a reported row) | | | | | | | |")
    keys = ["dataset", "method", "reported_as"]
    for (dataset, method, reported_as), group in comparison.groupby(keys, sort=False):
        ours, paper, diff = _comparison_cells(group.set_index("column"))
        name = (labels["datasets"].get(dataset, dataset), labels["methods"].get(method, method))
        splits = int(group["splits"].iloc[0])
        lines.append(f"| {name[0]} | {name[1]} | ours ({splits} splits) | {ours} |")
        lines.append(f"| | | {reported_as} | {paper} |")
        lines.append(f"| | | ours − paper | {diff} |")
    lines += ["", "ours − paper: difference of the means, in percentage points.", ""]
    return "\n".join(lines)


def write_comparison(
    comparison: pd.DataFrame, probe: str, md: str | Path, csv: str | Path, labels: dict | None
) -> None:
    """Write the comparison as Markdown and CSV, atomically."""
    write_text(md, comparison_markdown(comparison, probe, labels))
    write_text(csv, comparison.to_csv(index=False, float_format="%.4f"))
