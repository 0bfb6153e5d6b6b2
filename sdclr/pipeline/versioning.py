"""Record a finished Snakemake run in DVC: ``dvc commit``, then ``dvc push`` if a remote is set.

Snakemake calls this once, from its ``onsuccess`` handler on the submitting host, after every
job has finished: never from inside the (parallel) jobs, so nothing writes ``dvc.lock``,
the DVC cache or git concurrently. ``dvc commit`` stores the outputs in the cache and writes
their hashes, with the hashes of every dependency and the values of every parameter, to
``dvc.lock``; afterwards ``dvc status`` is clean and ``dvc repro`` has nothing to do.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True)


def record_outputs(repo: str | Path = ".", push: bool = True) -> str:
    """Commit the pipeline's outputs to DVC (and push them when a remote is configured).

    Returns a one-line account of what was done. Raises ``RuntimeError`` with DVC's message
    when ``dvc commit`` or ``dvc push`` fails; does nothing outside a DVC repository.
    """
    repo = Path(repo)
    if not (repo / ".dvc").is_dir():
        return f"{repo.resolve()} is not a DVC repository (no .dvc/): nothing recorded"
    if shutil.which("dvc") is None:
        raise RuntimeError("dvc is not on PATH; install the project (make setup) first")
    commit = _dvc(repo, "commit", "--force", "--quiet")
    if commit.returncode != 0:
        raise RuntimeError(
            f"dvc commit failed: {commit.stderr.strip() or commit.stdout.strip()}\n"
            "(were all of the config's outputs produced? `dvc status` shows what is missing)"
        )
    remotes = _dvc(repo, "remote", "list").stdout.strip()
    if not push or not remotes:
        return "recorded the outputs in DVC (dvc.lock); no remote configured, nothing pushed"
    pushed = _dvc(repo, "push", "--quiet")
    if pushed.returncode != 0:
        raise RuntimeError(f"dvc push failed: {pushed.stderr.strip() or pushed.stdout.strip()}")
    return f"recorded the outputs in DVC (dvc.lock) and pushed them to {remotes.split()[0]}"
