"""COLT in the workflow: the pool prepared by a stage of its own (prepare_pool), a missing pool
named before any job runs, and the figure of the resampling records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sdclr.data.image_dataset import ImageDataset, save_dataset
from sdclr.data.ood_pool import load_prepared_pool, run_pool
from sdclr.errors import ConfigError, InputError
from sdclr.pipeline import paths
from sdclr.pipeline.stages.prepare_pool import prepare_pool_stage
from tests.reporting.test_paper import PAPER, run_snakemake


def _dataset(path: Path, channels: int = 3, size: int = 8) -> None:
    images = torch.zeros(4, channels, size, size, dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1])
    save_dataset(ImageDataset("toy", images, labels, images, labels, ["a", "b"]), path)


def test_prepare_pool_writes_the_checked_pool_as_a_tensor_file(tmp_path):
    """N x H x W x C uint8 in, uint8 [N, C, H, W] out, read back with weights_only."""
    _dataset(tmp_path / "dataset.pt")
    pool = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "pool.npy", pool)
    n = prepare_pool_stage({"dataset": "toy"}, tmp_path / "dataset.pt", tmp_path / "pool.npy",
                           tmp_path / "pool.pt")  # fmt: skip
    images = load_prepared_pool(tmp_path / "pool.pt")
    assert n == 5 and images.dtype == torch.uint8 and images.shape == (5, 3, 8, 8)
    assert torch.equal(images, torch.from_numpy(pool).permute(0, 3, 1, 2))
    # the run reads the prepared file; outside_pretraining_set is derived in the run's job
    assert torch.equal(run_pool("x.npy", tmp_path / "pool.pt", images, torch.arange(2)), images)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros((5, 8, 8, 1), dtype=np.uint8), "N x 8 x 8 x 3 uint8, got 5x8x8x1 uint8"),
        (np.zeros((5, 8, 8, 3), dtype=np.float32), "got 5x8x8x3 float32"),
    ],
)
def test_prepare_pool_names_the_file_of_a_wrong_pool_in_one_line(tmp_path, array, expected):
    _dataset(tmp_path / "dataset.pt")
    np.save(tmp_path / "pool.npy", array)
    with pytest.raises(InputError) as err:
        prepare_pool_stage({"dataset": "toy"}, tmp_path / "dataset.pt", tmp_path / "pool.npy",
                           tmp_path / "pool.pt")  # fmt: skip
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "pool.npy") in message and expected in message
    assert not (tmp_path / "pool.pt").exists()


def _config(*pools: str | None) -> dict:
    methods = {f"m{i}": ({"colt": {"pool": p}} if p else {}) for i, p in enumerate(pools)}
    return {"datasets": {"d": {"methods": methods}}}


def test_pool_files_are_shared_by_name_and_outside_pools_need_no_stage():
    config = _config("raw/300K_random_images.npy", "raw/300K_random_images.npy",
                     paths.OUTSIDE_POOL, None)  # fmt: skip
    assert paths.pool_runs(config) == [("d", "300K_random_images")]
    assert paths.pool_of(config, "d", "m1") == "results/data/d/pool/300K_random_images.pt"
    assert paths.pool_of(config, "d", "m2") is None and paths.pool_of(config, "d", "m3") is None
    with pytest.raises(ConfigError, match="share the name '300K_random_images'"):
        paths.pool_sources(_config("a/300K_random_images.npy", "b/300K_random_images.npy"), "d")


def test_a_missing_pool_stops_the_plan_before_any_job_naming_key_and_file(tmp_path):
    """No 300K Random Images file: one warning line naming the config keys and the file, then
    Snakemake's "Missing input files for rule prepare_pool" with the file; nothing runs."""
    proc = run_snakemake(
        tmp_path, "-n", "--quiet", "rules", "--configfile", str(PAPER / "cifar10_lt.yaml")
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    warning = (
        "methods.simclr_colt.colt.pool, methods.sdclr_colt.colt.pool: the OOD pool file "
        "results/data/raw/300K_random_images.npy does not exist"
    )
    assert warning in out
    assert "Missing input files for rule prepare_pool" in out
    assert "results/data/raw/300K_random_images.npy" in out.split("prepare_pool", 1)[1]
    assert not (tmp_path / "results" / "data" / "cifar10_lt").exists()
