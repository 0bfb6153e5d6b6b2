"""Aggregation of evaluation records into the paper's mean ± std tables.

Conventions (PROTOCOL.md): within a split, Many / Medium / Few are mean per-class accuracies
of the thirds (or threshold groups) by ``D_i`` frequency, Std is the population std of those
three, All is the mean per-class accuracy. Across splits each column is reported as
mean ± population std (ddof = 0). With several training seeds per split, the seeds of a split
are averaged first, so the ± always measures the spread over splits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdclr.groups import GROUPS
from sdclr.io import read_json, write_json, write_text
from sdclr.probes import PROBES
from sdclr.provenance import describe as describe_provenance
from sdclr.provenance import provenance
from sdclr.provenance import summarize as summarize_provenance

COLUMNS = (*GROUPS, "Std", "All")
PROBE_TITLES = {name: probe.title for name, probe in PROBES.items()}


def load_records(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Read evaluation JSON files written by ``sdclr.probes.run_probe``."""
    records = []
    for path in paths:
        record = read_json(path)
        if "summary" not in record or "dataset" not in record:
            raise ValueError(f"{path} is not an evaluation record (no 'summary'); re-run its probe")
        records.append(record)
    return records


def records_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per evaluation: dataset, method, split, seed, probe, pretraining set, the probe
    pool's note (only when some record has one) and the five columns."""
    rows = [
        {
            "dataset": r["dataset"],
            "method": r["method"],
            "split": r["split"],
            "seed": r["seed"],
            "probe": r["probe"],
            "pretrain_set": r.get("pretrain_set", "D_i"),
            "probe_note": r.get("probe_train_note", ""),
            **{c: r["summary"][c] for c in COLUMNS},
        }
        for r in records
    ]
    columns = ["dataset", "method", "split", "seed", "probe", "pretrain_set", "probe_note"]
    columns += list(COLUMNS)
    frame = pd.DataFrame(rows, columns=columns)
    # A column only where some probe pool is a list file: other tables keep their columns.
    return frame if frame["probe_note"].astype(bool).any() else frame.drop(columns="probe_note")


