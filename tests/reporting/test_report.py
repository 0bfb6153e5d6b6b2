"""Group / Std / mean ± std arithmetic, tables and figures, on hand-made accuracies."""

import json

import numpy as np
import pytest

from sdclr.groups import class_groups, group_summary
from sdclr.reporting.tables import aggregate, records_frame, write_tables
from tests.helpers import record

COUNTS = [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]


def test_thirds_put_the_remainder_in_many():
    """Classes sorted by D_i count: 4 Many / 3 Medium / 3 Few for 10 classes, 34/33/33 for 100."""
    shuffled = [COUNTS[i] for i in (3, 0, 9, 5, 1, 8, 2, 7, 4, 6)]  # class c has shuffled[c]
    groups = class_groups(shuffled, {"kind": "thirds"})
    assert sorted(shuffled[c] for c in groups["Many"]) == [969, 1617, 2697, 4500]
    assert sorted(shuffled[c] for c in groups["Few"]) == [45, 75, 125]
    sizes = {k: len(v) for k, v in class_groups(list(range(100)), {"kind": "thirds"}).items()}
    assert sizes == {"Many": 34, "Medium": 33, "Few": 33}


def test_threshold_groups_for_imagenet_lt():
    """Many > 100 images, Medium 20..100, Few < 20."""
    groups = class_groups(
        [1280, 101, 100, 20, 19, 6], {"kind": "thresholds", "many_above": 100, "few_below": 20}
    )
    assert groups == {"Many": [0, 1], "Medium": [2, 3], "Few": [4, 5]}


def test_group_summary_arithmetic():
    """Group accuracy = mean over its classes; All = mean per-class; Std = population std of
    [Many, Medium, Few]."""
    groups = class_groups(COUNTS, {"kind": "thirds"})
    acc = [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]  # class k has the k-th largest count
    summary = group_summary(acc, groups)
    assert summary["Many"] == pytest.approx(75.0)
    assert summary["Medium"] == pytest.approx(40.0)
    assert summary["Few"] == pytest.approx(10.0)
    assert summary["All"] == pytest.approx(45.0)
    assert summary["Std"] == pytest.approx(np.std([75.0, 40.0, 10.0]))  # ddof=0: 26.5623


def test_mean_and_population_std_over_splits():
    """Each column is mean ± population std (ddof = 0) over splits; seeds of one split are
    averaged first."""
    records = [
        record("simclr", 1, 0, 80, 70, 60),
        record("simclr", 2, 0, 90, 70, 50),
        record("simclr", 3, 0, 70, 70, 40),
        record("sdclr", 1, 0, 80, 80, 80),
        record("sdclr", 1, 1, 60, 60, 60),  # split 1 of sdclr averages to 70
        record("sdclr", 2, 0, 90, 90, 90),
    ]
    table = aggregate(records_frame(records), order=[("toy", "simclr"), ("toy", "sdclr")])
    simclr, sdclr = table.iloc[0], table.iloc[1]
    assert simclr.method == "simclr" and simclr.splits == 3 and simclr.runs == 3
    assert simclr.Many_mean == pytest.approx(80.0)
    assert simclr.Many_std == pytest.approx(np.std([80, 90, 70]))  # 8.165, not ddof=1's 10
    assert simclr.Few_std == pytest.approx(np.std([60, 50, 40]))
    assert simclr.Std_mean == pytest.approx(
        np.mean([np.std([80, 70, 60]), np.std([90, 70, 50]), np.std([70, 70, 40])])
    )
    assert sdclr.splits == 2 and sdclr.runs == 3
    assert sdclr.All_mean == pytest.approx(80.0) and sdclr.All_std == pytest.approx(10.0)


