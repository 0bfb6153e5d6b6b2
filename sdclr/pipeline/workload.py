"""What one job of a plan computes, in units a measured speed turns into hours: training
views for a pretraining job, forward images for a probe, an analysis or a selection, and the
network's forward FLOPs relative to the benchmark's (``sdclr.pipeline.cost``).

The image counts come from the plan's settings: the long-tail sizes ``make_split`` cuts
(:func:`sdclr.data.splits.planned_sizes`), or the lines of a reference split's list files. The
model factor is the backbone's forward FLOPs at the job's crop size over the benchmark
model's (ResNet-18, CIFAR stem), counted on the meta device (no memory, no data).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from sdclr.data.ood_pool import OUTSIDE, pool_file_length
from sdclr.data.reference_splits import reference_split_paths
from sdclr.data.sources import get_source
from sdclr.data.splits import LongTailConfig, planned_sizes
from sdclr.errors import ConfigError
from sdclr.methods.colt import resamples
from sdclr.models import ModelConfig, build_model
from sdclr.settings import load

#: Test images of the built-in sources (an image-list source counts its test list).
TEST_IMAGES = {"cifar10": 10_000, "cifar100": 10_000, "fashion_mnist": 10_000}
#: COLT's pool when its file is not on this machine: the 300K Random Images' size.
DEFAULT_OOD_POOL = 300_000
#: The forward passes over (train pool + test) an analysis job makes: the dense and the pruned
#: network (PIE), whose features the geometry and the difficult pairs reuse.
ANALYSIS_PASSES = 2


def _count(path: str) -> int:
    """Images in a reference split file: a ``.npy`` index array or a ``path label`` list."""
    file = Path(path)
    if not file.exists():
        raise ConfigError(
            f"{path} (a reference split or list file) does not exist: its split's sizes are "
            "counted from it; put the file there (the config's comments say where it comes "
            "from) or leave that dataset out of the config"
        )
    if file.suffix == ".npy":
        return int(np.load(file, mmap_mode="r").shape[0])
    return sum(1 for line in file.read_text().splitlines() if line.strip())


def _generated_sizes(source: str, longtail: dict[str, Any]) -> dict[str, int]:
    geometry = get_source(source).geometry
    if geometry is None:
        raise ConfigError(f"source {source!r}: its sizes are unknown before loading")
    classes, per_class = geometry
    config = load(LongTailConfig, longtail, "longtail")
    pool = per_class - config.validation_per_class
    fewshot = config.fewshot_per_class or math.floor(config.fewshot_fraction * pool)
    return {
        **planned_sizes(config, classes, per_class),
        "train": (config.probe_train_per_class or pool) * classes,
        "validation": config.validation_per_class * classes,
        "S_b": fewshot * classes,
        "test": TEST_IMAGES.get(source, 0),
        "all_train": classes * per_class,
    }


def dataset_sizes(settings: dict[str, dict[str, Any]], split: int) -> dict[str, int]:
    """Images of ``train`` (the probe pool), ``validation``, ``D_i``, ``D_b``, ``S_b`` and
    ``test`` of one split of a dataset (``settings``: its jobs' settings in the plan)."""
    source = settings["dataset"]["source"]
    longtail = dict(settings["split"]["longtail"])
    reference = longtail.pop("reference_splits", None)
    if not reference:
        return _generated_sizes(source["name"], longtail)
    files = reference_split_paths(reference, split)
    sizes = {name: _count(path) for name, path in files.items()}
    test = source.get("test_list")
    sizes["test"] = _count(test) if test else TEST_IMAGES.get(source["name"], 0)
    sizes["all_train"] = sizes.get("train", 0) + sizes.get("validation", 0)
    return sizes


def pretrain_images(settings: dict[str, Any], sizes: dict[str, int]) -> int:
    """The images of one pretraining epoch: its subset, less a removal run's removed ones."""
    method = settings["method"]
    if "remove_difficult" in method:
        d_i = sizes["D_i"]
        return d_i - math.ceil(method["remove_difficult"]["fraction"] * d_i)
    return sizes[method["pretrain_set"]]


def pretrain_work(settings: dict[str, Any], sizes: dict[str, int]) -> tuple[int, int]:
    """(training views, extra forward images) of one pretraining job: two views of every
    epoch's images. COLT adds its budget of pool images to every epoch from its first
    resampling on, and each resampling forwards the pretraining set and the whole pool once
    (its K-means and the nearest picks); the pool's size is its file's (the 300K Random
    Images' when the file is not here) or the training images outside the pretraining set."""
    images = pretrain_images(settings, sizes)
    epochs = settings["pretrain"]["epochs"]
    colt = settings["method"].get("extensions", {}).get("colt")
    if not colt:
        return 2 * epochs * images, 0
    warmup, period = colt["warmup_epochs"], colt["period"]
    resamplings = sum(1 for e in range(epochs) if resamples(e, warmup, period))
    grown = sum(1 for e in range(epochs) if e >= warmup)
    pool = _pool_size(colt["pool"], sizes["all_train"] - images)
    added = min(colt["budget"], pool)
    return 2 * (epochs * images + grown * added), resamplings * (images + pool)


def _pool_size(spec: str, outside: int) -> int:
    if spec == OUTSIDE:
        return outside
    if Path(spec).exists():
        return pool_file_length(spec)
    return DEFAULT_OOD_POOL


def features_images(sizes: dict[str, int]) -> int:
    """Forward images of a model's features job: the probe pool and the test set, once."""
    return sizes["train"] + sizes["test"]


def probe_images(settings: dict[str, Any], sizes: dict[str, int], subset: str) -> int:
    """Forward images of one probe job training on ``subset`` beyond the model's features file
    (the dense pool and test set): an augmenting probe's subset once per epoch, a fixed-feature
    probe's subset once unless it is the pool, and a trained probe's validation set once (an
    upper bound: BCL's probe keeps its last epoch and reads no validation set)."""
    section = settings.get(f"{settings['probe']}_probe") or {}
    if section.get("augment", False):
        passes = section.get("epochs", 1) * sizes[subset]
    else:
        passes = 0 if subset == "train" else sizes[subset]
    return passes + (sizes["validation"] if "epochs" in section else 0)


def analysis_images(sizes: dict[str, int]) -> int:
    """Forward images of one analysis job beyond the features file: the passes over pool and
    test other than the dense one (:data:`ANALYSIS_PASSES` - 1: PIE's pruned network)."""
    return (ANALYSIS_PASSES - 1) * (sizes["train"] + sizes["test"])


@cache
def forward_flops(arch: str, stem: str, width: float, crop: int) -> int:
    """The backbone's forward FLOPs for one 3-channel ``crop`` x ``crop`` image."""
    config = ModelConfig(arch=arch, stem=stem, width=width)
    with torch.device("meta"):
        backbone = build_model(config, 3).backbone
        with FlopCounterMode(display=False) as counter:
            backbone(torch.empty(1, 3, crop, crop))
    return counter.get_total_flops()


def model_factor(model: dict[str, Any], crop: int, reference: tuple[float, int]) -> float:
    """How many times the benchmark model's (ResNet-18, CIFAR stem, ``reference`` = (width,
    crop)) forward FLOPs one image of this job costs; at least 1: a smaller network is not
    assumed faster (per-step overheads bind it)."""
    flops = forward_flops(model["arch"], model["stem"], float(model["width"]), crop)
    base = forward_flops("resnet18", "cifar", float(reference[0]), int(reference[1]))
    return max(1.0, flops / base)
