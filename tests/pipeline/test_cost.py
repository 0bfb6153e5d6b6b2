"""The cost estimate before submitting (sdclr/pipeline/cost.py): the plan's jobs per rule,
GPU-hours a hand computation reproduces, and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdclr.pipeline.config_files import load_raw_config
from sdclr.pipeline.cost import _Costing, estimate
from sdclr.pipeline.jobs import all_jobs
from sdclr.pipeline.resolve import resolve
from sdclr.pipeline.speeds import default_speeds, read_benchmark
from sdclr.pipeline.workload import model_factor
from tests.reporting.test_paper import (
    PAPER,
    ROOT,
    _fake_imagenet_lists,
    _fake_pool,
    job_counts,
    run_snakemake,
)

#: The paper grids' GPU jobs (tests/reporting/test_paper.py reads them from Snakemake's dry run).
PAPER_JOBS = {
    "cifar10_lt": {
        "pretrain": 95,
        "features": 95,
        "probe": 190,
        "select_difficult": 15,
        "analyse": 95,
    },
    "imagenet100_lt": {"pretrain": 2, "features": 2, "probe": 4, "analyse": 2},
    "all": {"pretrain": 212, "features": 212, "probe": 769, "select_difficult": 30, "analyse": 212},
}


@pytest.fixture(scope="module")
def cifar10_plan():
    return resolve(load_raw_config(PAPER / "cifar10_lt.yaml"))


def _cost(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sdclr.pipeline.cost", *args],
        cwd=workdir, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_cifar10_jobs_per_rule_and_one_pretraining_by_hand(cifar10_plan):
    """The estimate lists the plan's jobs per rule; SimCLR on split 1 costs 2,000 epochs x
    11,165 D_i images x 2 views / 110,000 views/s; SDCLR at 90,000; COLT's grown epochs and
    its resamplings' forward passes on top."""
    rules = {r.rule: r for r in estimate(cifar10_plan, default_speeds())}
    for rule, count in PAPER_JOBS["cifar10_lt"].items():
        assert rules[rule].jobs == count and rules[rule].gpu_hours > 0, rule
    assert rules["make_split"].jobs == 5 and rules["make_split"].gpu_hours == 0
    costing = _Costing(cifar10_plan, default_speeds())
    job = {"dataset": "cifar10_lt", "split": 1, "seed": 0}
    simclr = costing.seconds("pretrain", {**job, "method": "simclr"})
    assert simclr == pytest.approx(2000 * 11165 * 2 / 110_000)
    sdclr = costing.seconds("pretrain", {**job, "method": "sdclr"})
    assert sdclr == pytest.approx(2000 * 11165 * 2 / 90_000)
    balanced = costing.seconds("pretrain", {**job, "method": "simclr_balanced"})
    assert balanced == pytest.approx(2000 * 11160 * 2 / 110_000)  # D_b
    removal = costing.seconds("pretrain", {**job, "method": "simclr_removal"})
    assert removal == pytest.approx(2000 * (11165 - 1117) * 2 / 110_000)  # ceil(10 %) removed
    # COLT (W = 100, P = 25): 10,000 pool images in each of the last 1,900 epochs, and 76
    # resamplings that each forward D_i and the 300K pool once (330,000 forward images/s).
    colt = costing.seconds("pretrain", {**job, "method": "sdclr_colt"})
    grown = (2000 * 11165 + 1900 * 10_000) * 2 / 90_000
    assert colt == pytest.approx(grown + 76 * (11165 + 300_000) / 330_000)
    halved = {r.rule: r for r in estimate(cifar10_plan, default_speeds(55_000))}
    assert halved["pretrain"].gpu_hours == pytest.approx(2 * rules["pretrain"].gpu_hours)


def test_every_config_lists_jobs():
    """Every config of config/ (but the ImageNet ones, which need their lists) plans."""
    configs = ROOT / "config"
    paths = [configs / "config.yaml", configs / "variants.yaml", PAPER / "cifar100_lt.yaml"]
    for path in [*paths, *sorted((configs / "validation").glob("*.yaml"))]:
        rules = estimate(resolve(load_raw_config(path)), default_speeds())
        assert rules[0].rule == "prepare_dataset" and any(r.rule == "pretrain" for r in rules)


