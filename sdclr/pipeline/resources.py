"""What each rule asks a scheduler for: the config's ``resources`` section, per rule.

``resources: {pretrain: {gpus: 1, cpus_per_gpu: 8, mem_mb: 32000, runtime: 480}, ...}`` in an
experiment config sizes that experiment's jobs; a rule left out, or a key left out, takes the
default below (:data:`RULE_DEFAULTS`, sized for the paper's CIFAR runs). The rules read these
through :func:`rule_resources` (``workflow/rules/common.smk``); the SLURM profile adds only
site facts (account, partitions, GPU model). A job that SLURM stops at its time limit is
retried by Snakemake with ``attempt`` = 2, 3: it gets ``attempt`` times the runtime and
``1 + (attempt - 1) / 2`` times the memory.

Where a rule names no partition, its jobs go to the site's partition: the environment
variable ``SDCLR_SLURM_GPU_PARTITION`` for a job with GPUs, else ``SDCLR_SLURM_PARTITION``
(the SLURM profile sets both from its site block; unset: the cluster's default). A job with
GPUs asks for the site's GPU model, ``SDCLR_SLURM_GPU_MODEL``, when there is one.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from sdclr.errors import ConfigError
from sdclr.settings import load, setting


@dataclass(frozen=True)
class JobResources:
    """What one job of a rule asks for (its first attempt; retries get more time and memory)."""

    gpus: int = setting(0, doc="GPUs per job (sbatch --gpus); 0 = a CPU job.", minimum=0)
    cpus_per_gpu: int = setting(
        8, doc="CPUs per GPU (sbatch --cpus-per-gpu), the torch threads of a GPU job.", minimum=1
    )
    cpus: int = setting(
        1, doc="CPUs of a job without GPUs (sbatch --cpus-per-task), its threads.", minimum=1
    )
    mem_mb: int = setting(4000, doc="Memory in MB (sbatch --mem).", minimum=1)
    runtime: int = setting(30, doc="Wall time in minutes (sbatch -t).", minimum=1)
    partition: str = setting(
        "",
        doc="Partition (sbatch -p); empty: the site's GPU partition for a GPU job, else the "
        "site's CPU partition (workflow/profiles/slurm).",
    )


# The rules that run as jobs (settings rules are local) and what they ask for by default.
RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "prepare_dataset": {"mem_mb": 16000, "runtime": 120},
    "make_split": {"mem_mb": 16000, "runtime": 30},
    "prepare_pool": {"mem_mb": 8000, "runtime": 30},  # 300K x 32 x 32 x 3: ~1 GB, twice
    "pretrain": {"gpus": 1, "cpus_per_gpu": 8, "mem_mb": 32000, "runtime": 480},
    "probe": {"gpus": 1, "cpus_per_gpu": 8, "mem_mb": 16000, "runtime": 120},
    "analyse": {"gpus": 1, "cpus_per_gpu": 8, "mem_mb": 16000, "runtime": 120},
    "select_difficult": {"gpus": 1, "cpus_per_gpu": 8, "mem_mb": 16000, "runtime": 60},
    "make_tables": {"mem_mb": 2000, "runtime": 15},
    "make_figures": {"mem_mb": 2000, "runtime": 15},
    "compare_with_paper": {"mem_mb": 2000, "runtime": 15},
    "summarize": {"mem_mb": 2000, "runtime": 15},
    "make_analysis_report": {"mem_mb": 2000, "runtime": 15},
}


def load_resources(values: dict[str, Any] | None) -> dict[str, JobResources]:
    """The config's ``resources`` section, every rule filled in with its defaults."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(RULE_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"resources: unknown rule(s) {unknown}; rules with resources: {sorted(RULE_DEFAULTS)}"
        )
    return {
        rule: load(JobResources, {**defaults, **(values.get(rule) or {})}, f"resources.{rule}")
        for rule, defaults in RULE_DEFAULTS.items()
    }


def check_gpus(resources: dict[str, JobResources], process_counts: dict[str, int]) -> None:
    """A method pretraining on several GPUs (``pretrain.gpus``, one process each) needs a
    pretraining job with that many: ``resources.pretrain.gpus`` must match."""
    asked = resources["pretrain"].gpus
    for method, processes in process_counts.items():
        if (processes > 1 or asked > 1) and processes != asked:
            raise ConfigError(
                f"resources.pretrain.gpus is {asked} but method {method!r} pretrains with "
                f"pretrain.gpus = {processes} processes; set both to the same number"
            )


def threads(job: JobResources) -> int:
    """A job's threads: its CPUs per GPU (per process) on GPUs, else its CPUs."""
    return job.cpus_per_gpu if job.gpus else job.cpus


def scheduler_resources(job: JobResources, attempt: int = 1) -> dict[str, Any]:
    """Snakemake resources of one attempt (``gpu``, ``cpus_per_gpu``, ``gpu_model``,
    ``slurm_partition`` only where they apply)."""
    out: dict[str, Any] = {
        "mem_mb": int(job.mem_mb * (1 + (attempt - 1) / 2)),
        "runtime": job.runtime * attempt,
    }
    site = "SDCLR_SLURM_GPU_PARTITION" if job.gpus else "SDCLR_SLURM_PARTITION"
    partition = job.partition or os.environ.get(site, "").strip()
    if job.gpus:
        out.update(gpu=job.gpus, cpus_per_gpu=job.cpus_per_gpu)
        model = os.environ.get("SDCLR_SLURM_GPU_MODEL", "").strip()
        if model:
            out["gpu_model"] = model
    if partition:
        out["slurm_partition"] = partition
    return out


def combined(jobs: list[JobResources]) -> JobResources:
    """One job's resources covering several (a report job over several datasets): the most
    of each number; a partition only where they agree."""
    numbers = {
        f.name: max(getattr(j, f.name) for j in jobs)
        for f in dataclasses.fields(JobResources)
        if f.name != "partition"
    }
    partitions = {j.partition for j in jobs}
    return JobResources(**numbers, partition=partitions.pop() if len(partitions) == 1 else "")
