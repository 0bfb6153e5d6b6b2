"""The pretraining benchmark (scripts/bench_pretrain.py, scripts/benchmark.py) on tiny settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark import BenchConfig

ROOT = Path(__file__).resolve().parents[1]


def _numbers(tree, path=""):
    """Every number in a nested dict, with its key path (booleans are settings, not numbers)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{path}.{key}" if path else key)
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield path, tree


def test_benchmark_runs_end_to_end_and_reports_positive_numbers(tmp_path):
    """The entry point runs the fast and reference pipelines of both methods and the
    augmentation comparison on tiny settings, prints views/s, the ratio, the mask costs and
    the projected run, and writes a JSON whose every measured number is positive."""
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "bench_pretrain.py"),
        *("--width", "0.125", "--batch-size", "32", "--steps", "2", "--warmup", "1"),
        *("--dataset-size", "128", "--workers", "1", "--augment-batches", "1"),
        *("--augment-batch-size", "32", "--augment-rounds", "1"),
        *("--pil-images", "32", "--threads", "1", "--json", str(out)),
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for needle in (
        "batched on cpu",
        "per-image PIL",
        "simclr fast",
        "simclr reference",
        "sdclr  fast",
        "sdclr  reference",
        "fast / reference",
        "prune mask",
        "projected 2000-epoch run (4 steps/epoch)",
        "BCL's RandAugment alone",
    ):
        assert needle in text, (needle, text)

    results = json.loads(out.read_text())
    assert set(results["pretrain"]) == {"simclr", "sdclr"}
    for method in ("simclr", "sdclr"):
        entry = results["pretrain"][method]
        for kind in ("fast", "reference"):
            for key in ("step_seconds", "views_per_second", "projected_run_hours"):
                assert key in entry[kind], (method, kind, key)
        assert "speedup" in entry
    assert "mask_seconds_per_epoch" in results["pretrain"]["sdclr"]["fast"]
    assert "mask_seconds_per_epoch" in results["pretrain"]["sdclr"]["reference"]
    assert results["randaugment"]["batched_vs_pil"] > 0
    numbers = dict(_numbers({k: v for k, v in results.items() if k != "settings"}))
    assert len(numbers) > 20
    assert all(value > 0 for value in numbers.values()), numbers


def test_bench_config_refuses_impossible_settings():
    """Unknown methods, a batch of one, or fewer images than a batch are refused up front."""
    with pytest.raises(ValueError, match="byol"):
        BenchConfig(methods=("byol",))
    with pytest.raises(ValueError, match="batch_size"):
        BenchConfig(batch_size=1)
    with pytest.raises(ValueError, match="dataset_size"):
        BenchConfig(batch_size=64, dataset_size=32)
    assert BenchConfig().steps_per_epoch == 22  # CIFAR-10-LT: 21 of 512 and the last of 413
