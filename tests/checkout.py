"""A copy of the project, as a clone has it (no results), for tests that change its code or
run DVC in it; commands run there import that copy's ``sdclr``, not the installed one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def environment(checkout: Path) -> dict[str, str]:
    """The environment of a command in ``checkout``: this venv's tools, that copy's code."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(checkout),
        "DVC_NO_ANALYTICS": "1",
    }


def run(cwd: Path, *args: str, check: bool = True, timeout: int = 1200):
    """Run ``args`` in ``cwd`` (a checkout); raise with its output when it fails."""
    proc = subprocess.run(
        list(args), cwd=cwd, env=environment(cwd), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_project(dest: Path, config: str | Path | None = None) -> Path:
    """The project's files in ``dest``; ``config`` (a file) replaces config/config.yaml."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, files):
        if name.startswith("results/") and name != "results/README.md":
            continue
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    if config is not None:
        shutil.copy(config, dest / "config" / "config.yaml")
    return dest


def git_commit(repo: Path, message: str) -> None:
    """Commit everything in ``repo`` with a fixed author and date, so that two repositories of
    the same files have the same commit (an output's provenance names it)."""
    env = {
        **environment(repo),
        **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
           for what, value in (("NAME", "t"), ("EMAIL", "t@t"), ("DATE", "2026-01-01T00:00:00"))},
    }  # fmt: skip
    for args in (["add", "-A"], ["commit", "-q", "--allow-empty", "-m", message]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def write_dvc_yaml(checkout: Path) -> None:
    """dvc.yaml of the checkout's own config/config.yaml, made as `make dvc` makes it."""
    proc = run(
        checkout,
        sys.executable,
        "-c",
        "from sdclr.pipeline.dvc import generate; import sys; "
        "path, text = generate(); path.write_text(text)",
    )
    assert (checkout / "dvc.yaml").exists(), proc.stderr
