"""Long-tail splits: validation hold-out, D_i, D_b and S_b, deterministic in (dataset, split).

PROTOCOL.md's construction, for C classes with ``n_train`` training images per class after the
validation hold-out:

* ``validation``: ``validation_per_class`` images of every class, drawn once per dataset (the
  same for every split, as in the reference), never used for pretraining.
* ``D_i`` (imbalanced pretraining set): class ``order[k]`` keeps
  ``n_k = floor(n_max * r ** (-k / (C - 1)))`` images, with a class order shuffled anew for
  every split.
* ``D_b`` (balanced control of about the same size): ``floor(|D_i| / C)`` images per class.
* ``S_b`` (few-shot probe set): ``floor(fewshot_fraction * n_train)`` images per class, drawn
  from inside ``D_i``.

Within each class one random permutation of its training images is drawn and all three sets
are prefixes of it, so ``S_b`` is inside ``D_i`` by construction (as in the reference files).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdclr.errors import InputError
from sdclr.io import read_json, write_json
from sdclr.settings import setting

SUBSETS = ("train", "validation", "D_i", "D_b", "S_b")


@dataclass(frozen=True)
class LongTailConfig:
    """How a split is cut (config key ``longtail``); the module docstring has the formulas."""

    validation_per_class: int = setting(
        doc="Held-out validation images per class (picks the probes' best epoch).", minimum=1
    )
    n_max: int | None = setting(
        None, doc="D_i images of the head class (null: all it has left).", minimum=1
    )
    imbalance_ratio: float = setting(100.0, doc="Head / tail class size in D_i.", minimum=1)
    balanced_per_class: int | None = setting(
        None, doc="D_b images per class (null: floor(|D_i| / classes)).", minimum=1
    )
    fewshot_fraction: float = setting(
        0.01,
        doc="S_b per class as a fraction of the train images per class.",
        exclusive_minimum=0,
        maximum=1,
    )
    fewshot_per_class: int | None = setting(
        None, doc="S_b images per class (overrides fewshot_fraction).", minimum=1
    )
    probe_train_per_class: int | None = setting(
        None, doc="Linear-probe train images per class (null: the whole balanced pool).", minimum=1
    )


def longtail_counts(n_max: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Per-rank class sizes of the exponential profile.

    ``n_k = floor(n_max * r ** (-k / (C - 1)))`` for ``k = 0 .. C-1``; a tiny tolerance keeps
    values that are integers in exact arithmetic (``4500 / 100 = 45``) from rounding down.
    """
    if num_classes < 2:
        raise ValueError("a long-tail profile needs at least 2 classes")
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance_ratio must be >= 1, got {imbalance_ratio}")
    return [
        math.floor(n_max * imbalance_ratio ** (-k / (num_classes - 1)) + 1e-9)
        for k in range(num_classes)
    ]


def planned_sizes(config: LongTailConfig, num_classes: int, per_class: int) -> dict[str, int]:
    """|D_i| and |D_b| that :func:`make_longtail_split` cuts from a training set of
    ``per_class`` images in each of ``num_classes`` classes (before any image is read)."""
    n_max = config.n_max if config.n_max is not None else per_class - config.validation_per_class
    d_i = sum(longtail_counts(n_max, num_classes, config.imbalance_ratio))
    balanced = config.balanced_per_class or d_i // num_classes
    return {"D_i": d_i, "D_b": balanced * num_classes}


