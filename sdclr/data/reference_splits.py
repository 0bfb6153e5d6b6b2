"""Splits from the reference implementation's files: ``.npy`` index arrays into the
torchvision train set (CIFAR) or ``path label`` image lists (ImageNet-100-LT), checked like the
splits ``sdclr.data.splits`` cuts; and BCL's fixed k-shot probe sets (``.npy`` index files,
:func:`kshot_indices_from_file`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdclr.data.image_list_file import read_image_list
from sdclr.data.splits import SUBSETS, check_split, split_record
from sdclr.errors import InputError


def _reference_file(files: dict[str, str | Path], name: str) -> Path:
    """The reference file given for subset ``name``; an error names a missing one."""
    if name not in files:
        raise ValueError(f"reference split files: no path given for {name!r}")
    path = Path(files[name])
    if not path.exists():
        raise FileNotFoundError(f"reference split file for {name} not found: {path}")
    return path


def read_index_file(path: str | Path, num_train_images: int, dataset: str) -> np.ndarray:
    """The sorted indices of a ``.npy`` index file into a train set of ``num_train_images``;
    an error names the file when it is not an index array or indexes outside that set."""
    try:
        idx = np.sort(np.load(path, allow_pickle=False).astype(np.int64).ravel())
    except ValueError as err:
        raise ValueError(f"{path} is not a .npy array of indices ({err})") from err
    if idx.size and (idx[0] < 0 or idx[-1] >= num_train_images):
        raise ValueError(
            f"{path}: indices outside [0, {num_train_images}) of the {dataset} train set; "
            "is the file for another dataset?"
        )
    return idx


def split_from_index_files(
    files: dict[str, str | Path],
    labels: Sequence[int] | np.ndarray,
    num_classes: int,
    dataset: str,
    split: int,
) -> dict[str, Any]:
    """Build a split from external ``.npy`` index files (the reference implementation's).

    ``files`` maps each of ``train``, ``validation``, ``D_i``, ``D_b``, ``S_b`` to a path whose
    array indexes the dataset's training set; the result is checked with ``check_split``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    indices = {
        name: read_index_file(_reference_file(files, name), len(labels), dataset)
        for name in SUBSETS
    }
    record = split_record(dataset, split, labels, num_classes, indices)
    check_split(record, len(labels), source=f"reference split {split} of {dataset}")
    return record


def split_from_list_files(
    files: dict[str, str | Path],
    train_paths: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    num_classes: int,
    dataset: str,
    split: int,
) -> dict[str, Any]:
    """Build a split from image list files (ImageNet-100-LT's ``path label`` lists).

    ``train_paths`` are the list paths of the dataset's training images (in index order);
    every listed path must be one of them and carry the same label. Checked like
    ``split_from_index_files`` except that S_b need not lie inside D_i: the reference's
    ImageNet-100-LT few-shot list (12 per class) is drawn from all of ImageNet-100's train
    images, and only 111 of its 1,200 are in D_i.
    """
    labels = np.asarray(labels, dtype=np.int64)
    position = {p: i for i, p in enumerate(train_paths)}
    indices = {}
    for name in SUBSETS:
        path = _reference_file(files, name)
        rel_paths, listed = read_image_list(path)
        missing = [p for p in rel_paths if p not in position]
        if missing:
            raise ValueError(
                f"{path}: {len(missing)} images (e.g. {missing[0]}) are not in the dataset; add "
                "this list to source.train_list so the data stage loads them"
            )
        idx = np.array([position[p] for p in rel_paths], dtype=np.int64)
        wrong = np.flatnonzero(labels[idx] != listed.numpy())
        if wrong.size:
            raise ValueError(f"{path}: {rel_paths[wrong[0]]} has another label in the dataset")
        indices[name] = np.sort(idx)
    record = split_record(dataset, split, labels, num_classes, indices)
    record["fewshot_inside_di"] = False
    record["probe_pool"] = _probe_pool_note(Path(files["train"]).name, indices)
    check_split(
        record, len(labels), source=f"reference split {split} of {dataset}", fewshot_inside_di=False
    )
    return record


def _probe_pool_note(train_list: str, indices: dict[str, np.ndarray]) -> str:
    """What the linear-probe pool (``train``) of a list-file split is, for table headers."""
    if np.array_equal(indices["train"], indices["D_b"]):
        return (
            f"the balanced list D_b ({len(indices['D_b']):,} images; the reference probes on "
            "the full ImageNet-100 train list)"
        )
    return f"the list {train_list} ({len(indices['train']):,} images)"


def reference_split_paths(files: dict[str, str], split: int) -> dict[str, str]:
    """The config's ``reference_splits`` paths with ``{split}`` replaced by the split id."""
    return {name: str(path).replace("{split}", str(split)) for name, path in files.items()}


def import_reference_split(
    files: dict[str, str], dataset: Any, name: str, split: int
) -> dict[str, Any]:
    """A split from the reference files: ``.npy`` index arrays or ``.txt`` image lists."""
    paths = reference_split_paths(files, split)
    kinds = {Path(p).suffix for p in paths.values()}
    labels = dataset.train_labels.numpy()
    if kinds == {".npy"}:
        return split_from_index_files(paths, labels, dataset.num_classes, name, split)
    if kinds == {".txt"}:
        if dataset.train_paths is None:
            raise ValueError(
                f"{name}: list-file reference splits need an image_list dataset source"
            )
        return split_from_list_files(
            paths, dataset.train_paths, labels, dataset.num_classes, name, split
        )
    raise ValueError(
        f"{name}: reference_splits must be all .npy index files or all .txt lists, got {kinds}"
    )


def kshot_indices_from_file(
    path: str | Path,
    labels: Sequence[int] | np.ndarray,
    num_classes: int,
    shots: int,
    pool: Sequence[int] | np.ndarray,
    dataset: str,
) -> np.ndarray:
    """BCL's fixed k-shot probe set from a ``.npy`` index file into the training set, checked:
    in range, no duplicates, exactly ``shots`` images of each of the ``num_classes`` classes
    (so ``shots * num_classes`` in all), all inside ``pool`` (the indices of the probe's train
    list). A file of another dataset fails the range or the class counts; every error names
    the file. Returns the sorted indices.

    BCL's files (MediaBrain-SJTU/BCL ``split/cifar100_imbSub_with_subsets/``
    ``cifar100_split{1..5}_test_{100,50}shot.npy``) hold 10,000 and 5,000 indices, inside its
    40,000-image ``split/cifar100/cifar100_trainIdxList.npy``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    idx = read_index_file(path, len(labels), dataset)
    if len(np.unique(idx)) != len(idx):
        raise InputError(f"{path}: duplicate indices; is it a k-shot index file?")
    counts = np.bincount(labels[idx], minlength=num_classes)
    if len(counts) != num_classes or not (counts == shots).all():
        wrong = [c for c in range(len(counts)) if c >= num_classes or counts[c] != shots]
        raise InputError(
            f"{path}: not {shots} images of each of the {num_classes} {dataset} classes "
            f"({len(idx)} images; class {wrong[0]} has {counts[wrong[0]]}); is the file for "
            "another dataset or another k?"
        )
    outside = np.setdiff1d(idx, np.asarray(pool, dtype=np.int64))
    if outside.size:
        raise InputError(
            f"{path}: {outside.size} images (e.g. index {outside[0]}) are not in the probe's "
            "train list; is it the train list these files were drawn from?"
        )
    return idx
