"""scripts/dvc_experiment.py: a paper experiment as its own DVC pipeline, made of links
(config/config.yaml untouched), refusing an experiments list and a path it did not make."""

import os
from pathlib import Path

import pytest
from dvc_experiment import SHARED, setup

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper" / "cifar10_lt.yaml"


def test_the_experiment_directory_links_the_pipeline_and_the_config(tmp_path):
    for name in SHARED:
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("x")
    directory = setup(PAPER, "cifar10_lt", root=tmp_path)
    assert directory == tmp_path / "experiments" / "cifar10_lt"
    for name in SHARED:  # relative links, so the checkout can move
        assert os.readlink(directory / name) == os.path.join("..", "..", name)
    config = directory / "config" / "config.yaml"
    assert config.is_symlink() and config.resolve() == PAPER.resolve()
    assert setup(PAPER, "cifar10_lt", root=tmp_path) == directory  # again: nothing to do


def test_an_experiments_list_or_a_foreign_file_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="is a list of experiments"):
        setup(ROOT / "config" / "paper" / "all.yaml", "all", root=tmp_path)
    (tmp_path / "experiments" / "x").mkdir(parents=True)
    (tmp_path / "experiments" / "x" / "dvc.yaml").write_text("mine")
    with pytest.raises(SystemExit, match="exists and is not a link"):
        setup(PAPER, "x", root=tmp_path)
