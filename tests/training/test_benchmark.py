"""The pretraining benchmark (scripts/bench_pretrain.py, sdclr/benchmark/) on tiny settings."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch._dynamo
import yaml
from torch._dynamo.testing import CompileCounter

import sdclr.benchmark.loop
import sdclr.training.loop
from sdclr.benchmark import (
    METHOD_SPECS,
    BenchConfig,
    bench_loop,
    bench_reference,
    step_operator_counts,
)
from sdclr.benchmark.report import _loop_lines
from sdclr.training import step as train_step

ROOT = Path(__file__).resolve().parents[2]


def _numbers(tree, path=""):
    """Every number in a nested dict, with its key path (booleans are settings, not numbers)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{path}.{key}" if path else key)
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield path, tree


def test_benchmark_runs_end_to_end_and_reports_positive_numbers(tmp_path):
    """The entry point runs the real pretrain loop and the reference pipeline of both methods,
    the operator counts and the augmentation comparison on tiny settings, prints views/s,
    the ratio, the mask cost and the projected run, and writes a JSON whose every measured
    number is positive."""
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "bench_pretrain.py"),
        *("--width", "0.125", "--batch-size", "32", "--steps", "2", "--warmup", "1"),
        *("--dataset-size", "128", "--workers", "1", "--augment-batches", "1"),
        *("--loop-epochs", "2", "--loop-warmup-epochs", "1"),
        *("--augment-batch-size", "32", "--augment-rounds", "1"),
        *("--pil-images", "32", "--threads", "1", "--json", str(out)),
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    for needle in (
        "batched on cpu",
        "per-image PIL",
        "simclr   loop",
        "simclr   reference",
        "sdclr    loop",
        "sdclr    reference",
        "real loop / reference",
        "prune mask",
        "operators per step, before",
        "operators per step, now",
        "projected 2000-epoch run (4 steps/epoch)",
        "BCL's RandAugment alone",
    ):
        assert needle in text, (needle, text)

    results = json.loads(out.read_text())
    assert set(results["pretrain"]) == {"simclr", "sdclr"}
    for method in ("simclr", "sdclr"):
        entry = results["pretrain"][method]
        for kind in ("loop", "reference"):
            for key in ("step_seconds", "views_per_second", "projected_run_hours"):
                assert key in entry[kind], (method, kind, key)
        assert "speedup" in entry
    assert "mask_seconds_per_epoch" in results["pretrain"]["sdclr"]["reference"]
    assert results["randaugment"]["batched_vs_pil"] > 0
    for method in ("simclr", "sdclr"):
        loop = results["pretrain"][method]["loop"]
        assert len(loop["warmup_epoch_seconds"]) == 1 and loop["compile"] is False  # CPU: eager
        counts = results["pretrain"][method]["operators_per_step"]
        # foreach SGD: one multi-tensor op per update step instead of one per parameter
        assert counts["now"]["top_level_aten_ops"] < counts["before"]["top_level_aten_ops"]
    numbers = dict(_numbers({k: v for k, v in results.items() if k != "settings"}))
    assert len(numbers) > 20
    assert all(value > 0 for value in numbers.values()), numbers


def test_bench_config_refuses_impossible_settings():
    """Unknown methods, a batch of one, or fewer images than a batch are refused up front;
    the reference-style pipeline refuses a method that has no reference code to reproduce
    (it would time SimCLR's reference under BCL-D's name)."""
    with pytest.raises(ValueError, match="byol"):
        BenchConfig(methods=("byol",))
    with pytest.raises(ValueError, match="batch_size"):
        BenchConfig(batch_size=1)
    with pytest.raises(ValueError, match="dataset_size"):
        BenchConfig(batch_size=64, dataset_size=32)
    with pytest.raises(ValueError, match="reproduces simclr, sdclr only, not 'bcl_d'"):
        bench_reference(BenchConfig(methods=("bcl_d",)), "bcl_d", torch.device("cpu"))
    assert BenchConfig().steps_per_epoch == 22  # CIFAR-10-LT: 21 of 512 and the last of 413


