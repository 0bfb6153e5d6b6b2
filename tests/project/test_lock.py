"""Reproducible installs: constraints.txt pins the versions the tests pass with, `make setup`
and environment.yml install with it, and this environment has those versions."""

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from tests.checkout import copy_project

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line and not line.startswith("#"))
    return {name.lower().replace("_", "-"): version for name, version in pairs}


def test_setup_and_the_conda_environment_install_the_pinned_versions():
    """make setup's pip install and environment.yml's pip section take constraints.txt, the
    conda packages carry the same versions, and the stack a cluster user needs is pinned."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[dev\]'", makefile)
    environment = (ROOT / "environment.yml").read_text()
    assert "      - -c constraints.txt\n" in environment
    pinned = pins()
    for name in ("torch", "torchvision", "snakemake", "snakemake-executor-plugin-slurm", "dvc"):
        assert name in pinned, name
    for name, version in re.findall(r"^  - ([A-Za-z0-9_.-]+)=([^=\s]+)$", environment, re.M):
        if name != "python":
            assert pinned[name.lower()] == version, (name, version, pinned[name.lower()])


def test_this_environment_has_the_pinned_versions():
    """Every pinned package that is installed here has its pinned version: the tests run on
    the versions the lock records (after `make lock`, `make setup` reinstalls)."""
    wrong = {}
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != version:
            wrong[name] = (installed, version)
    assert not wrong, f"installed vs constraints.txt: {wrong}"


def test_an_empty_freeze_leaves_the_pins_alone(tmp_path):
    """`scripts/lock_versions.py` with nothing on stdin (run by hand, or `--help`) stops with
    a message and leaves constraints.txt and environment.yml as they were."""
    copy_project(tmp_path)
    before = {n: (tmp_path / n).read_text() for n in ("constraints.txt", "environment.yml")}
    script = str(tmp_path / "scripts" / "lock_versions.py")
    empty = subprocess.run([sys.executable, script], input="", capture_output=True, text=True)
    assert empty.returncode != 0 and "constraints.txt is unchanged" in empty.stderr
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "usage" in helped.stdout
    assert {n: (tmp_path / n).read_text() for n in before} == before
