"""Fixtures shared by several test modules."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that pins torch's CPU threads (``torch.set_num_threads(1)`` for bit-identical
    resumes) leaves the next test the count it found: results never depend on test order."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_local_run(tmp_path_factory) -> Path:
    """The tiny config run once by the local executor (`--cores 2`) in a temporary work dir:
    the reference that other executors' results are compared with. Returns the work dir."""
    workdir = tmp_path_factory.mktemp("tiny-local")
    shutil.copy(TINY, workdir / "tiny.yaml")
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bindir / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--cores", "2"]
        + ["--configfile", "tiny.yaml"],
        cwd=workdir,
        env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"local tiny run failed:\n{proc.stdout}\n{proc.stderr}"
    return workdir
