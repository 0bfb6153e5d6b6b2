"""Long-tail split construction (PROTOCOL.md: data and long-tail splits)."""

from pathlib import Path

import numpy as np
import pytest

from sdclr.data.reference_splits import split_from_index_files
from sdclr.data.splits import (
    LongTailConfig,
    check_split,
    load_split,
    longtail_counts,
    make_longtail_split,
    save_split,
)

CIFAR10_COUNTS = [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference-splits"


def cifar_like_labels(num_classes: int, per_class: int) -> np.ndarray:
    """Labels of a CIFAR-sized train set in a shuffled (non-sorted) order."""
    return np.random.default_rng(0).permutation(np.repeat(np.arange(num_classes), per_class))


def test_exponential_profile_counts_match_the_paper():
    """n_k = floor(n_max * r^(-k/(C-1))): CIFAR-10 [4500 ... 45] = 11,165; CIFAR-100 9,754."""
    assert longtail_counts(4500, 10, 100) == CIFAR10_COUNTS
    assert sum(CIFAR10_COUNTS) == 11165
    cifar100 = longtail_counts(450, 100, 100)
    assert sum(cifar100) == 9754 and cifar100[0] == 450 and cifar100[-1] == 4


def test_cifar10_split_sizes_from_a_50k_train_set():
    """45k/5k train/validation; D_i 11,165 with the exact profile; D_b 11,160; S_b 450."""
    labels = cifar_like_labels(10, 5000)
    record = make_longtail_split(labels, 10, LongTailConfig(validation_per_class=500), "c10", 1)
    assert record["sizes"] == {
        "train": 45000,
        "validation": 5000,
        "D_i": 11165,
        "D_b": 11160,
        "S_b": 450,
    }
    di = np.asarray(record["counts"]["D_i"])
    assert sorted(di.tolist(), reverse=True) == CIFAR10_COUNTS
    assert [di[c] for c in record["class_order"]] == CIFAR10_COUNTS
    assert record["counts"]["D_b"] == [1116] * 10
    assert record["counts"]["S_b"] == [45] * 10
    check_split(record, len(labels))


def test_cifar100_split_sizes():
    """CIFAR-100: D_i 9,754, D_b 97 per class = 9,700, S_b 4 per class = 400."""
    labels = cifar_like_labels(100, 500)
    record = make_longtail_split(labels, 100, LongTailConfig(validation_per_class=50), "c100", 1)
    assert record["sizes"]["D_i"] == 9754
    assert record["sizes"]["D_b"] == 9700
    assert record["sizes"]["S_b"] == 400


def test_split_is_deterministic_and_each_split_has_its_own_class_order():
    """Same (dataset, split) gives the same split; different splits shuffle the class order;
    the validation set is the same for every split of a dataset."""
    labels = cifar_like_labels(10, 600)
    config = LongTailConfig(validation_per_class=50, n_max=500)
    a = make_longtail_split(labels, 10, config, "ds", 1)
    b = make_longtail_split(labels, 10, config, "ds", 1)
    orders = {
        tuple(make_longtail_split(labels, 10, config, "ds", k)["class_order"]) for k in range(1, 6)
    }
    assert a == b
    assert len(orders) == 5
    c = make_longtail_split(labels, 10, config, "ds", 2)
    assert a["indices"]["validation"] == c["indices"]["validation"]


def test_subsets_are_disjoint_from_validation_and_sb_inside_di():
    """No pretraining or probe image is a validation image; S_b is a subset of D_i."""
    labels = cifar_like_labels(10, 600)
    record = make_longtail_split(
        labels, 10, LongTailConfig(validation_per_class=50, n_max=500, fewshot_per_class=5), "ds", 3
    )
    val = set(record["indices"]["validation"])
    for name in ("train", "D_i", "D_b", "S_b"):
        assert not val & set(record["indices"][name])
    assert set(record["indices"]["S_b"]) <= set(record["indices"]["D_i"])
    labels_of = labels[record["indices"]["S_b"]]
    assert np.bincount(labels_of, minlength=10).tolist() == [5] * 10


def test_probe_train_pool_can_be_subsampled_per_class():
    """probe_train_per_class keeps a balanced, smaller linear-probe pool."""
    labels = cifar_like_labels(10, 600)
    record = make_longtail_split(
        labels,
        10,
        LongTailConfig(validation_per_class=50, n_max=500, probe_train_per_class=40),
        "ds",
        1,
    )
    assert record["counts"]["train"] == [40] * 10


def test_impossible_settings_fail_with_the_key_to_change():
    """Too few images for S_b inside the tail class, or n_max above the class size, say which
    setting to change."""
    labels = cifar_like_labels(10, 600)
    with pytest.raises(ValueError, match="fewshot"):
        make_longtail_split(
            labels,
            10,
            LongTailConfig(validation_per_class=50, n_max=500, fewshot_per_class=50),
            "ds",
            1,
        )
    with pytest.raises(ValueError, match="n_max"):
        make_longtail_split(
            labels, 10, LongTailConfig(validation_per_class=50, n_max=5000), "ds", 1
        )


def test_check_split_rejects_overlap_range_and_sb_outside_di():
    """A split whose S_b leaves D_i, which overlaps validation, or indexes past the dataset is
    refused with a message naming the problem."""
    labels = cifar_like_labels(10, 100)
    good = make_longtail_split(
        labels,
        10,
        LongTailConfig(validation_per_class=10, n_max=80, imbalance_ratio=10, fewshot_per_class=1),
        "ds",
        1,
    )
    bad = {**good, "indices": {**good["indices"]}}
    bad["indices"]["S_b"] = good["indices"]["S_b"] + [good["indices"]["validation"][0]]
    with pytest.raises(ValueError, match="validation|not in D_i"):
        check_split(bad, len(labels))
    bad["indices"] = {**good["indices"], "D_i": good["indices"]["D_i"] + [10**6]}
    with pytest.raises(ValueError, match="outside"):
        check_split(bad, len(labels))


def test_split_file_round_trip(tmp_path):
    """A saved split reads back identical; a file that is not a split is refused."""
    labels = cifar_like_labels(10, 100)
    record = make_longtail_split(
        labels,
        10,
        LongTailConfig(validation_per_class=10, n_max=80, imbalance_ratio=10, fewshot_per_class=1),
        "ds",
        1,
    )
    save_split(record, tmp_path / "split1.json")
    assert load_split(tmp_path / "split1.json") == record
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a split file"):
        load_split(tmp_path / "bad.json")


@pytest.mark.skipif(not (REFERENCE / "cifar10").exists(), reason="reference splits absent")
@pytest.mark.parametrize(
    ("folder", "prefix", "train", "val", "sizes"),
    [
        ("cifar10", "split", "trainIdxList.npy", "valIdxList.npy", (11165, 11160, 450)),
        (
            "cifar100",
            "cifar100_split",
            "cifar100_trainIdxList.npy",
            "cifar100_valIdxList.npy",
            (9754, 9700, 400),
        ),
    ],
)
def test_reference_split_files_import_with_the_paper_sizes(folder, prefix, train, val, sizes):
    """The reference implementation's .npy index files import and pass every consistency check,
    with PROTOCOL.md's D_i / D_b / S_b sizes, for all 5 splits."""
    labels = np.zeros(50000, dtype=np.int64)  # sizes and consistency need no real labels
    for k in range(1, 6):
        files = {
            "train": REFERENCE / folder / train,
            "validation": REFERENCE / folder / val,
            **{
                name: REFERENCE / f"{folder}_imbSub_with_subsets" / f"{prefix}{k}_{name}.npy"
                for name in ("D_i", "D_b", "S_b")
            },
        }
        record = split_from_index_files(files, labels, 10, folder, k)
        assert (record["sizes"]["D_i"], record["sizes"]["D_b"], record["sizes"]["S_b"]) == sizes
