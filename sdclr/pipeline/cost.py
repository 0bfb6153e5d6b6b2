"""What a config costs before it is submitted: its jobs per rule and their projected
GPU-hours, from the benchmark's measured speed on your GPU or the stated defaults.

    python -m sdclr.pipeline.cost --config config/paper/cifar10_lt.yaml
    python -m sdclr.pipeline.cost --config config/paper/all.yaml --benchmark bench.json
    python -m sdclr.pipeline.cost --config ... --gpu-views-per-second 95000 --json

The jobs are the plan's (``sdclr.pipeline.resolve``, the jobs the Snakefile runs, listed by
``sdclr.pipeline.jobs``). A pretraining job costs ``epochs x images x 2 views x model
factor / views per second`` of its algorithm (SDCLR's figure includes its pruned pass); a
probe, an analysis or a selection its forward images (``sdclr.pipeline.workload``) at the
forward-only speed (``sdclr.pipeline.speeds``). GPU-hours assume a multi-GPU job scales
linearly; the other rules (data, splits, tables) run on CPUs and count no GPU-hours.
Run it where the config's files are (a reference split's lists are counted).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

from sdclr.pipeline import workload
from sdclr.pipeline.cli import run
from sdclr.pipeline.config_files import load_raw_config
from sdclr.pipeline.dag import STAGES, STAGES_BY_NAME
from sdclr.pipeline.jobs import Wildcards, all_jobs
from sdclr.pipeline.resolve import resolve
from sdclr.pipeline.resources import load_resources
from sdclr.pipeline.speeds import Speeds, default_speeds, read_benchmark
from sdclr.probes import PROBES

#: The rules whose jobs run on GPUs (the stage table says so), and what their jobs are called
#: in the total line: the pretrainings (most of the cost) first, then the table's order.
GPU_RULES = {
    stage.name: stage.gpu_jobs
    for stage in sorted(STAGES, key=lambda stage: stage.name != "pretrain")
    if stage.gpu_jobs
}


@dataclass(frozen=True)
class RuleCost:
    """One rule's jobs, the GPUs each asks for (each value its datasets give) and their
    GPU-hours together."""

    rule: str
    jobs: int
    gpus_per_job: tuple[int, ...]
    gpu_hours: float

    @property
    def hours_per_job(self) -> float:
        return self.gpu_hours / self.jobs

    @property
    def on_gpus(self) -> bool:
        return self.rule in GPU_RULES


def hours(value: float) -> str:
    """GPU-hours, readable from seconds to thousands of hours."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


class _Costing:
    """GPU-seconds of the jobs of one plan at ``speeds``."""

    def __init__(self, plan: dict[str, Any], speeds: Speeds):
        self.plan, self.speeds = plan, speeds
        self.datasets = plan["config"]["datasets"]

    def sizes(self, job: Wildcards) -> dict[str, int]:
        return workload.dataset_sizes(self.plan["settings"][job["dataset"]], job["split"])

    def factor(self, job: Wildcards, crop: int) -> float:
        model = self.plan["settings"][job["dataset"]][f"pretrain/{job['method']}"]["model"]
        return workload.model_factor(model, crop, self.speeds.reference)

    def forward(self, job: Wildcards, images: int, crop: int) -> float:
        return images * self.factor(job, crop) / self.speeds.forward_images_per_second

    def seconds(self, rule: str, job: Wildcards) -> float:
        settings = self.plan["settings"].get(job.get("dataset"), {})
        if rule == "pretrain":
            job_settings = settings[f"pretrain/{job['method']}"]
            views, forward = workload.pretrain_work(job_settings, self.sizes(job))
            crop = job_settings["augmentation"]["crop_size"]
            spec = job_settings["method"]
            rate = self.speeds.training(spec["algorithm"], spec["name"])
            return views * self.factor(job, crop) / rate + self.forward(job, forward, crop)
        if rule == "probe":
            probe = settings[f"probe/{job['probe']}"]
            subset = PROBES[job["probe"]].train_subset
            images = workload.probe_images(probe, self.sizes(job), subset)
            return self.forward(job, images, probe["crop_size"])
        if rule == "features":
            crop = settings["features"]["crop_size"]
            return self.forward(job, workload.features_images(self.sizes(job)), crop)
        if rule == "analyse":
            images = workload.analysis_images(self.sizes(job))
            return self.forward(job, images, settings["analysis"]["crop_size"])
        if rule == "select_difficult":
            crop = settings[f"pretrain/{job['method']}"]["augmentation"]["crop_size"]
            return self.forward(job, self.sizes(job)["D_i"], crop)
        return 0.0

    def gpus(self, rule: str, jobs: list[Wildcards]) -> tuple[int, ...]:
        datasets = dict.fromkeys(job["dataset"] for job in jobs)
        asks = STAGES_BY_NAME[rule].resource_rule  # the features job asks for the probe's
        found = {load_resources(self.datasets[d]["resources"])[asks].gpus for d in datasets}
        return tuple(sorted(found))


