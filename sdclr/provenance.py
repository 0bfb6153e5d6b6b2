"""What made an output: the code's commit (and whether the code had uncommitted changes), the
versions of the packages that compute and run it, the device and the arithmetic.

Every model (``model.pt``'s ``provenance``), probe, analysis and removal record, every table (a
footer line; the JSON table's ``provenance``), ``results/metrics.json`` and the HTML report
carry it. It holds no time and no host name, so identical runs of identical code still write
identical bytes. It is not part of a job's identity: a job reruns when its settings or code
change (``sdclr.pipeline.resolve``), not when another commit or torch version would compute
the same thing -- this says which did.

Pure: no torch (versions are read from the installed packages' metadata).
"""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose commit an output records
#: The packages whose versions an output records.
PACKAGES = ("sdclr", "torch", "torchvision", "numpy", "snakemake", "dvc")
#: What counts as the code for the dirty flag (results, configs and notes do not).
CODE_PATHS = ("sdclr", "scripts", "workflow", "Snakefile", "pyproject.toml")


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@cache
def code_version(root: Path = ROOT) -> dict[str, Any]:
    """``{"commit": <sha or None>, "dirty": <bool or None>}`` of the checkout at ``root``:
    dirty when a file of the code (:data:`CODE_PATHS`) differs from the commit or is new."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(root, "status", "--porcelain", "--", *CODE_PATHS)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


@cache
def package_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(device: str | None = None, precision: str | None = None) -> dict[str, Any]:
    """The provenance of an output made now by this code on ``device`` (e.g. ``cpu``,
    ``cuda (NVIDIA H100 80GB HBM3)``) in ``precision`` (``fp32``, ``tf32``, ``bf16``)."""
    return {
        **code_version(),
        "versions": package_versions(),
        "device": device,
        "precision": precision,
    }


def describe(record: dict[str, Any]) -> str:
    """One line of a provenance: ``commit 1a2b3c4d (uncommitted changes), torch 2.x, ...``."""
    commit = record.get("commit")
    code = f"commit {commit[:10]}" if commit else "no git commit"
    if record.get("dirty"):
        code += " with uncommitted changes"
    versions = ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items() if v)
    parts = [code, versions]
    if record.get("device"):
        parts.append(f"on {record['device']}")
    if record.get("precision"):
        parts.append(record["precision"])
    return "; ".join(p for p in parts if p)


def summarize(records: list[dict[str, Any]]) -> str:
    """One line for many records' provenance: each distinct code, device and precision."""
    distinct = sorted({describe(r) for r in records if r})
    if not distinct:
        return "no provenance recorded (records written before it was)"
    return " | ".join(distinct)