def test_the_benchmarked_loop_is_the_pretrain_loop(monkeypatch):
    """bench_loop times sdclr.training.loop.pretrain itself (the function every pretrain job
    runs), for the warm-up plus the timed epochs, and its views/s follow from those epochs'
    seconds."""
    calls = []
    real = sdclr.training.loop.pretrain
    assert sdclr.benchmark.loop.pretrain is real

    def recording(job, images, out_dir, seed, device, progress, on_epoch_end):
        calls.append(job)
        return real(job, images, out_dir, seed, device, progress, on_epoch_end)

    monkeypatch.setattr(sdclr.benchmark.loop, "pretrain", recording)
    cfg = BenchConfig(
        width=0.0625, batch_size=16, dataset_size=48, image_size=12, loop_epochs=2,
        loop_warmup_epochs=1, methods=("sdclr",),
    )  # fmt: skip
    result = bench_loop(cfg, "sdclr", torch.device("cpu"))
    assert len(calls) == 1 and calls[0].pretrain.epochs == 3
    assert calls[0].method.hyperparameters["prune_ratio"] == cfg.prune_ratio
    assert len(result["warmup_epoch_seconds"]) == 1
    assert result["views_per_second"] == pytest.approx(2 * 48 / result["epoch_seconds"])


def test_the_benchmarks_bcl_d_and_difficult_pairs_are_the_paper_configs():
    """``bcl_d`` and ``sdclr_de`` run the algorithm and extensions of the paper config's entries
    of those names, so the speed measured is the speed of the rows the grid runs."""
    methods = yaml.safe_load((ROOT / "config/paper/cifar_base.yaml").read_text())["methods"]
    for name, (algorithm, extensions) in METHOD_SPECS.items():
        entry = methods[name]
        assert entry.get("algorithm", name) == algorithm, name
        assert {key: entry[key] for key in extensions} == extensions, name
        others = set(entry) - {"algorithm", "label", "paper", "pretrain_set", "hyperparameters"}
        assert others == set(extensions), name  # no extension of the entry left out


@pytest.mark.parametrize("name", ["bcl_d", "sdclr_de"])
def test_bcl_d_and_difficult_pairs_are_timed_in_the_loop_with_their_extensions(name, monkeypatch):
    """The loop the benchmark times for BCL-D / SDCLR + difficult pairs is the pretrain loop
    with the entry's extensions (BCL's per-sample state, the difficult band in the log), and
    one of its steps dispatches more operators than plain SDCLR's."""
    calls = []
    real = sdclr.training.loop.pretrain

    def recording(job, *args, **kwargs):
        calls.append(job)
        return real(job, *args, **kwargs)

    monkeypatch.setattr(sdclr.benchmark.loop, "pretrain", recording)
    cfg = BenchConfig(
        width=0.0625, batch_size=16, dataset_size=48, image_size=12, loop_epochs=1,
        loop_warmup_epochs=1, methods=(name,),
    )  # fmt: skip
    cpu = torch.device("cpu")
    result = bench_loop(cfg, name, cpu)
    assert calls[0].method.algorithm == "sdclr"
    assert set(calls[0].method.extensions) == set(METHOD_SPECS[name][1])
    assert result["views_per_second"] > 0
    ops = step_operator_counts(cfg, name, cpu)["now"]["aten_ops"]
    assert ops > step_operator_counts(cfg, "sdclr", cpu)["now"]["aten_ops"]


def test_a_compiled_loop_reports_its_graphs_per_epoch_and_its_breaks(monkeypatch):
    """With compile on, the benchmark reports the graphs the run compiled by the end of each
    epoch (one per batch shape: 40 images at batch 16 give a full and a partial one, and no
    more after the first epoch) and its graph breaks, and prints them. Dynamo's counting
    backend stands in for inductor, as in tests/training/test_compile.py."""
    torch._dynamo.reset()
    monkeypatch.setattr(
        train_step.torch, "compile", functools.partial(torch.compile, backend=CompileCounter())
    )
    cfg = BenchConfig(
        width=0.0625, batch_size=16, dataset_size=40, image_size=12, loop_epochs=2,
        loop_warmup_epochs=1, methods=("sdclr",), compile="true",
    )  # fmt: skip
    try:
        result = bench_loop(cfg, "sdclr", torch.device("cpu"))
    finally:
        torch._dynamo.reset()
    assert result["compile"] is True
    assert result["compiled_graphs_per_epoch"] == [2, 2, 2] and result["graph_breaks"] == 0
    line = _loop_lines("sdclr", result, dataclasses.asdict(cfg))[1]
    assert "graphs compiled by the end of each epoch [2, 2, 2], 0 graph breaks" in line
