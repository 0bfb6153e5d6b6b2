"""What a stage of the pipeline is (:class:`Stage`) and the kinds of files it reads and writes:
the vocabulary of the stage table, ``sdclr.pipeline.dag``.

Pure: no torch (the Snakefile imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

#: Wildcards and their path pieces in a log's name (``results/logs/<stage>/...``).
WILDCARD_PIECES = {
    "dataset": "{dataset}",
    "method": "{method}",
    "split": "split{split}",
    "seed": "seed{seed}",
    "probe": "{probe}",
    "analysis": "{analysis}",
    "pool": "{pool}",
}


@dataclass(frozen=True)
class File:
    """One file a stage reads or writes; ``path`` is a template of the stage's wildcards (and,
    for a removal run, ``{selector}``: its selector run)."""

    path: str
    flag: str | None = ""  # "": --<name>; None: not on the command line
    dvc: Literal["out", "plot", "metric"] = "out"
    persist: bool = False  # DVC keeps it when the stage reruns (a checkpoint to resume from)
    #: A file of some runs only: an input of removal runs (``removal``) or of COLT runs with a
    #: pool file (``pool``: their prepared pool, ``paths.pool_of``; the template is
    #: ``paths.POOL``); an output of COLT runs (``colt``: dvc.yaml declares it for them; a
    #: Snakemake rule's outputs cannot depend on its wildcards, so the rule leaves it out).
    only: Literal["all", "removal", "pool", "colt"] = "all"
    report: tuple[str, str] | None = None  # Snakemake report(): (category, caption file)


@dataclass(frozen=True)
class Collected:
    """An input of many files: Snakemake lists them from the config (``files(config,
    wildcards)``); DVC depends on the directory ``dvc_dir`` that holds them."""

    files: Callable[[dict[str, Any], Any], list[str]]
    dvc_dir: str
    flag: str | None = None


@dataclass(frozen=True)
class RepoFile:
    """A file of the repository (not a pipeline output), relative to its root."""

    path: str
    flag: str | None = ""


Input = File | Collected | RepoFile


@dataclass(frozen=True)
class Stage:
    """One stage: a Snakemake rule and one or more DVC stages."""

    name: str
    script: str
    doc: str
    wildcards: tuple[str, ...] = ()
    inputs: dict[str, Input] = field(default_factory=dict)
    outputs: dict[str, File] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)  # flag name -> template
    #: Stages over runs: every run, or removal runs only (a selection, its figure); ``colt``:
    #: over the (dataset, pool file) pairs of COLT runs (``paths.pool_runs``).
    runs: Literal["all", "removal", "colt"] = "all"
    threads: bool = False
    local: bool = False  # runs on the submitting host (no job resources)
    #: The rule whose ``resources:`` (config) its jobs ask for; "": its own.
    resources_of: str = ""
    #: Its Snakemake job group in the SLURM profile (``--groups``): a model's jobs of one
    #: group run as one cluster job; "": none.
    group: str = ""
    #: What its jobs are called when they run on GPUs ("pretrainings": the cost estimate,
    #: ``sdclr.pipeline.cost``, prices them); "": its jobs do no GPU work.
    gpu_jobs: str = ""

    @property
    def resource_rule(self) -> str:
        return self.resources_of or self.name

    @property
    def log(self) -> str:
        pieces = [WILDCARD_PIECES[w] for w in self.wildcards]
        return f"results/logs/{self.name}" + ("/" + "/".join(pieces) if pieces else "") + ".log"


def flag_of(name: str, spec: Input | None = None) -> str | None:
    """The command-line flag of an input or output (None: not passed)."""
    flag = getattr(spec, "flag", "")
    if flag is None:
        return None
    return flag or "--" + name.replace("_", "-")