def test_all_paper_configs_on_the_command_line(tmp_path):
    """config/paper/all.yaml (fake ImageNet lists): the JSON's jobs per rule are the paper
    grid's, hours positive and the sum of the rules; the table says the speeds are defaults."""
    _fake_imagenet_lists(tmp_path)
    proc = _cost(tmp_path, "--config", str(PAPER / "all.yaml"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    rules = {r["rule"]: r for r in result["rules"]}
    for rule, count in PAPER_JOBS["all"].items():
        assert rules[rule]["jobs"] == count and rules[rule]["gpu_hours"] > 0, rule
    assert rules["pretrain"]["gpus_per_job"] == [1, 4]  # ImageNet's pretraining: 4 GPUs
    assert result["gpu_jobs"] == sum(PAPER_JOBS["all"].values()) and not result["measured"]
    assert result["total_gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in rules.values()))
    assert "default speeds, not measurements" in result["summary"]
    assert result["summary"].startswith(f"{PAPER / 'all.yaml'}: 212 pretrainings, 30 selections")


def test_imagenet_jobs_scale_by_the_model(tmp_path, monkeypatch):
    """ResNet-50 at 224 px costs its FLOPs over ResNet-18's at 32 px (about 7x) per view."""
    _fake_imagenet_lists(tmp_path)
    monkeypatch.chdir(tmp_path)
    plan = resolve(load_raw_config(PAPER / "imagenet100_lt.yaml"))
    model = plan["settings"]["imagenet100_lt"]["pretrain/simclr"]["model"]
    factor = model_factor(model, 224, (1.0, 32))
    assert 6 < factor < 9
    seconds = _Costing(plan, default_speeds()).seconds(
        "pretrain", {"dataset": "imagenet100_lt", "method": "simclr", "split": 1, "seed": 0}
    )
    assert seconds == pytest.approx(500 * 1 * 2 * factor / 110_000)  # the fake D_i: 1 image


def test_a_measured_benchmark_and_bad_ones(tmp_path):
    """A bench_pretrain.py JSON gives its device and speeds; a bad one is a one-line error."""
    good = tmp_path / "bench.json"
    good.write_text(json.dumps({
        "device": "cuda (NVIDIA H200)", "settings": {"width": 1.0, "image_size": 32},
        "pretrain": {"simclr": {"loop": {"views_per_second": 50_000.0}}},
    }))  # fmt: skip
    speeds = read_benchmark(good)
    assert speeds.measured and speeds.views_per_second["simclr"] == 50_000
    assert speeds.views_per_second["sdclr"] == pytest.approx(50_000 * 90 / 110)
    assert "sdclr was not measured" in speeds.notes[0]
    broken = tmp_path / "broken.json"
    broken.write_text('{"pretrain": {"simclr": {"loop": {"views_per_second": 0}}}}')
    for path, message in ((broken, "views_per_second is 0"), (tmp_path / "none.json", "exist")):
        proc = _cost(tmp_path, "--config", str(ROOT / "config" / "config.yaml"),
                     "--benchmark", str(path))  # fmt: skip
        assert proc.returncode == 1 and proc.stdout == "", proc.stderr
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: ")


def test_a_measured_bcl_d_prices_the_bcl_d_runs_and_nothing_else(cifar10_plan, tmp_path):
    """bench_pretrain.py --methods ... bcl_d measures the paper configs' BCL-D: the config's
    bcl_d runs cost their views at that speed; BCL-I (another SimCLR + BCL entry) and plain
    SDCLR keep their algorithm's."""
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({
        "device": "cuda (NVIDIA H200)", "settings": {"width": 1.0, "image_size": 32},
        "pretrain": {
            "simclr": {"loop": {"views_per_second": 100_000.0}},
            "sdclr": {"loop": {"views_per_second": 80_000.0}},
            "bcl_d": {"loop": {"views_per_second": 40_000.0}},
        },
    }))  # fmt: skip
    speeds = read_benchmark(bench)
    assert speeds.methods == {"bcl_d": 40_000.0}
    costing = _Costing(cifar10_plan, speeds)
    job = {"dataset": "cifar10_lt", "split": 1, "seed": 0}
    views = 2000 * 11165 * 2
    assert costing.seconds("pretrain", {**job, "method": "bcl_d"}) == pytest.approx(views / 40_000)
    assert costing.seconds("pretrain", {**job, "method": "sdclr"}) == pytest.approx(views / 80_000)
    assert costing.seconds("pretrain", {**job, "method": "bcl_i"}) == pytest.approx(views / 100_000)


@pytest.mark.slow
def test_the_jobs_are_snakemakes(tmp_path):
    """The demo config's and the paper union's jobs per rule are those of Snakemake's dry run."""
    _fake_imagenet_lists(tmp_path)
    _fake_pool(tmp_path)  # a dry run of the CIFAR configs needs COLT's pool file to exist
    for config in (ROOT / "config" / "config.yaml", PAPER / "all.yaml"):
        proc = run_snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", str(config))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        counts = job_counts(proc.stdout)
        ours = all_jobs(resolve(load_raw_config(config))["config"])
        local = ("all", "total", "job_settings", "report_settings")
        expected = {rule: n for rule, n in counts.items() if rule not in local}
        assert {rule: len(jobs) for rule, jobs in ours.items()} == expected
