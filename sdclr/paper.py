"""Our tables next to the paper's reported numbers: ours, the paper's, and the difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sdclr import paths
from sdclr.io import write_text
from sdclr.report import COLUMNS, PROBE_TITLES, _cell


def load_reported(path: str | Path = paths.REPORTED) -> dict[str, Any]:
    """The paper's numbers: ``{probe: {dataset: {method: {column: [mean, std|None]}}}}``."""
    reported = yaml.safe_load(Path(path).read_text())
    for probe, datasets in reported.items():
        for dataset, methods in datasets.items():
            for method, columns in methods.items():
                missing = [c for c in COLUMNS if c not in columns]
                if missing:
                    raise ValueError(f"{path}: {probe}.{dataset}.{method} lacks {missing}")
    return reported


def compare_with_paper(
    table: pd.DataFrame,
    reported: dict[str, Any],
    probe: str,
    paper_names: dict[str, dict[str, Any]],
) -> pd.DataFrame:
    """Long table, one row per dataset x method x column that the paper reports.

    ``table`` is ``sdclr.report.aggregate``'s output; ``paper_names[dataset]`` is
    ``{"name": paper dataset name, "methods": {method: paper method name}}``. Columns:
    dataset, method, column, ours_mean, ours_std, paper_mean, paper_std, difference
    (ours_mean - paper_mean, in percentage points).
    """
    rows = []
    for row in table.itertuples(index=False):
        names = paper_names.get(row.dataset)
        paper_method = (names or {}).get("methods", {}).get(row.method)
        if not names or not paper_method:
            continue
        paper = reported.get(probe, {}).get(names["name"], {}).get(paper_method)
        if paper is None:
            continue
        for column in COLUMNS:
            paper_mean, paper_std = paper[column]
            ours_mean = getattr(row, f"{column}_mean")
            rows.append(
                {
                    "dataset": row.dataset,
                    "method": row.method,
                    "column": column,
                    "ours_mean": ours_mean,
                    "ours_std": getattr(row, f"{column}_std"),
                    "paper_mean": paper_mean,
                    "paper_std": np.nan if paper_std is None else paper_std,
                    "difference": ours_mean - paper_mean,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "method",
            "column",
            "ours_mean",
            "ours_std",
            "paper_mean",
            "paper_std",
            "difference",
        ],
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
    for (dataset, method), group in comparison.groupby(["dataset", "method"], sort=False):
        by_column = group.set_index("column")
        ours = [_cell(by_column.at[c, "ours_mean"], by_column.at[c, "ours_std"]) for c in COLUMNS]
        paper = [
            f"{by_column.at[c, 'paper_mean']:.2f}"
            if np.isnan(by_column.at[c, "paper_std"])
            else _cell(by_column.at[c, "paper_mean"], by_column.at[c, "paper_std"])
            for c in COLUMNS
        ]
        diff = [f"{by_column.at[c, 'difference']:+.2f}" for c in COLUMNS]
        name = (labels["datasets"].get(dataset, dataset), labels["methods"].get(method, method))
        lines.append(f"| {name[0]} | {name[1]} | ours | " + " | ".join(ours) + " |")
        lines.append("| | | paper | " + " | ".join(paper) + " |")
        lines.append("| | | ours − paper | " + " | ".join(diff) + " |")
    lines += ["", "ours − paper: difference of the means, in percentage points.", ""]
    return "\n".join(lines)


def write_comparison(
    comparison: pd.DataFrame, probe: str, md: str | Path, csv: str | Path, labels: dict | None
) -> None:
    """Write the comparison as Markdown and CSV, atomically."""
    write_text(md, comparison_markdown(comparison, probe, labels))
    write_text(csv, comparison.to_csv(index=False, float_format="%.4f"))