def aggregate(frame: pd.DataFrame, order: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Mean and population std over splits for every (dataset, method).

    Returns columns ``dataset, method, splits, runs`` and ``<col>_mean, <col>_std`` for each of
    Many, Medium, Few, Std, All. Rows follow ``order`` (pairs of dataset, method) when given.
    """
    per_split = frame.groupby(["dataset", "method", "split"], sort=False)[list(COLUMNS)].mean()
    runs = frame.groupby(["dataset", "method"], sort=False).size()
    grouped = per_split.groupby(level=["dataset", "method"], sort=False)
    by_pair = frame.groupby(["dataset", "method"], sort=False)
    out = pd.DataFrame(
        {
            "splits": grouped.size(),
            "runs": runs,
            "pretrain_set": by_pair["pretrain_set"].first(),
            **({"probe_note": by_pair["probe_note"].first()} if "probe_note" in frame else {}),
        }
    )
    for column in COLUMNS:
        out[f"{column}_mean"] = grouped[column].mean()
        out[f"{column}_std"] = grouped[column].agg(lambda s: float(np.std(s.to_numpy(), ddof=0)))
    out = out.reset_index()
    if order is not None:
        rank = {pair: i for i, pair in enumerate(order)}
        out = out.sort_values(
            by=["dataset", "method"],
            key=lambda _: out.apply(lambda r: rank.get((r.dataset, r.method), len(rank)), axis=1),
        ).reset_index(drop=True)
    return out


def _cell(mean: float, std: float, separator: str = " ± ") -> str:
    return "n/a" if np.isnan(mean) else f"{mean:.2f}{separator}{std:.2f}"


def _display(table: pd.DataFrame, labels: dict[str, dict[str, str]] | None) -> pd.DataFrame:
    labels = labels or {"datasets": {}, "methods": {}}
    return pd.DataFrame(
        {
            "Dataset": [labels["datasets"].get(d, d) for d in table["dataset"]],
            "Method": [labels["methods"].get(m, m) for m in table["method"]],
            "Pretrained on": list(table["pretrain_set"]),
            **{
                c: [_cell(m, s) for m, s in zip(table[f"{c}_mean"], table[f"{c}_std"], strict=True)]
                for c in COLUMNS
            },
            "Splits": table["splits"],
        }
    )


def table_title(
    probe: str,
    table: pd.DataFrame | None = None,
    labels: dict | None = None,
    titles: Sequence[str] = (),
) -> str:
    """What a table holds: the probe (as its records name it, from their settings, e.g. kNN's
    k; else the probe's title) and the set it is trained on (pretraining sets are a column), so
    no two tables' rows can be mixed up; a dataset whose probe pool is a list file
    (ImageNet-100-LT) names that pool after a semicolon."""
    known = PROBES.get(probe)
    name = " / ".join(titles) if titles else (known.title if known else probe)
    title = probe if known is None else f"{name}, trained on {known.train_set}"
    if table is None or "probe_note" not in table:
        return title
    names = (labels or {}).get("datasets", {})
    notes = dict.fromkeys(
        f"{names.get(d, d)} on {n}"
        for d, n in zip(table.dataset, table.probe_note, strict=True)
        if n
    )
    return "; ".join([title, *notes])


def per_split_table(frame: pd.DataFrame, order: Sequence[tuple[str, str]] | None) -> pd.DataFrame:
    """One row per dataset x method x split (seeds of a split averaged): the numbers behind
    each mean ± std."""
    keys = ["dataset", "method", "pretrain_set", "split"]
    keys += ["probe_note"] if "probe_note" in frame else []
    table = frame.groupby(keys, sort=False)[list(COLUMNS)].mean().reset_index()
    if order is not None:
        rank = {pair: i for i, pair in enumerate(order)}
        pairs = zip(table.dataset, table.method, strict=True)
        table["_rank"] = [rank.get(pair, len(rank)) for pair in pairs]
        table = table.sort_values(["_rank", "split"], kind="stable").drop(columns="_rank")
    return table.reset_index(drop=True)


def per_split_markdown(
    table: pd.DataFrame, probe: str, labels: dict | None = None, titles: Sequence[str] = ()
) -> str:
    """The per-split table in Markdown."""
    labels = labels or {"datasets": {}, "methods": {}}
    lines = [
        f"## {table_title(probe, table, labels, titles)} (%, per split)",
        "",
        "| Dataset | Method | Pretrained on | Split | " + " | ".join(COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for row in table.itertuples(index=False):
        name = (
            labels["datasets"].get(row.dataset, row.dataset),
            labels["methods"].get(row.method, row.method),
        )
        cells = " | ".join(f"{getattr(row, c):.2f}" for c in COLUMNS)
        lines.append(f"| {name[0]} | {name[1]} | {row.pretrain_set} | {row.split} | {cells} |")
    return "\n".join([*lines, ""])


def to_markdown(
    table: pd.DataFrame, probe: str, labels: dict | None = None, titles: Sequence[str] = ()
) -> str:
    """A Markdown table: one row per dataset x method, columns as mean ± std (%)."""
    shown = _display(table, labels)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    title = f"## {table_title(probe, table, labels, titles)} (%, mean ± std over splits)"
    note = (
        "Many/Medium/Few: mean per-class test accuracy of the classes in each third by D_i "
        "frequency; Std: population std of the three; All: mean per-class accuracy."
    )
    return "\n".join([title, "", header, rule, *body, "", note, ""])


def to_latex(
    table: pd.DataFrame, probe: str, labels: dict | None = None, titles: Sequence[str] = ()
) -> str:
    """A LaTeX tabular (booktabs) with ``mean $\\pm$ std`` cells."""
    shown = _display(table, labels).drop(columns="Splits")
    lines = [
        f"% {table_title(probe, table, labels, titles)}: mean $\\pm$ population std over "
        "splits (%)",
        "\\begin{tabular}{lll" + "c" * len(COLUMNS) + "}",
        "\\toprule",
        " & ".join(shown.columns) + " \\\\",
        "\\midrule",
    ]
    for row in shown.itertuples(index=False):
        cells = [str(v).replace(" ± ", " $\\pm$ ").replace("_", "\\_") for v in row]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def to_metrics(table: pd.DataFrame) -> dict[str, Any]:
    """Nested ``{dataset: {method: {column: {mean, std}}}}`` for JSON (DVC metrics)."""
    out: dict[str, Any] = {}
    for row in table.itertuples(index=False):
        entry = {
            c: {
                "mean": round(getattr(row, f"{c}_mean"), 4),
                "std": round(getattr(row, f"{c}_std"), 4),
            }
            for c in COLUMNS
        }
        entry["splits"] = int(row.splits)
        out.setdefault(row.dataset, {})[row.method] = entry
    return out


def table_provenance(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What made a table: its records' provenance (each distinct one) and the table job's
    own code and versions, with a one-line ``summary`` (the md and tex tables' footer)."""
    found = [r["provenance"] for r in records if r.get("provenance")]
    distinct = [dict(p) for p in {json.dumps(p, sort_keys=True): p for p in found}.values()]
    made = provenance()
    code = describe_provenance(made)
    same = all(describe_provenance({**p, "device": None, "precision": None}) == code for p in found)
    table = "the same code" if found and same else code
    summary = f"records by {summarize_provenance(found)}; table by {table}"
    return {"records": distinct, "table": made, "summary": summary}


def write_tables(
    records: Sequence[dict[str, Any]],
    probe: str,
    outputs: dict[str, str | Path],
    order: Sequence[tuple[str, str]] | None = None,
    labels: dict | None = None,
) -> pd.DataFrame:
    """Aggregate the ``probe`` records and write each format named in ``outputs``.

    ``outputs`` maps any of ``md``, ``csv``, ``tex``, ``json`` to a path; each is written
    atomically. Returns the aggregated table.
    """
    chosen = [r for r in records if r["probe"] == probe]
    if not chosen:
        raise ValueError(f"no evaluation records for the {probe!r} probe")
    frame = records_frame(chosen)
    table = aggregate(frame, order)
    splits = per_split_table(frame, order)
    made = table_provenance(chosen)
    titles = list(dict.fromkeys(r["title"] for r in chosen if r.get("title")))
    footer = f"\nProvenance: {made['summary']}\n"
    writers = {
        "md": lambda: to_markdown(table, probe, labels, titles) + footer,
        "csv": lambda: table.to_csv(index=False, float_format="%.4f"),
        "tex": lambda: (
            to_latex(table, probe, labels, titles) + f"% Provenance: {made['summary']}\n"
        ),
        "splits_md": lambda: per_split_markdown(splits, probe, labels, titles) + footer,
        "splits_csv": lambda: splits.to_csv(index=False, float_format="%.4f"),
    }
    for fmt, path in outputs.items():
        if fmt == "json":
            write_json(path, {"table": to_metrics(table), "provenance": made})
        elif fmt in writers:
            write_text(path, writers[fmt]())
        else:
            raise ValueError(f"unknown table format {fmt!r}; use json or {sorted(writers)}")
    return table
