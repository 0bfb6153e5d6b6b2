"""BCL's probe (Adam on fixed features, exponential lr decay, the last epoch) and its fixed
k-shot index files; our random-subset k-shot probes' seeds."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sdclr.data.reference_splits import kshot_indices_from_file
from sdclr.errors import ConfigError, InputError
from sdclr.probes import run_probe
from sdclr.probes.bcl_probe import BclProbeConfig, bcl_gamma, train_bcl_linear
from sdclr.probes.kshot import balanced_subset, subset_seed
from tests.probes.test_evaluate import saved_model, toy_dataset, toy_split

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference-splits"
BCL_KSHOT = REFERENCE / "bcl_cifar100_kshot"
TRAIN_LIST = REFERENCE / "cifar100" / "cifar100_trainIdxList.npy"
CIFAR100 = Path(__file__).resolve().parents[2] / "results" / "data" / "raw" / "cifar-100-python"


def test_bcl_gamma_is_its_eval_sgd_decay():
    """eval_sgd: gamma = (1e-6 / 1e-2) ** (1 / 500); after 500 steps the lr is 1e-6."""
    gamma = bcl_gamma(BclProbeConfig())
    assert gamma == pytest.approx((1e-6 / 1e-2) ** (1 / 500))
    assert 1e-2 * gamma**500 == pytest.approx(1e-6)


def _hand_written_probe(x, y, classes, config, seed):
    """BCL's eval_sgd written out: nn.Linear's initial weights (after torch.manual_seed), then
    per epoch e a randperm order in batches (the last partial), cross-entropy gradients by
    hand, Adam (betas 0.9 / 0.999, eps 1e-8, L2 weight decay added to the gradient) at lr
    lr * gamma^e; float64."""
    torch.manual_seed(seed)
    init = torch.nn.Linear(x.shape[1], classes)
    params = [init.weight.detach().double().clone(), init.bias.detach().double().clone()]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    x, onehot = x.double(), torch.nn.functional.one_hot(y, classes).double()
    gamma = (config.final_lr / config.lr) ** (1 / config.epochs)
    generator, step = torch.Generator().manual_seed(seed), 0
    for epoch in range(config.epochs):
        lr = config.lr * gamma**epoch
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            logits = x[idx] @ params[0].T + params[1]
            dlogits = (torch.softmax(logits, dim=1) - onehot[idx]) / len(idx)
            grads = [dlogits.T @ x[idx], dlogits.sum(dim=0)]
            step += 1
            for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                g = g + config.weight_decay * p
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                m_hat, v_hat = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
                params[i] = p - lr * m_hat / (v_hat.sqrt() + 1e-8)
    return params


def test_bcl_probe_is_adam_with_exponential_decay_by_hand():
    """On 23 small features of 3 classes, 4 epochs in batches of 5 (the last of 3): the probe's
    last-epoch weights equal the hand-written Adam / ExponentialLR loop's."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(23, 4, generator=gen)
    y = torch.randint(0, 3, (23,), generator=gen)
    config = BclProbeConfig(epochs=4, batch_size=5, lr=0.1, final_lr=1e-3, weight_decay=0.01)
    linear = train_bcl_linear(x, y, 3, config, seed=5)
    weight, bias = _hand_written_probe(x, y, 3, config, seed=5)
    torch.testing.assert_close(linear.weight.detach().double(), weight, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(linear.bias.detach().double(), bias, atol=1e-5, rtol=1e-5)
    torch.manual_seed(5)
    initial = torch.nn.Linear(4, 3).weight
    assert not torch.allclose(linear.weight, initial)  # it trained


def _labels(num_classes: int = 100, per_class: int = 500) -> np.ndarray:
    """A CIFAR-100-shaped label array (50,000 images) with classes interleaved."""
    return np.tile(np.arange(num_classes), per_class)


def _save(path: Path, indices) -> Path:
    np.save(path, np.asarray(indices, dtype=np.int64))
    return path


def test_kshot_file_import_checks_counts_pool_and_dataset(tmp_path):
    """A k-shot file imports when it holds k images of every class inside the train list;
    a short class, an image outside the list, a duplicate, another dataset's file (too few
    classes, or indices past the train set) are refused, naming the file."""
    labels = _labels()
    pool = np.arange(40_000)
    good = np.concatenate([np.flatnonzero(labels[:40_000] == c)[:50] for c in range(100)])
    idx = kshot_indices_from_file(_save(tmp_path / "ok.npy", good), labels, 100, 50, pool, "c")
    assert len(idx) == 5_000 and np.array_equal(idx, np.sort(good))
    assert np.bincount(labels[idx], minlength=100).tolist() == [50] * 100
    short = good[good != good[labels[good] == 7][0]]  # class 7 one short
    with pytest.raises(InputError, match=r"short\.npy: not 50 images .* class 7 has 49"):
        kshot_indices_from_file(_save(tmp_path / "short.npy", short), labels, 100, 50, pool, "c")
    outside = good.copy()
    outside[0] = 40_000 + (labels[40_000:] == labels[good[0]]).argmax()  # same class, not listed
    with pytest.raises(InputError, match=r"outside\.npy: 1 images .* not in the probe's train"):
        kshot_indices_from_file(
            _save(tmp_path / "outside.npy", outside), labels, 100, 50, pool, "c"
        )
    twice = good.copy()
    twice[1] = twice[0]
    with pytest.raises(InputError, match=r"twice\.npy: duplicate indices"):
        kshot_indices_from_file(_save(tmp_path / "twice.npy", twice), labels, 100, 50, pool, "c")
    cifar10_labels = _labels(10, 5000)
    cifar10_file = np.concatenate([np.flatnonzero(cifar10_labels == c)[:50] for c in range(10)])
    with pytest.raises(InputError, match=r"c10\.npy: not 50 images of each of the 100"):
        kshot_indices_from_file(
            _save(tmp_path / "c10.npy", cifar10_file), labels, 100, 50, pool, "c"
        )
    with pytest.raises(ValueError, match=r"big\.npy: indices outside \[0, 50000\)"):
        kshot_indices_from_file(
            _save(tmp_path / "big.npy", good + 60_000), labels, 100, 50, pool, "c"
        )


@pytest.mark.skipif(not BCL_KSHOT.exists(), reason="BCL's k-shot files absent")
def test_bcl_kshot_files_have_their_sizes_inside_the_train_list():
    """BCL's files (split 1-5): 10,000 (100-shot) and 5,000 (50-shot) distinct indices into
    CIFAR-100's training set, all inside the 40,000-image train list; the 50-shot set is not a
    subset of the 100-shot one, and the splits' files differ. (Class counts need CIFAR-100's
    labels: the next test, where the data is present.)"""
    train = np.load(TRAIN_LIST)
    assert len(train) == 40_000
    for split in range(1, 6):
        sets = {}
        for shots in (100, 50):
            idx = np.load(BCL_KSHOT / f"cifar100_split{split}_test_{shots}shot.npy").ravel()
            assert len(idx) == len(np.unique(idx)) == 100 * shots
            assert idx.min() >= 0 and idx.max() < 50_000
            assert np.isin(idx, train).all()
            sets[shots] = set(idx.tolist())
        assert not sets[50] <= sets[100]
    first = np.load(BCL_KSHOT / "cifar100_split1_test_100shot.npy")
    second = np.load(BCL_KSHOT / "cifar100_split2_test_100shot.npy")
    assert set(first.tolist()) != set(second.tolist())


@pytest.mark.skipif(
    not (BCL_KSHOT.exists() and (CIFAR100 / "train").exists()),
    reason="BCL's k-shot files or CIFAR-100 (results/data/raw) absent",
)
def test_bcl_kshot_files_import_with_k_per_class():
    """With CIFAR-100's labels every file imports: k images of each of the 100 classes."""
    from sdclr.data.sources.cifar import load_cifar

    dataset = load_cifar("cifar100", CIFAR100.parent, download=False)
    labels = dataset.train_labels.numpy()
    train = np.load(TRAIN_LIST)
    for split in range(1, 6):
        for shots in (100, 50):
            path = BCL_KSHOT / f"cifar100_split{split}_test_{shots}shot.npy"
            idx = kshot_indices_from_file(path, labels, 100, shots, train, "cifar100")
            assert np.bincount(labels[idx], minlength=100).tolist() == [shots] * 100


@pytest.mark.skipif(not (REFERENCE / "cifar10").exists(), reason="reference splits absent")
def test_a_cifar10_reference_file_is_refused_as_a_cifar100_kshot_file():
    """The SDCLR reference's CIFAR-10 S_b file (450 indices) is not a CIFAR-100 k-shot set."""
    path = REFERENCE / "cifar10_imbSub_with_subsets" / "split1_S_b.npy"
    with pytest.raises(InputError, match="another dataset"):
        kshot_indices_from_file(path, _labels(), 100, 50, np.arange(50_000), "cifar100")


def _probe_settings(probe, probe_config):
    return {
        "dataset": "toy",
        "probe": probe,
        f"{probe}_probe": probe_config,
        "groups": {"kind": "thirds"},
        "crop_size": 12,
        "device": "cpu",
    }


def test_bcl_probes_fill_records_from_the_train_list_and_the_index_files(tmp_path):
    """Full-shot trains on the train list file (its size and name in the record); 50-shot
    averages one probe per index file ({file} = 1, 2), each file's All kept; a missing file,
    a file outside the list and a template without {file} are errors naming the key."""
    dataset = toy_dataset(per_class=70)
    split = toy_split(dataset)
    model = tmp_path / "model.pt"
    saved_model(model)
    labels = dataset.train_labels.numpy()
    pool = np.asarray(split["indices"]["train"])
    _save(tmp_path / "train.npy", pool)
    fast = {"epochs": 3, "batch_size": 64, "train_list": str(tmp_path / "train.npy")}
    full = run_probe(
        model, dataset, split, _probe_settings("bcl_fullshot", fast), 0, torch.device("cpu"),
        progress=False,
    )  # fmt: skip
    assert full["probe"] == "bcl_fullshot" and full["probe_train_size"] == len(pool)
    assert full["probe_train_note"] == f"the list train.npy ({len(pool):,} images)"
    assert len(full["per_class_accuracy"]) == 4 and 0 <= full["summary"]["All"] <= 100
    rng = np.random.default_rng(0)
    for k in (1, 2):
        chosen = [rng.choice(pool[labels[pool] == c], 50, replace=False) for c in range(4)]
        _save(tmp_path / f"f{k}.npy", np.concatenate(chosen))
    kshot = {**fast, "files": 2, "index_files": str(tmp_path / "f{file}.npy")}
    record = run_probe(
        model, dataset, split, _probe_settings("bcl_50shot", kshot), 0, torch.device("cpu"),
        progress=False,
    )  # fmt: skip
    assert record["probe_train_size"] == 200 and len(record["file_all_accuracy"]) == 2
    assert record["index_files"] == [str(tmp_path / "f1.npy"), str(tmp_path / "f2.npy")]
    assert record["summary"]["All"] == pytest.approx(np.mean(record["file_all_accuracy"]))
    for bad, error, match in (
        ({"files": 3}, FileNotFoundError, r"bcl_50shot_probe\.index_files: .*f3\.npy not found"),
        ({"index_files": str(tmp_path / "f1.npy")}, ConfigError, r"no \{file\}"),
    ):
        with pytest.raises(error, match=match):
            settings = _probe_settings("bcl_50shot", {**kshot, **bad})
            run_probe(model, dataset, split, settings, 0, torch.device("cpu"), progress=False)
    _save(tmp_path / "small.npy", pool[: len(pool) // 2])
    with pytest.raises(InputError, match="not in the probe's train list"):
        settings = _probe_settings(
            "bcl_50shot", {**kshot, "train_list": str(tmp_path / "small.npy")}
        )
        run_probe(model, dataset, split, settings, 0, torch.device("cpu"), progress=False)


def test_our_kshot_subsets_are_seeded_by_subset_seed(monkeypatch):
    """kshot_100's subset s of a model of seed q is balanced_subset(...) with a generator
    seeded by subset_seed(q, 100, s), the documented seed."""
    from sdclr.probes import kshot

    picks = []

    def record(inputs, train, config, seed, name):
        picks.append(train[0].clone())
        return {"per_class_accuracy": np.zeros(4)}

    monkeypatch.setattr(kshot, "fit_and_test", record)
    dataset = toy_dataset(per_class=130)
    split = toy_split(dataset)
    from sdclr.probes.base import ProbeInputs

    inputs = ProbeInputs(None, dataset, split, 12, 3, torch.device("cpu"), progress=False)
    kshot.HundredShotProbe().evaluate(inputs, {"kshot_100_probe": {"epochs": 1, "subsets": 2}})
    images, labels = inputs.subset("train")
    for s in range(2):
        generator = torch.Generator().manual_seed(subset_seed(3, 100, s))
        assert torch.equal(picks[s], images[balanced_subset(labels, 100, 4, generator)])
    assert not torch.equal(picks[0], picks[1])
