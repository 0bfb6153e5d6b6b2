"""The paper's experiment grid: configs, reference splits, and the comparison with the paper."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sdclr.data.image_dataset import ImageDataset
from sdclr.data.image_list_file import read_image_list
from sdclr.data.reference_splits import import_reference_split
from sdclr.data.splits import (
    LongTailConfig,
    make_longtail_split,
    save_split,
)
from sdclr.groups import class_groups, group_summary
from sdclr.pipeline.config import load_config
from sdclr.pipeline.paths import REPORTED
from sdclr.reporting.paper import compare_with_paper, comparison_markdown, load_reported

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "config" / "paper"
IMAGENET_LISTS = ROOT.parent / "shared" / "reference-splits" / "imagenet-100"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
LIST_NAMES = [
    "imageNet_100_LT_train.txt",
    "imageNet_100_BL_train.txt",
    "imageNet_100_sub_balance_train_0.01.txt",
    "ImageNet_100_val.txt",
    "ImageNet_100_test.txt",
]


def run_snakemake(workdir, *args):
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def job_counts(output: str) -> dict[str, int]:
    counts = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def _fake_pool(workdir: Path) -> None:
    """The COLT runs' pool file (300K Random Images) as an empty file: a dry run needs it to
    be there (without it Snakemake stops: "Missing input files for rule prepare_pool")."""
    raw = workdir / "results" / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "300K_random_images.npy").touch()


@pytest.mark.parametrize(
    ("name", "runs", "probes"), [("cifar10_lt", 19, 2), ("cifar100_lt", 23, 5)]
)
def test_cifar_paper_dag_has_five_splits_times_every_run(tmp_path, name, runs, probes):
    """5 splits x the runs: SimCLR and SDCLR on D_i, SimCLR on D_b, BCL-I, BCL-D, SimCLR + TS,
    SDCLR + TS, SimCLR + margin, SimCLR + temperature scaling, SDCLR + both, the control SimCLR
    at t = 0.1, SimCLR / SDCLR / BCL-D + GH, SimCLR / SDCLR + COLT, the 3 removal runs (19),
    and for CIFAR-100-LT BCL's protocol: SimCLR, BCL-I, SDCLR, BCL-D with BCL's settings (23).
    Each run gets every probe (CIFAR-10-LT the paper's
    linear and few-shot; CIFAR-100-LT also BCL's full-, 100- and 50-shot: a table each) and one
    analysis job (PIE, geometry, and the difficult pairs of the 6 runs that tune them); 5 x 3
    selections of difficult examples, plus tables, figures and the comparison with the
    paper; one prepare_pool job (the 300K Random Images that both COLT runs name)."""
    _fake_pool(tmp_path)
    proc = run_snakemake(
        tmp_path, "-n", "--quiet", "rules", "--configfile", str(PAPER / f"{name}.yaml")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = job_counts(proc.stdout)
    assert counts["pretrain"] == 5 * runs and counts["make_split"] == 5
    assert counts["probe"] == 5 * runs * probes and counts["make_tables"] == probes
    assert counts["select_difficult"] == 15 and counts["removal_figure"] == 3
    assert counts["compare_with_paper"] == 1 and counts["prepare_pool"] == 1
    assert counts["analyse"] == 5 * runs and counts["make_analysis_report"] == 4


def _fake_imagenet_lists(workdir: Path) -> None:
    lists = workdir / "results" / "data" / "raw" / "imagenet-100"
    lists.mkdir(parents=True)
    for name in [*LIST_NAMES, "ImageNet_100_train.txt"]:  # + the full list the user supplies
        (lists / name).write_text("train/n0/x.JPEG 0\n")
    (workdir / "results" / "data" / "raw" / "imagenet").mkdir()


def test_imagenet_and_all_paper_dags(tmp_path):
    """ImageNet-100-LT lists 2 pretraining and 4 probe jobs; config/paper/all.yaml is the
    union of the three experiments: 95 + 115 + 2 = 212 pretraining jobs and 190 + 575 + 4 = 769
    probe jobs (CIFAR-100-LT's runs get BCL's 3 probes too; ImageNet-100-LT has no run that
    tunes difficult pairs: its analyses are PIE and geometry)."""
    _fake_imagenet_lists(tmp_path)
    _fake_pool(tmp_path)
    for name, pretrain, probes, reports in (
        ("imagenet100_lt", 2, 4, 2),
        ("all", 212, 769, 4),
    ):
        proc = run_snakemake(
            tmp_path, "-n", "--quiet", "rules", "--configfile", str(PAPER / f"{name}.yaml")
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        counts = job_counts(proc.stdout)
        assert counts["pretrain"] == pretrain and counts["probe"] == probes
        assert counts["analyse"] == pretrain and counts["make_analysis_report"] == reports


def test_paper_configs_hold_the_protocol():
    """The paper configs carry PROTOCOL.md's hyperparameters."""
    c10 = load_config(PAPER / "cifar10_lt.yaml")["datasets"]["cifar10_lt"]
    assert c10["splits"] == [1, 2, 3, 4, 5]
    assert c10["pretrain"] | {} == {
        **c10["pretrain"],
        "epochs": 2000,
        "batch_size": 512,
        "lr": 0.5,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "warmup_epochs": 10,
        "final_lr": 1e-6,
    }
    assert c10["methods"]["sdclr"]["hyperparameters"]["prune_ratio"] == 0.9
    assert c10["methods"]["simclr_balanced"]["pretrain_set"] == "D_b"
    assert c10["linear_probe"]["milestones"] == [10, 20]
    assert c10["fewshot_probe"]["epochs"] == 100
    inet = load_config(PAPER / "imagenet100_lt.yaml")["datasets"]["imagenet100_lt"]
    assert inet["model"]["arch"] == "resnet50" and inet["augmentation"]["crop_size"] == 224
    assert inet["methods"]["sdclr"]["hyperparameters"] == {
        "temperature": 0.3,
        "prune_ratio": 0.3,
        "head_hidden_layers": 2,
    }
    assert inet["groups"] == {"kind": "thresholds", "many_above": 100, "few_below": 20}


@pytest.mark.skipif(not IMAGENET_LISTS.exists(), reason="reference splits absent")
def test_imagenet_reference_lists_import_with_the_paper_sizes_and_groups():
    """The reference ImageNet-100-LT lists import as a split: D_i 12,205, D_b 12,200, S_b 1,200,
    and the threshold rule gives 39 Many / 48 Medium / 13 Few classes."""
    train_lists = [IMAGENET_LISTS / n for n in LIST_NAMES[:4]]
    paths, labels, seen = [], [], set()
    for list_path in train_lists:
        rel_paths, list_labels = read_image_list(list_path)
        for p, label in zip(rel_paths, list_labels.tolist(), strict=True):
            if p not in seen:
                seen.add(p)
                paths.append(p)
                labels.append(label)
    n = len(paths)
    dataset = ImageDataset(
        "imagenet100",
        torch.zeros(n, 3, 1, 1, dtype=torch.uint8),
        torch.tensor(labels),
        torch.zeros(1, 3, 1, 1, dtype=torch.uint8),
        torch.zeros(1, dtype=torch.long),
        [str(i) for i in range(100)],
        train_paths=paths,
    )
    files = {
        "train": LIST_NAMES[1],
        "validation": LIST_NAMES[3],
        "D_i": LIST_NAMES[0],
        "D_b": LIST_NAMES[1],
        "S_b": LIST_NAMES[2],
    }
    record = import_reference_split(
        {k: str(IMAGENET_LISTS / v) for k, v in files.items()}, dataset, "imagenet100_lt", 1
    )
    assert record["sizes"]["D_i"] == 12205
    assert record["sizes"]["D_b"] == 12200
    assert record["sizes"]["S_b"] == 1200
    groups = class_groups(
        record["counts"]["D_i"], {"kind": "thresholds", "many_above": 100, "few_below": 20}
    )
    assert [len(groups[g]) for g in ("Many", "Medium", "Few")] == [39, 48, 13]


def test_reference_split_errors_name_the_file(tmp_path):
    """An index file for another dataset (out of range) or a missing file is named."""
    np.save(tmp_path / "train.npy", np.arange(0, 80))
    np.save(tmp_path / "validation.npy", np.arange(80, 100))
    np.save(tmp_path / "split1_D_i.npy", np.arange(0, 40))
    np.save(tmp_path / "split1_D_b.npy", np.arange(0, 30))
    np.save(tmp_path / "split1_S_b.npy", np.arange(0, 500))  # beyond a 100-image dataset
    dataset = ImageDataset(
        "toy",
        torch.zeros(100, 1, 2, 2, dtype=torch.uint8),
        torch.arange(100) % 10,
        torch.zeros(1, 1, 2, 2, dtype=torch.uint8),
        torch.zeros(1, dtype=torch.long),
        [str(i) for i in range(10)],
    )
    files = {
        k: str(tmp_path / f"{'split{split}_' if k.startswith(('D_', 'S_')) else ''}{k}.npy")
        for k in ("train", "validation", "D_i", "D_b", "S_b")
    }
    with pytest.raises(ValueError, match="outside"):
        import_reference_split(files, dataset, "toy", 1)
    with pytest.raises(FileNotFoundError, match="split2_D_i"):
        import_reference_split(files, dataset, "toy", 2)


def hand_made_records(dataset="cifar10_lt", methods=("simclr", "sdclr")):
    """Per-split summaries whose means are known: Many/Medium/Few/Std/All = 80/70/60/8/70 for
    simclr (± 5 over splits on Many) and 90/80/70/8/80 for sdclr."""
    records = []
    for method, base in zip(methods, (0, 10), strict=False):
        for split, shift in ((1, -5), (2, 5)):
            for probe in ("linear", "fewshot"):
                summary = {
                    "Many": 80 + base + shift,
                    "Medium": 70 + base,
                    "Few": 60 + base,
                    "Std": 8.0,
                    "All": 70 + base,
                }
                records.append(
                    {
                        "dataset": dataset,
                        "method": method,
                        "split": split,
                        "seed": 0,
                        "probe": probe,
                        "summary": summary,
                    }
                )
    return records


def test_comparison_table_differences():
    """Ours, the paper's and ours - paper per dataset x method x column, for linked rows only."""
    records = hand_made_records(methods=("simclr", "sdclr", "simclr_balanced"))
    records += [{**r, "method": "simclr_balanced"} for r in hand_made_records()[:4]]
    linear = [r for r in records if r["probe"] == "linear"]
    names = {
        "cifar10_lt": {"names": ["CIFAR10-LT"], "methods": {"simclr": "SimCLR", "sdclr": "SDCLR"}}
    }
    comparison = compare_with_paper(linear, load_reported(REPORTED), "linear", names)
    assert set(comparison["method"]) == {"simclr", "sdclr"}  # the D_b control has no paper row
    row = comparison.set_index(["method", "column"])
    assert row.at[("sdclr", "All"), "paper_mean"] == 82.00
    assert row.at[("sdclr", "All"), "difference"] == pytest.approx(80 - 82.00)
    assert row.at[("simclr", "Many"), "ours_std"] == pytest.approx(5.0)
    assert row.at[("simclr", "Many"), "difference"] == pytest.approx(80 - 78.18)
    assert row.at[("simclr", "Few"), "paper_std"] == 7.07
    md = comparison_markdown(comparison, "linear")
    assert "| CIFAR10-LT | SDCLR | ours | 90.00 ± 5.00 |" not in md  # labels default to keys
    assert "| cifar10_lt | sdclr | ours (2 splits) | 90.00 ± 5.00 | 80.00 ± 0.00 |" in md
    assert "| | | CIFAR10-LT | 86.44 ± 3.12 |" in md
    assert "| | | ours − paper | +3.56 | -1.84 | -6.23 | +2.94 | -2.00 |" in md


def test_reaggregation_runs_no_training(tmp_path):
    """With evaluation files in place and no checkpoints at all, the documented re-aggregation
    command writes every table, figure and comparison of the paper config and runs nothing
    else (real Snakemake)."""
    config = PAPER / "cifar10_lt.yaml"
    methods = list(load_config(config)["datasets"]["cifar10_lt"]["methods"])  # removal runs too
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 5000)
    for split in range(1, 6):
        record = make_longtail_split(labels, 10, LongTailConfig(500, 4500), "cifar10_lt", split)
        counts = record["counts"]["D_i"]
        save_split(record, tmp_path / "results" / "splits" / "cifar10_lt" / f"split{split}.json")
        for method in methods:
            for probe in ("linear", "fewshot"):
                acc = rng.uniform(50, 90, 10).tolist()
                groups = class_groups(counts, {"kind": "thirds"})

                path = (
                    tmp_path
                    / "results"
                    / "eval"
                    / "cifar10_lt"
                    / method
                    / f"split{split}"
                    / "seed0"
                    / f"{probe}.json"
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(
                    json.dumps(
                        {
                            "dataset": "cifar10_lt",
                            "method": method,
                            "split": split,
                            "seed": 0,
                            "probe": probe,
                            "per_class_accuracy": acc,
                            "train_counts": counts,
                            "summary": group_summary(acc, groups),
                        }
                    )
                )
    proc = run_snakemake(
        tmp_path,
        "tables",
        "figures",
        "--cores",
        "2",
        "--configfile",
        str(config),
        "--allowed-rules",
        "tables",
        "figures",
        "make_tables",
        "make_figures",
        "compare_with_paper",
        "report_settings",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "results" / "checkpoints").exists()
    comparison = pd.read_csv(tmp_path / "results" / "tables" / "linear_vs_paper.csv")
    # SimCLR and SDCLR x 5 columns, and SDCLR + COLT's All (COLT's Table 1); the D_b control: none
    assert len(comparison) == 2 * 5 + 1
    colt = comparison[comparison["method"] == "sdclr_colt"]
    assert len(colt) == 1 and colt["paper_mean"].iloc[0] == 84.86
    table = (tmp_path / "results" / "tables" / "linear.md").read_text()
    assert "SimCLR (D_b)" in table
    assert (tmp_path / "results" / "figures" / "paper_comparison.png").stat().st_size > 10_000
    shutil.rmtree(tmp_path / "results")


def test_a_split_one_reported_table_is_compared_with_our_split_one_only(tmp_path):
    """BCL's README numbers are of CIFAR-100-LT split 1 and of BCL's probe: they are compared
    with our split-1 result of that probe (not the mean over splits), only in the columns they
    report, and labelled with the table they come from; the linear probe's comparison has the
    SDCLR paper's table only."""
    records = [
        {**r, "dataset": "cifar100_lt", "probe": "bcl_fullshot"}
        for r in hand_made_records(dataset="cifar100_lt")
        if r["probe"] == "linear"
    ]
    reported = load_reported(REPORTED)
    split1 = "CIFAR100-LT, split 1 (BCL README)"
    assert reported["bcl_fullshot"][split1]["splits"] == [1]
    assert reported["bcl_fullshot"][split1]["BCL-D"] == {"All": [58.7, None]}
    assert reported["bcl_100shot"][split1]["BCL-D"] == {"All": [52.6, None]}
    assert reported["bcl_50shot"][split1]["SimCLR (BCL)"] == {"All": [42.4, None]}
    assert split1 not in reported["linear"]
    names = {
        "cifar100_lt": {
            "names": ["CIFAR100-LT", split1],
            "methods": {"simclr": "SimCLR (BCL)", "sdclr": "SDCLR (BCL)"},
        }
    }
    comparison = compare_with_paper(records, reported, "bcl_fullshot", names)
    assert set(comparison["reported_as"]) == {split1}
    readme = comparison.set_index(["method", "column"])
    assert list(readme.index.get_level_values("column").unique()) == ["All"]
    assert readme.at[("sdclr", "All"), "ours_mean"] == 80  # split 1 alone: All = 80
    assert readme.at[("sdclr", "All"), "splits"] == 1
    assert readme.at[("sdclr", "All"), "difference"] == pytest.approx(80 - 55.0)
    md = comparison_markdown(comparison, "bcl_fullshot")
    assert md.startswith("## BCL's full-shot probe")
    assert f"| | | {split1} | – | – | – | – | 55.00 |" in md
    assert "| cifar100_lt | sdclr | ours (1 splits) | – | – | – | – | 80.00 ± 0.00 |" in md
    linear = [{**r, "probe": "linear"} for r in records]
    assert set(compare_with_paper(linear, reported, "linear", names)["reported_as"]) <= {
        "CIFAR100-LT"
    }


def test_only_the_bcl_protocol_runs_meet_bcls_numbers():
    """In the CIFAR-100-LT paper config, BCL's README rows are linked from the BCL-protocol
    runs only (BCL's weight decays, one hidden layer, BCL-D's jitter), and the SDCLR paper's
    rows from the SDCLR-protocol SimCLR and SDCLR only; a record of every run on split 1 of
    every probe meets the reported numbers of its own probe alone."""
    from sdclr.pipeline.paths import paper_names

    config = load_config(PAPER / "cifar100_lt.yaml")
    entry = config["datasets"]["cifar100_lt"]
    methods = entry["methods"]
    bcl_runs = {"bclp_simclr", "bclp_bcl_i", "bclp_sdclr", "bclp_bcl_d"}
    for run in bcl_runs:
        assert methods[run]["hyperparameters"]["head_hidden_layers"] == 1
    assert methods["bclp_simclr"]["pretrain"]["weight_decay"] == 5e-4
    assert methods["bclp_bcl_i"]["pretrain"]["weight_decay"] == 5e-4
    assert methods["bclp_sdclr"]["pretrain"]["weight_decay"] == 1e-4
    assert methods["bclp_bcl_d"]["pretrain"]["weight_decay"] == 1e-4
    jitter = {"num_ops": 2, "min_magnitude": 5, "magnitude_jitter": True}
    assert methods["bclp_bcl_d"]["bcl"] == jitter
    assert "pretrain" not in methods["bcl_d"] and "paper" not in methods["bcl_d"]
    assert methods["simclr_t01"]["hyperparameters"]["temperature"] == 0.1
    assert entry["probes"] == ["linear", "fewshot", "bcl_fullshot", "bcl_100shot", "bcl_50shot"]
    reported = load_reported(REPORTED)
    names = paper_names(config)
    records = [
        {**r, "dataset": "cifar100_lt", "method": method, "split": 1}
        for method in methods
        for r in hand_made_records(dataset="cifar100_lt")[:1]
    ]
    for probe in ("linear", "bcl_fullshot", "bcl_100shot", "bcl_50shot"):
        ours = [{**r, "probe": probe} for r in records]
        compared = set(compare_with_paper(ours, reported, probe, names)["method"])
        linear = {"simclr", "sdclr", "sdclr_colt"}  # the SDCLR paper's rows and COLT's
        assert compared == (linear if probe == "linear" else bcl_runs), probe