def test_tables_in_every_format(tmp_path):
    """Markdown, CSV, LaTeX and JSON tables hold the same mean ± std numbers, with labels."""
    records = [
        record("simclr", 1, 0, 80, 70, 60),
        record("simclr", 2, 0, 90, 70, 50),
        record("simclr", 1, 0, 10, 10, 10, probe="fewshot"),
    ]
    outputs = {fmt: tmp_path / f"linear.{fmt}" for fmt in ("md", "csv", "tex", "json")}
    write_tables(
        records,
        "linear",
        outputs,
        labels={"datasets": {"toy": "Toy-LT"}, "methods": {"simclr": "SimCLR"}},
    )
    md = outputs["md"].read_text()
    assert "| Toy-LT | SimCLR | D_i | 85.00 ± 5.00 | 70.00 ± 0.00 | 55.00 ± 5.00 |" in md
    assert "85.00 $\\pm$ 5.00" in outputs["tex"].read_text()
    assert "Many_mean" in outputs["csv"].read_text()
    metrics = json.loads(outputs["json"].read_text())
    assert metrics["table"]["toy"]["simclr"]["Many"] == {"mean": 85.0, "std": 5.0}
    with pytest.raises(ValueError, match="no evaluation records"):
        write_tables([], "linear", {"md": tmp_path / "x.md"})


def test_every_table_says_what_made_its_records_and_itself(tmp_path):
    """The md and tex tables end with a provenance line (each distinct code, device and
    arithmetic of their records, and the table job's code); the JSON table keeps both."""
    made = {
        "commit": "0123456789abcdef",
        "dirty": False,
        "versions": {"torch": "9.9"},
        "device": "cuda (Some GPU)",
        "precision": "bf16",
    }
    records = [
        {**record("simclr", 1, 0, 80, 70, 60), "provenance": made},
        {**record("simclr", 2, 0, 90, 70, 50), "provenance": {**made, "dirty": True}},
    ]
    outputs = {fmt: tmp_path / f"linear.{fmt}" for fmt in ("md", "tex", "json")}
    write_tables(records, "linear", outputs)
    footer = outputs["md"].read_text().strip().splitlines()[-1]
    assert footer.startswith("Provenance: records by commit 0123456789")
    assert "commit 0123456789; torch 9.9; on cuda (Some GPU); bf16" in footer
    assert "commit 0123456789 with uncommitted changes; torch 9.9" in footer
    assert "table by " in footer and "torch " in footer.split("table by ")[1]
    assert outputs["tex"].read_text().strip().splitlines()[-1] == f"% {footer}"
    table = json.loads(outputs["json"].read_text())["provenance"]
    assert sorted(r["dirty"] for r in table["records"]) == [False, True]
    assert set(table["table"]) == {"commit", "dirty", "versions", "device", "precision"}


def test_figures_are_written(tmp_path):
    """The three figures render from evaluation records and split records into PNG files."""
    from sdclr.reporting.figures import (
        plot_accuracy_vs_frequency,
        plot_class_profile,
        plot_group_accuracy,
    )

    rng = np.random.default_rng(0)
    records, splits = [], []
    for split in (1, 2):
        counts = rng.permutation(COUNTS).tolist()
        groups = class_groups(counts, {"kind": "thirds"})
        splits.append(
            {
                "dataset": "toy",
                "split": split,
                "counts": {"D_i": counts},
                "sizes": {"D_i": sum(counts), "D_b": 11160, "S_b": 450},
            }
        )
        for method in ("simclr", "sdclr"):
            for probe in ("linear", "fewshot"):
                acc = rng.uniform(40, 90, 10).tolist()
                records.append(
                    {
                        "dataset": "toy",
                        "method": method,
                        "split": split,
                        "seed": 0,
                        "probe": probe,
                        "per_class_accuracy": acc,
                        "train_counts": counts,
                        "summary": group_summary(acc, groups),
                    }
                )
    paths = [tmp_path / n for n in ("groups.png", "profile.png", "freq.png")]
    plot_group_accuracy(records, paths[0])
    plot_class_profile(splits, paths[1])
    plot_accuracy_vs_frequency(records, paths[2])
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
