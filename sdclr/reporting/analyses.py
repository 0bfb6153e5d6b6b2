"""Tables and figures of the per-model analyses (``sdclr.analyses``): each analysis's summary
columns as mean ± population std over splits (the seeds of a split averaged first, as in
``sdclr.reporting.tables``), with its per-run info, heading and note, and its own figure. Generic
over the registered analyses: what a table shows is the analysis's contract
(``sdclr.analyses.base``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdclr.analyses import get_analysis
from sdclr.errors import InputError
from sdclr.io import read_json, write_text


def load_analysis_records(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read analysis records written by ``sdclr.analyses.run.run_analysis``."""
    records = []
    for path in paths:
        record = read_json(path)
        if "analyses" not in record or "dataset" not in record:
            raise ValueError(f"{path} is not an analysis record; re-run its analysis job")
        records.append(record)
    return records


def analysis_frame(records: Sequence[dict[str, Any]], analysis: str) -> pd.DataFrame:
    """One row per record holding ``analysis``: its keys, its per-run info and its summary."""
    columns = get_analysis(analysis).columns
    info = get_analysis(analysis).info
    rows = []
    for r in records:
        if analysis not in r:
            continue
        part = r[analysis]
        extra = {column: part[key] for column, (_, key, _) in info.items()}
        keys = {k: r[k] for k in ("dataset", "method", "split", "seed")}
        keys["pretrain_set"] = r.get("pretrain_set", "D_i")
        rows.append({**keys, **extra, **{c: part["summary"][c] for c in columns}})
    return pd.DataFrame(rows)


def aggregate_analysis(
    frame: pd.DataFrame, analysis: str, order: Sequence[tuple[str, str]] | None = None
) -> pd.DataFrame:
    """Per (dataset, method): ``splits`` and ``<column>_mean`` / ``<column>_std`` over splits
    (population std), the seeds of a split averaged first; rows in ``order`` when given."""
    columns = list(get_analysis(analysis).columns)
    keys = ["dataset", "method"]
    info = ["pretrain_set", *(c for c in get_analysis(analysis).info if c in frame.columns)]
    per_split = frame.groupby([*keys, "split"], sort=False)[columns].mean()
    grouped = per_split.groupby(level=keys, sort=False)
    out = frame.groupby(keys, sort=False)[info].first()
    out["splits"] = grouped.size()
    for c in columns:
        out[f"{c}_mean"] = grouped[c].mean()
        out[f"{c}_std"] = grouped[c].agg(lambda s: float(np.std(s.to_numpy(), ddof=0)))
    out = out.reset_index()
    if order is not None:
        rank = {tuple(pair): i for i, pair in enumerate(order)}
        out["_rank"] = [rank.get(p, len(rank)) for p in zip(out.dataset, out.method, strict=True)]
        out = out.sort_values("_rank", kind="stable").drop(columns="_rank")
    return out.reset_index(drop=True)


def analysis_markdown(table: pd.DataFrame, analysis: str, labels: dict | None = None) -> str:
    """The aggregated table in Markdown, with a note on how to read it."""
    labels = labels or {"datasets": {}, "methods": {}}
    spec = get_analysis(analysis)
    columns, fmt = spec.columns, spec.number_format
    info = [header for header, _, _ in spec.info.values()]
    header = ["Dataset", "Method", "Pretrained on", *info, *columns, "Splits"]
    lines = [
        f"## {spec.title} ({spec.unit}mean ± std over splits)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in table.to_dict("records"):
        cells = [
            labels["datasets"].get(row["dataset"], row["dataset"]),
            labels["methods"].get(row["method"], row["method"]),
            row["pretrain_set"],
        ]
        cells += [form.format(row[column]) for column, (_, _, form) in spec.info.items()]
        for c in columns:
            mean, std = row[f"{c}_mean"], row[f"{c}_std"]
            cells.append("n/a" if np.isnan(mean) else f"{fmt.format(mean)} ± {fmt.format(std)}")
        cells.append(str(row["splits"]))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join([*lines, "", spec.note, ""])


def write_analysis_report(
    records: Sequence[dict[str, Any]],
    analysis: str,
    outputs: dict[str, str | Path],
    order: Sequence[tuple[str, str]] | None = None,
    labels: dict | None = None,
) -> pd.DataFrame:
    """Write ``analysis``'s table (``outputs["md"]``, ``outputs["csv"]``) and figure
    (``outputs["figure"]``); return the aggregated table."""
    frame = analysis_frame(records, analysis)
    if frame.empty:
        raise InputError(
            get_analysis(analysis).empty or f"no analysis records hold the {analysis!r} analysis"
        )
    table = aggregate_analysis(frame, analysis, order)
    write_text(outputs["md"], analysis_markdown(table, analysis, labels))
    write_text(outputs["csv"], table.to_csv(index=False, float_format="%.4f"))
    get_analysis(analysis).plot(records, outputs["figure"], labels)
    return table
