"""The Snakefile's view of a config: the plan of ``sdclr.pipeline.resolve``, computed in a
separate process and cached, so that parsing the workflow never loads torch.

The cache key is the config (as canonical JSON) and one hash of the package's and the
scripts' sources: any change to either resolves the config again (a few seconds, the
validation's import of torch); an unchanged pair reads the cached plan (milliseconds). A
SLURM job, which parses the Snakefile again, finds the plan its submitting Snakemake wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sdclr.errors import ConfigError
from sdclr.pipeline.code import ROOT, source_fingerprint

#: Where plans are kept, relative to the working directory (next to Snakemake's own state).
CACHE_DIR = Path(".snakemake") / "sdclr-plans"
KEEP = 20  # the newest plans kept; older ones are deleted


def canonical_json(value: Any) -> str:
    """``value`` as JSON that changes only when a value does, not with key order."""
    return json.dumps(value, sort_keys=True)


def plan_key(config: dict[str, Any]) -> str:
    digest = hashlib.sha256(canonical_json(config).encode())
    digest.update(source_fingerprint().encode())
    return digest.hexdigest()[:24]


def load_plan(config: Any, cache_dir: Path = CACHE_DIR) -> dict[str, Any]:
    """The plan of ``config`` (a user config as Snakemake read it); raises ``ConfigError``
    with the validation's message when the config is invalid."""
    path = cache_dir / f"plan-{plan_key(config)}.json"
    if path.exists():
        return json.loads(path.read_text())
    cache_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "sdclr.pipeline.resolve", "--out", str(path)],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        cwd=Path.cwd(),
        env=_environment(),
    )
    if proc.returncode != 0:
        message = proc.stderr.strip()
        if proc.returncode == 1 and message and "Traceback" not in message:
            raise ConfigError(message)
        raise RuntimeError(f"resolving the config failed:\n{message}")
    _prune(cache_dir)
    return json.loads(path.read_text())


def _environment() -> dict[str, str]:
    """The environment with this checkout first on ``PYTHONPATH`` (the resolver must read the
    code the Snakefile is parsed with, whichever ``sdclr`` is installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _prune(cache_dir: Path) -> None:
    plans = sorted(cache_dir.glob("plan-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in plans[KEEP:]:
        old.unlink(missing_ok=True)