def split_seed(dataset: str, split: int | str) -> int:
    """A stable 63-bit seed for ``(dataset, split)`` that does not depend on Python's hash."""
    digest = hashlib.sha256(f"{dataset}/split{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _indices_by_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in range(num_classes)]


def validation_holdout(
    labels: np.ndarray, num_classes: int, per_class: int, dataset: str
) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (train pool, validation), stratified, fixed per dataset."""
    rng = np.random.default_rng(split_seed(dataset, "validation"))
    train, validation = [], []
    for c, idx in enumerate(_indices_by_class(labels, num_classes)):
        if len(idx) <= per_class:
            raise ValueError(
                f"class {c} has {len(idx)} training images, too few to hold out "
                f"validation_per_class={per_class}; lower longtail.validation_per_class"
            )
        perm = rng.permutation(idx)
        validation.append(perm[:per_class])
        train.append(perm[per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))


def make_longtail_split(
    labels: Sequence[int] | np.ndarray,
    num_classes: int,
    config: LongTailConfig,
    dataset: str,
    split: int,
) -> dict[str, Any]:
    """Cut one long-tail split of a training set; return its record (see ``split_record``)."""
    labels = np.asarray(labels, dtype=np.int64)
    pool, validation = validation_holdout(labels, num_classes, config.validation_per_class, dataset)
    by_class = _indices_by_class(labels[pool], num_classes)
    n_train = min(len(idx) for idx in by_class)
    n_max = config.n_max if config.n_max is not None else n_train
    if n_max > n_train:
        raise ValueError(
            f"longtail.n_max={n_max} exceeds the {n_train} training images of the smallest "
            "class after the validation hold-out; lower n_max or validation_per_class"
        )
    rank_counts = longtail_counts(n_max, num_classes, config.imbalance_ratio)
    rng = np.random.default_rng(split_seed(dataset, split))
    class_order = rng.permutation(num_classes)
    di_counts = np.zeros(num_classes, dtype=np.int64)
    di_counts[class_order] = rank_counts
    balanced = config.balanced_per_class or int(di_counts.sum()) // num_classes
    fewshot = config.fewshot_per_class or math.floor(config.fewshot_fraction * n_train + 1e-9)
    if fewshot > di_counts.min():
        raise ValueError(
            f"S_b needs {fewshot} images per class inside D_i, but the tail class of D_i has "
            f"only {di_counts.min()}; lower fewshot_per_class/fewshot_fraction or raise n_max"
        )
    if balanced > n_train:
        raise ValueError(f"balanced_per_class={balanced} exceeds the {n_train} images per class")
    subsets: dict[str, list[np.ndarray]] = {"D_i": [], "D_b": [], "S_b": []}
    for c in range(num_classes):
        perm = rng.permutation(pool[labels[pool] == c])
        subsets["D_i"].append(perm[: di_counts[c]])
        subsets["D_b"].append(perm[:balanced])
        subsets["S_b"].append(perm[:fewshot])
    indices = {"train": pool, "validation": validation}
    indices.update({name: np.sort(np.concatenate(parts)) for name, parts in subsets.items()})
    if config.probe_train_per_class is not None:
        indices["train"] = _per_class_prefix(
            pool, labels, num_classes, config.probe_train_per_class, rng
        )
    return split_record(dataset, split, labels, num_classes, indices)


def _per_class_prefix(
    pool: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int, rng: np.random.Generator
) -> np.ndarray:
    parts = []
    for c in range(num_classes):
        idx = pool[labels[pool] == c]
        parts.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(parts))


def split_record(
    dataset: str,
    split: int,
    labels: np.ndarray,
    num_classes: int,
    indices: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The on-disk form of a split: indices plus a manifest a person can read.

    ``class_order`` lists class ids from the most to the least frequent in ``D_i`` (ties by id);
    ``counts[subset][c]`` is the number of images of class ``c`` in that subset.
    """
    labels = np.asarray(labels)
    counts = {
        name: np.bincount(labels[idx], minlength=num_classes).tolist()
        for name, idx in indices.items()
    }
    di = np.asarray(counts["D_i"])
    class_order = sorted(range(num_classes), key=lambda c: (-di[c], c))
    return {
        "dataset": dataset,
        "split": int(split),
        "num_classes": num_classes,
        "class_order": class_order,
        "sizes": {name: len(idx) for name, idx in indices.items()},
        "counts": counts,
        "indices": {name: [int(i) for i in idx] for name, idx in indices.items()},
    }


def check_split(
    record: dict[str, Any],
    num_train_images: int,
    source: str = "split",
    fewshot_inside_di: bool = True,
    fix: str = "",
) -> None:
    """Raise ValueError naming the problem when a split is inconsistent.

    Checks every subset is present and in range, has no duplicates, that pretraining and
    probe-training subsets are disjoint from validation, and (``fewshot_inside_di``) that S_b
    lies inside D_i, as in every CIFAR split of the paper. ``fix`` is appended to the message.
    """
    suffix = f"; {fix}" if fix else ""
    missing = [name for name in SUBSETS if name not in record.get("indices", {})]
    if missing:
        raise InputError(f"{source}: missing subset(s) {missing}{suffix}")
    sets = {}
    for name in SUBSETS:
        idx = np.asarray(record["indices"][name], dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= num_train_images):
            raise InputError(
                f"{source}: {name} has indices outside [0, {num_train_images}); "
                f"is the file for another dataset?{suffix}"
            )
        if len(np.unique(idx)) != len(idx):
            raise InputError(f"{source}: {name} contains duplicate indices{suffix}")
        sets[name] = set(idx.tolist())
    for name in ("train", "D_i", "D_b", "S_b"):
        overlap = sets[name] & sets["validation"]
        if overlap:
            raise InputError(
                f"{source}: {len(overlap)} images of {name} are also in the validation set{suffix}"
            )
    if fewshot_inside_di and not sets["S_b"] <= sets["D_i"]:
        raise InputError(
            f"{source}: {len(sets['S_b'] - sets['D_i'])} images of S_b are not in D_i{suffix}"
        )


def save_split(record: dict[str, Any], path: str | Path) -> None:
    """Write a split record as JSON, atomically."""
    write_json(path, record)


def load_split(path: str | Path, dataset: Any = None) -> dict[str, Any]:
    """Read a split record written by ``save_split``; with ``dataset`` (an ``ImageDataset``),
    check that the split was made for it (:func:`check_split_fits`)."""
    record = read_json(path)
    if not isinstance(record, dict) or "indices" not in record or "counts" not in record:
        raise InputError(
            f"{path} is not a split file (no 'indices'/'counts'); delete it and re-run make_split"
        )
    if dataset is not None:
        check_split_fits(record, dataset, path)
    return record


def check_split_fits(record: dict[str, Any], dataset: Any, path: str | Path) -> None:
    """Raise ``InputError`` unless the split ``record`` (read from ``path``) indexes ``dataset``.

    Its indices must be valid (:func:`check_split`), its class count the dataset's, and the
    per-class counts it records for every subset must equal the counts of the dataset's labels
    at its indices: a split cut from another dataset fails this even when its indices happen
    to be in range.
    """
    fix = "delete it and re-run make_split, or use the split made for this dataset"
    labels = dataset.train_labels.numpy()
    if record.get("num_classes") != dataset.num_classes:
        raise InputError(
            f"split file {path} is for {record.get('num_classes')} classes but dataset "
            f"{dataset.name} has {dataset.num_classes}; {fix}"
        )
    check_split(
        record, len(labels), f"split file {path}", record.get("fewshot_inside_di", True), fix
    )
    for name in SUBSETS:
        idx = np.asarray(record["indices"][name], dtype=np.int64)
        counts = np.bincount(labels[idx], minlength=dataset.num_classes).tolist()
        if counts != list(record["counts"].get(name, [])):
            raise InputError(
                f"split file {path} was not made for dataset {dataset.name}: the labels at "
                f"its {name} indices do not match the class counts it records; {fix}"
            )
