"""What `dvc exp show` and `dvc plots show` read: one small metrics file with the headline
numbers, and the plot data of the pretraining loss and the group accuracies.

- ``results/metrics.json``: ``{probe: {dataset: {method: {"All": mean, "Few": mean}}}}``, the
  mean test accuracy (%) over splits and seeds, from the probe tables (``results/tables/
  <probe>.json`` keep everything else: Many, Medium, Std, the standard deviations), and
  ``provenance``: the commit and versions that made it, a line per distinct provenance of
  the records behind it.
- ``results/plots/pretrain_loss.csv``: every run's loss per epoch, one row per (run, epoch),
  ``run`` naming dataset/method/split/seed: dvc.yaml's top-level plot draws one line per run.
- ``results/plots/group_accuracy.csv``: Many / Medium / Few / All per method for the first
  probe of the config (the paper's linear probe by default), one row per bar.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdclr.io import read_json, write_json, write_text
from sdclr.provenance import describe, provenance

HEADLINE = ("All", "Few")
BARS = ("Many", "Medium", "Few", "All")


def headline_metrics(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{probe: {dataset: {method: {All, Few}}}}`` (means, 2 decimals) from the probes'
    table JSONs (``sdclr.reporting.tables.to_metrics``: ``{dataset: {method: {column: {mean,
    std}}}}``)."""
    return {
        probe: {
            dataset: {
                method: {c: round(float(row[c]["mean"]), 2) for c in HEADLINE}
                for method, row in methods.items()
            }
            for dataset, methods in table.items()
        }
        for probe, table in tables.items()
    }


def run_name(run: dict[str, Any]) -> str:
    """A run's name in the loss plot: ``dataset/method/split<s>/seed<n>``."""
    return f"{run['dataset']}/{run['method']}/split{run['split']}/seed{run['seed']}"


def loss_rows(train_logs: Sequence[tuple[dict[str, Any], str | Path]]) -> list[dict[str, Any]]:
    """(run, train_log.csv) pairs as rows ``{run, epoch, loss}``."""
    rows = []
    for run, path in train_logs:
        with open(path, newline="") as f:
            for line in csv.DictReader(f):
                rows.append({"run": run_name(run), "epoch": line["epoch"], "loss": line["loss"]})
    return rows


def group_rows(table: dict[str, Any], labels: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """One bar per (dataset, method, group) of one probe's table: ``{bar, group, accuracy}``."""
    several = len(table) > 1
    rows = []
    for dataset, methods in table.items():
        for method, row in methods.items():
            name = labels.get("methods", {}).get(method, method)
            if several:
                name = f"{labels.get('datasets', {}).get(dataset, dataset)} {name}"
            for group in BARS:
                accuracy = round(float(row[group]["mean"]), 2)
                rows.append({"bar": f"{name}: {group}", "group": group, "accuracy": accuracy})
    return rows


def _csv_text(rows: list[dict[str, Any]], fields: Sequence[str]) -> str:
    lines = [",".join(fields)]
    lines += [",".join(str(row[f]).replace(",", " ") for f in fields) for row in rows]
    return "\n".join(lines) + "\n"


def _provenance(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """This job's code and versions, and one line per distinct provenance of the records
    behind the tables (``sdclr.provenance``)."""
    records = [r for table in tables.values() for r in table["provenance"]["records"]]
    return {**provenance(), "records": sorted({describe(r) for r in records})}


def write_summary(report: dict[str, Any], outputs: dict[str, str | Path]) -> None:
    """Write ``outputs["metrics"]``, ``outputs["loss"]`` and ``outputs["groups"]`` from the
    report settings (which list the probes' tables and every run's train log)."""
    probes = list(report["evals"])
    files = {p: read_json(report["tables"][p]) for p in probes}
    tables = {p: table["table"] for p, table in files.items()}
    write_json(outputs["metrics"], {**headline_metrics(tables), "provenance": _provenance(files)})
    logs = list(zip(report["runs"], report["train_logs"], strict=True))
    write_text(outputs["loss"], _csv_text(loss_rows(logs), ("run", "epoch", "loss")))
    bars = group_rows(tables[probes[0]], report["labels"])
    write_text(outputs["groups"], _csv_text(bars, ("bar", "group", "accuracy")))