def estimate(plan: dict[str, Any], speeds: Speeds) -> list[RuleCost]:
    """Each rule's jobs and GPU-hours for ``plan`` (``sdclr.pipeline.resolve.resolve``)."""
    costing = _Costing(plan, speeds)
    rules = []
    for rule, jobs in all_jobs(plan["config"]).items():
        if rule not in GPU_RULES:
            rules.append(RuleCost(rule, len(jobs), (0,), 0.0))
            continue
        seconds = sum(costing.seconds(rule, job) for job in jobs)
        rules.append(RuleCost(rule, len(jobs), costing.gpus(rule, jobs), seconds / 3600.0))
    return rules


def summary_line(name: str, rules: list[RuleCost], speeds: Speeds) -> str:
    """``<config>: 65 pretrainings, ... (N GPU jobs of M) ≈ X GPU-hours on <device>``."""
    by_rule = {r.rule: r for r in rules}
    parts = [f"{by_rule[r].jobs} {label}" for r, label in GPU_RULES.items() if r in by_rule]
    gpu_jobs = sum(by_rule[r].jobs for r in GPU_RULES if r in by_rule)
    total = sum(r.gpu_hours for r in rules)
    return (
        f"{name}: {', '.join(parts)} ({gpu_jobs} GPU jobs of {sum(r.jobs for r in rules)}) "
        f"≈ {hours(total)} GPU-hours on {speeds.describe()}"
    )


def format_table(name: str, rules: list[RuleCost], speeds: Speeds) -> str:
    """The readable table: rule, jobs, GPUs per job, GPU-hours per job and in all."""
    lines = [f"{'rule':<22}{'jobs':>6}{'GPUs/job':>10}{'GPU-h/job':>11}{'GPU-h':>11}"]
    for r in rules:
        each, total = (hours(r.hours_per_job), hours(r.gpu_hours)) if r.on_gpus else ("-", "-")
        if r.on_gpus and 0 in r.gpus_per_job:  # a CPU job in this config
            each, total = each + "*", total + "*"
        gpus = ",".join(map(str, r.gpus_per_job))
        lines.append(f"{r.rule:<22}{r.jobs:>6}{gpus:>10}{each:>11}{total:>11}")
    total = hours(sum(r.gpu_hours for r in rules))
    lines.append(f"{'total':<22}{sum(r.jobs for r in rules):>6}{'':>10}{'':>11}{total:>11}")
    lines += ["", summary_line(name, rules, speeds), *_notes(rules, speeds)]
    return "\n".join(lines)


def _notes(rules: list[RuleCost], speeds: Speeds) -> list[str]:
    rates = {**speeds.views_per_second, **speeds.methods}
    views = ", ".join(f"{a} {v:,.0f}" for a, v in rates.items())
    width, crop = speeds.reference
    notes = [
        f"speeds: {speeds.describe()}: pretraining views/s {views}; forward images/s "
        f"{speeds.forward_images_per_second:,.0f}; for ResNet-18 (CIFAR stem, width {width:g}) "
        f"at {crop} px, scaled by each job's forward FLOPs (never below 1x)",
        *speeds.notes,
    ]
    if not speeds.measured:
        notes.append(
            "measure yours: python scripts/bench_pretrain.py --json bench.json, then "
            "--benchmark bench.json"
        )
    if any(r.on_gpus and 0 in r.gpus_per_job for r in rules):
        notes.append(
            "* CPU jobs in this config (resources: gpus 0): the hours they would take on the GPU"
        )
    return [f"note: {n}" for n in notes]


def as_json(name: str, rules: list[RuleCost], speeds: Speeds) -> dict[str, Any]:
    """The estimate for machines."""
    return {
        "config": name,
        "device": speeds.device,
        "measured": speeds.measured,
        "views_per_second": speeds.views_per_second,
        "method_views_per_second": speeds.methods,
        "forward_images_per_second": speeds.forward_images_per_second,
        "reference_model": {"arch": "resnet18", "stem": "cifar", "width": speeds.reference[0],
                            "crop_size": speeds.reference[1]},
        "rules": [{**asdict(r), "gpu_hours_per_job": r.hours_per_job} for r in rules],
        "gpu_jobs": sum(r.jobs for r in rules if r.rule in GPU_RULES),
        "total_gpu_hours": sum(r.gpu_hours for r in rules),
        "summary": summary_line(name, rules, speeds),
        "notes": list(speeds.notes),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml", help="a config file")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--benchmark", help="the JSON of scripts/bench_pretrain.py --json")
    group.add_argument("--gpu-views-per-second", type=float, help="SimCLR's views/s on one GPU")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    if args.benchmark:
        speeds = read_benchmark(args.benchmark)
    else:
        speeds = default_speeds(args.gpu_views_per_second)
    rules = estimate(resolve(load_raw_config(args.config)), speeds)
    if args.json:
        print(json.dumps(as_json(args.config, rules, speeds), indent=2))
    else:
        print(format_table(args.config, rules, speeds))


if __name__ == "__main__":
    run(main)
