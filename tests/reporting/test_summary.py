"""The small files DVC shows (sdclr/reporting/summary.py): results/metrics.json holds All and Few
per
probe, dataset and method and what made them; the plot data hold one loss row per (run,
epoch) and one bar per (method, group) of the first probe."""

import csv
import json

from sdclr.pipeline import paths
from sdclr.reporting.summary import write_summary
from sdclr.reporting.tables import write_tables
from tests.helpers import record


def test_metrics_file_is_all_and_few_per_probe_dataset_and_method(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = [
        record(method, split, 0, many, 50, few, probe=probe)
        for probe in ("linear", "fewshot")
        for method, many, few in (("simclr", 80, 20), ("sdclr", 70, 40))
        for split in (1, 2)
    ]
    for probe in ("linear", "fewshot"):
        write_tables(records, probe, {"json": paths.TABLE.format(probe=probe, ext="json")})
    runs = [
        {"dataset": "toy", "method": m, "split": s, "seed": 0}
        for m in ("simclr", "sdclr")
        for s in (1, 2)
    ]
    for run in runs:
        log = tmp_path / paths.TRAIN_LOG.format(**run)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("epoch,loss,lr\n1,5.0,0.1\n2,4.5,0.05\n")
    report = {
        "evals": {"linear": [], "fewshot": []},
        "runs": runs,
        "tables": {p: paths.TABLE.format(probe=p, ext="json") for p in ("linear", "fewshot")},
        "train_logs": [paths.TRAIN_LOG.format(**run) for run in runs],
        "labels": {"datasets": {"toy": "Toy"}, "methods": {"simclr": "SimCLR", "sdclr": "SDCLR"}},
    }
    outputs = {name: tmp_path / path for name, path in paths.SUMMARY.items()}
    write_summary(report, outputs)

    metrics = json.loads(outputs["metrics"].read_text())
    made = metrics.pop("provenance")  # what made it: this job's code, and its records'
    assert {"commit", "dirty", "versions", "records"} <= set(made)
    assert made["records"] == []  # these records were made without a provenance
    assert metrics == {
        probe: {
            "toy": {
                "simclr": {"All": round((80 + 50 + 20) / 3, 2), "Few": 20.0},
                "sdclr": {"All": round((70 + 50 + 40) / 3, 2), "Few": 40.0},
            }
        }
        for probe in ("linear", "fewshot")
    }
    with open(outputs["loss"], newline="") as f:
        loss = list(csv.DictReader(f))
    assert len(loss) == 2 * len(runs) and loss[0] == {
        "run": "toy/simclr/split1/seed0",
        "epoch": "1",
        "loss": "5.0",
    }
    with open(outputs["groups"], newline="") as f:
        bars = list(csv.DictReader(f))
    assert [b["bar"] for b in bars[:4]] == [
        f"SimCLR: {g}" for g in ("Many", "Medium", "Few", "All")
    ]
    assert len(bars) == 8 and bars[2]["accuracy"] == "20.0"
