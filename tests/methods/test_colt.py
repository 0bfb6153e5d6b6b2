"""COLT (Bai et al., ICLR 2023): its pure parts by hand computation and against ports of the
public code's formulas, then the extension in the training loop (the growing pretraining set,
the resampling record, bit-identical resume)."""

from __future__ import annotations

import csv
import functools
import math

import numpy as np
import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

from sdclr.data.ood_pool import load_pool, read_pool_file
from sdclr.errors import ConfigError, InputError
from sdclr.io import read_json
from sdclr.methods import create_method
from sdclr.methods.colt_functions import (
    cluster_budgets,
    domain_supcon,
    kmeans,
    kmeans_plus_plus,
    nearest_picks,
    topk_negative_mass,
    update_scores,
)
from sdclr.torch_files import torch_load
from sdclr.training import step as train_step
from sdclr.training.loop import CHECKPOINT_NAME, LOG_NAME, MODEL_NAME
from tests.helpers import (
    assert_a_killed_run_resumes_bit_identically,
    pool_images,
    pretrain,
    tiny_settings,
    toy_images,
)

E = math.e


def their_neg_logits(z1: np.ndarray, z2: np.ndarray, t: float) -> np.ndarray:
    """The public ``utils.nt_xent``'s ``neg_logits`` averaged over the two views (N x 2N-2)."""
    n = z1.shape[0]
    out = np.concatenate([z1, z2]) / np.linalg.norm(np.concatenate([z1, z2]), axis=1)[:, None]
    neg = np.exp(out @ out.T / t)
    mask = np.ones((2 * n, 2 * n), dtype=bool)
    for i in range(n):  # get_negative_mask: not the view itself, not its partner
        mask[i, i] = mask[i, i + n] = mask[i + n, i] = mask[i + n, i + n] = False
    neg = neg[mask].reshape(2 * n, -1)
    pos = np.exp((out[:n] * out[n:]).sum(1) / t)
    pos = np.concatenate([pos, pos])
    probs = neg / (pos + neg.sum(1))[:, None]
    return (probs[:n] + probs[n:]) / 2


def test_topk_negative_mass_by_hand():
    """Two orthogonal samples, identical views, t = 1: D = e + 2 for every row, each sample's
    two negatives have probability 1 / (e + 2)."""
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(
        topk_negative_mass(z, z, 1.0, k=1), torch.full((2,), 1 / (E + 2)), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(  # k = 10 is capped at the 2 negatives
        topk_negative_mass(z, z, 1.0, k=10), torch.full((2,), 2 / (E + 2)), rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("k", [1, 3, 10])
def test_topk_negative_mass_is_the_public_codes(k):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    theirs = np.sort(their_neg_logits(z1.numpy(), z2.numpy(), 0.2), axis=1)[:, ::-1][:, :k]
    np.testing.assert_allclose(topk_negative_mass(z1, z2, 0.2, k).numpy(), theirs.sum(1), rtol=1e-5)


def test_scores_store_the_first_value_then_blend():
    scores, seen = torch.zeros(3), torch.zeros(3, dtype=torch.bool)
    update_scores(scores, seen, torch.tensor([0, 2]), torch.tensor([1.0, 2.0]), beta=0.5)
    assert scores.tolist() == [1.0, 0.0, 2.0]
    update_scores(scores, seen, torch.tensor([0, 1]), torch.tensor([3.0, 4.0]), beta=0.5)
    assert scores.tolist() == [2.0, 4.0, 2.0] and seen.all()
    update_scores(scores, seen, torch.tensor([2]), torch.tensor([1.0]), beta=0.97)
    assert scores[2].item() == pytest.approx(0.97 * 2 + 0.03 * 1)


def test_budgets_by_hand_sum_to_the_budget_ordered_by_tailness():
    """m = [1, 2, 3]: z = [-1, 0, 1], w = softmax([1, 0, -1]) = [.665, .245, .090]; 10 images:
    floors [6, 2, 0], the two left go to the largest fractions (.900, .652): [7, 2, 1]."""
    assert cluster_budgets(torch.tensor([1.0, 2.0, 3.0]), 10).tolist() == [7, 2, 1]
    assert cluster_budgets(torch.tensor([2.0, 2.0, 2.0]), 10).tolist() == [4, 3, 3]
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        m = torch.rand(10, generator=g)
        b = cluster_budgets(m, 10_000, temperature=0.5)
        assert int(b.sum()) == 10_000
        order = m.argsort()  # lowest score (most tail-like) first
        assert (b[order][:-1] >= b[order][1:]).all()


def test_a_lower_cluster_temperature_sharpens_the_budgets():
    m = torch.tensor([1.0, 2.0, 3.0])
    assert cluster_budgets(m, 100, 0.5)[0] > cluster_budgets(m, 100, 1.0)[0]


def test_kmeans_finds_two_obvious_clusters_for_every_seed():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    for seed in range(5):
        centers, labels = kmeans(x, 2, seed)
        assert labels[0] == labels[1] != labels[2] == labels[3]
        got = sorted(map(tuple, centers.tolist()))
        assert got == [(0.0, 0.5), (10.0, 0.5)]


def test_kmeans_is_deterministic_and_leaves_no_cluster_empty():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 8, generator=g)
    a, b = kmeans(x, 10, seed=0), kmeans(x, 10, seed=0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert (torch.bincount(a[1], minlength=10) > 0).all()
    # each point is at its nearest centre, each centre the mean of its points (a fixed point)
    assert torch.equal(torch.cdist(x.double(), a[0]).argmin(1), a[1])
    for c in range(10):
        torch.testing.assert_close(a[0][c], x[a[1] == c].double().mean(0))
    dup = torch.zeros(5, 2)  # one distinct point, three clusters: still none empty
    assert (torch.bincount(kmeans(dup, 3, 0)[1], minlength=3) > 0).all()


def test_kmeans_reaches_scikit_learns_lloyd_solution_from_the_same_seeding():
    """Our K-means against scikit-learn's (Lloyd, one run from our k-means++ centres, run to
    strict convergence): the same labels and the same centres to float64 rounding, on
    normalised features of two unequal blobs (as COLT clusters its normalised projections)."""
    from sklearn.cluster import KMeans

    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.cat([torch.randn(300, 16, generator=g), torch.randn(100, 16, generator=g) + 3])
        x = torch.nn.functional.normalize(x, dim=1)
        centers, labels = kmeans(x, 10, seed)
        init = kmeans_plus_plus(x, 10, torch.Generator().manual_seed(seed)).numpy()
        reference = KMeans(10, init=init, n_init=1, max_iter=300, tol=0, algorithm="lloyd")
        reference.fit(x.double().numpy())
        assert (reference.labels_ == labels.numpy()).all(), seed
        np.testing.assert_allclose(reference.cluster_centers_, centers.numpy(), atol=1e-12)


def test_nearest_picks_by_cosine_skip_what_an_earlier_cluster_took():
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]])
    centers = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised before the cosine
    picks = nearest_picks(pool, centers, torch.tensor([2, 2]))
    assert [p.tolist() for p in picks] == [[0, 2], [1, 3]]
    picks = nearest_picks(pool, centers, torch.tensor([3, 2]))
    assert [p.tolist() for p in picks] == [[0, 2, 3], [1, 4]]
    with pytest.raises(ValueError, match="fewer than 6"):
        nearest_picks(pool, centers, torch.tensor([3, 3]))


def their_sup_loss(z1: np.ndarray, z2: np.ndarray, ood: np.ndarray, t: float) -> float:
    """The public ``nt_xent``'s ``sup_loss`` (without the weight), ported to numpy."""
    n = z1.shape[0]
    out = np.concatenate([z1, z2]) / np.linalg.norm(np.concatenate([z1, z2]), axis=1)[:, None]
    sup_neg = np.exp(out @ out.T / t)
    pos = np.exp((out[:n] * out[n:]).sum(1) / t)
    pos = np.concatenate([pos, pos])
    ng = sup_neg.sum(1) - np.diag(sup_neg) - pos
    same = np.tile(ood[:, None] == ood[None, :], (2, 2)) & ~np.eye(2 * n, dtype=bool)
    loss = -np.log(sup_neg / (pos + ng)[:, None])
    return float(((same * loss).sum(1) / same.sum(1)).mean())


def test_domain_supcon_by_hand_and_against_the_public_code():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mixed = domain_supcon(z, z, torch.tensor([False, True]), 1.0)
    assert mixed.item() == pytest.approx(math.log((E + 2) / E))
    alike = domain_supcon(z, z, torch.tensor([False, False]), 1.0)
    assert alike.item() == pytest.approx(math.log(E + 2) - 1 / 3)
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    ood = torch.tensor([0, 1, 0, 0, 1, 1, 0, 0], dtype=torch.bool)
    theirs = their_sup_loss(z1.numpy(), z2.numpy(), ood.numpy(), 0.2)
    assert domain_supcon(z1, z2, ood, 0.2).item() == pytest.approx(theirs, rel=1e-5)


def test_domain_supcon_has_finite_gradients():
    z1 = torch.randn(6, 4, requires_grad=True)
    z2 = torch.randn(6, 4, requires_grad=True)
    domain_supcon(z1, z2, torch.tensor([0, 1, 0, 1, 1, 0], dtype=torch.bool), 0.2).backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    assert z1.grad.abs().sum() > 0


def colt_settings(method: str = "sdclr", epochs: int = 4, **colt) -> dict:
    """A tiny run with COLT: warm-up 1 epoch, resampling every 2, 12 pool images of 2
    clusters, alpha 0.2."""
    settings = tiny_settings(method, epochs=epochs)
    values = {"warmup_epochs": 1, "period": 2, "budget": 12, "clusters": 2, **colt}
    settings["method"]["extensions"] = {"colt": values}
    return settings


def run_colt(settings: dict, out, **kwargs) -> dict:
    labels = torch.arange(48) % 4
    return pretrain(
        settings, toy_images(48), out, seed=0, progress=False, pool=pool_images(),
        labels=labels, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("method", ["simclr", "sdclr"])
def test_colt_grows_the_pretraining_set_and_records_each_resampling(tmp_path, method):
    """Epoch 1 on the 48 images alone; before epochs 2 and 4 the 2 clusters take the 12 pool
    images by budget; the SupCon term is on from epoch 2; the record and the checkpoint say so."""
    torch.set_num_threads(1)
    run_colt(colt_settings(method), tmp_path)
    rows = list(csv.DictReader((tmp_path / LOG_NAME).read_text().splitlines()))
    assert [int(r["colt_pool"]) for r in rows] == [0, 12, 12, 12]
    assert float(rows[0]["colt_scl"]) == 0.0 and all(float(r["colt_scl"]) > 0 for r in rows[1:])
    record = read_json(tmp_path / "colt_resampling.json")
    assert [r["before_epoch"] for r in record["resamplings"]] == [2, 4]
    for resampling in record["resamplings"]:
        clusters = resampling["clusters"]
        assert sum(c["budget"] for c in clusters) == 12 == sum(c["pool_images"] for c in clusters)
        assert sum(c["size"] for c in clusters) == 48
        assert all(sum(n for _, n in c["top_classes"]) <= c["size"] for c in clusters)
        by_score = sorted(clusters, key=lambda c: c["mean_score"])
        assert by_score[0]["budget"] >= by_score[-1]["budget"]
    state = torch_load(tmp_path / CHECKPOINT_NAME)["method_state"]["colt"]
    assert bool(state["seen"].all()) and state["selection"].shape == (12,)
    assert len(set(state["selection"].tolist())) == 12
    assert torch_load(tmp_path / MODEL_NAME)["sample_statistics"]["colt"]["tail_score"].shape == (
        48,
    )


def test_without_pool_images_colt_leaves_the_run_as_it_was(tmp_path):
    """Before its warm-up ends COLT only scores: the run's model is the plain run's."""
    torch.set_num_threads(1)
    run_colt(colt_settings("sdclr", epochs=2, warmup_epochs=5), tmp_path / "colt")
    pretrain(tiny_settings("sdclr", epochs=2), toy_images(48), tmp_path / "plain", seed=0,
             progress=False)  # fmt: skip
    a = torch_load(tmp_path / "colt" / MODEL_NAME)["state_dict"]
    b = torch_load(tmp_path / "plain" / MODEL_NAME)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_budget_larger_than_the_pool_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"methods\.sdclr\.colt\.budget: 100 exceeds"):
        run_colt(colt_settings("sdclr", epochs=2, budget=100), tmp_path)


class Interrupt(Exception):
    pass


def test_an_interrupted_colt_run_resumes_bit_identically(tmp_path):
    """Stopped after epoch 2 (after the first resampling) and run again: the bytes of an
    uninterrupted run (model, checkpoint with scores and pool choice, log, record)."""
    torch.set_num_threads(1)
    settings = colt_settings("sdclr", epochs=4)
    run_colt(settings, tmp_path / "straight")

    def stop_after_two(epoch, metrics):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_colt(settings, tmp_path / "resumed", on_epoch_end=stop_after_two)
    assert torch_load(tmp_path / "resumed" / CHECKPOINT_NAME)["epoch"] == 2
    run_colt(settings, tmp_path / "resumed")
    for name in (MODEL_NAME, CHECKPOINT_NAME, LOG_NAME, "colt_resampling.json"):
        a = (tmp_path / "straight" / name).read_bytes()
        assert a == (tmp_path / "resumed" / name).read_bytes(), name


@pytest.mark.slow
def test_a_colt_run_survives_a_kill_bit_identically(tmp_path):
    """The same run SIGKILLed after epoch 2 (a separate process, as a scheduler kills a job:
    after the first resampling, before the second) and run again ends with an uninterrupted
    run's bytes: model, checkpoint (scores, pool choice), log and resampling record."""
    settings = colt_settings("sdclr", epochs=5)
    assert_a_killed_run_resumes_bit_identically(
        settings, tmp_path, pool=True, records=("colt_resampling.json",)
    )


def test_a_pool_file_is_read_as_nchw_and_a_wrong_one_is_one_line_naming_it(tmp_path):
    array = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    np.save(tmp_path / "pool.npy", array)
    pool = read_pool_file(tmp_path / "pool.npy", channels=3, size=4)
    assert pool.shape == (2, 3, 4, 4) and torch.equal(
        pool[1, 2], torch.from_numpy(array[1, ..., 2])
    )
    np.save(tmp_path / "bad.npy", array.astype(np.float32))
    with pytest.raises(InputError, match=r"bad\.npy: an OOD pool must be N x 4 x 4 x 3 uint8, got"):
        read_pool_file(tmp_path / "bad.npy", channels=3, size=4)
    with pytest.raises(InputError, match=r"bad\.npy: an OOD pool must be N x 8 x 8 x 3"):
        read_pool_file(tmp_path / "bad.npy", channels=3, size=8)
    with pytest.raises(InputError, match="does not exist"):
        read_pool_file(tmp_path / "missing.npy", channels=3, size=4)


def test_a_corrupt_or_pickled_pool_file_is_one_line_naming_it_and_runs_nothing(tmp_path):
    """A pool file that is not a ``.npy`` array (text, a truncated array, an object array that
    would unpickle) is refused with one line naming it, by the pretraining job and by the cost
    estimate's count alike; nothing in it is unpickled."""
    from sdclr.data.ood_pool import pool_file_length

    np.save(tmp_path / "pool.npy", np.zeros((8, 4, 4, 3), dtype=np.uint8))
    assert pool_file_length(tmp_path / "pool.npy") == 8
    (tmp_path / "text.npy").write_text("not an array\n")
    whole = (tmp_path / "pool.npy").read_bytes()
    (tmp_path / "header.npy").write_bytes(whole[:60])  # cut in the header
    (tmp_path / "truncated.npy").write_bytes(whole[:200])  # cut in the images
    np.save(tmp_path / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    for name in ("text.npy", "header.npy", "truncated.npy", "objects.npy"):
        with pytest.raises(InputError, match=rf"{name}: COLT's OOD pool is not a readable") as err:
            read_pool_file(tmp_path / name, channels=3, size=4)
        assert "\n" not in str(err.value) and "replace the file" in str(err.value)
        with pytest.raises(InputError, match=rf"{name}: COLT's OOD pool is not a readable"):
            pool_file_length(tmp_path / name)


def test_the_demo_pool_is_the_training_images_outside_the_pretraining_set():
    images = torch.arange(5).view(5, 1, 1, 1).to(torch.uint8)
    pool = load_pool("outside_pretraining_set", images, torch.tensor([0, 3]))
    assert pool.flatten().tolist() == [1, 2, 4]


def test_a_pool_that_is_not_a_npy_file_is_a_config_error():
    with pytest.raises(ConfigError, match=r"methods\.x\.colt\.pool: 'pool\.txt' is neither"):
        create_method(
            "sdclr", {}, "methods.x.hyperparameters", extensions={"colt": {"pool": "pool.txt"}}
        )


def test_colt_compiles_without_graph_breaks(tmp_path, monkeypatch):
    """SDCLR + COLT compiled (dynamo's counting backend): the scores' top-k and the SupCon term
    stay inside the loss's graph (no graph break), and the scores equal an eager run's."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    counter = CompileCounter()
    monkeypatch.setattr(
        train_step.torch, "compile", functools.partial(torch.compile, backend=counter)
    )
    torch.set_num_threads(1)
    settings = colt_settings("sdclr", epochs=3)
    settings["pretrain"]["compile"] = True
    run_colt(settings, tmp_path / "compiled")
    assert counter.frame_count >= 1 and not torch._dynamo.utils.counters["graph_break"]
    torch._dynamo.reset()
    settings["pretrain"]["compile"] = False
    run_colt(settings, tmp_path / "eager")
    compiled, eager = (
        torch_load(tmp_path / d / CHECKPOINT_NAME)["method_state"]["colt"]
        for d in ("compiled", "eager")
    )
    torch.testing.assert_close(compiled["scores"], eager["scores"], atol=1e-4, rtol=0)


def test_the_pretrain_stage_gives_colt_the_images_outside_d_i_and_the_labels(tmp_path):
    """The stage's COLT run on the toy dataset: the pool is the training images outside D_i
    (the demo's), the record names D_i's classes."""
    from sdclr.data.image_dataset import save_dataset
    from sdclr.data.splits import save_split
    from sdclr.pipeline.stages.pretrain import pretrain_stage
    from tests.helpers import toy_dataset, toy_split

    torch.set_num_threads(1)
    dataset = toy_dataset()
    split = toy_split(dataset)
    save_dataset(dataset, tmp_path / "data.pt")
    save_split(split, tmp_path / "split.json")
    settings = colt_settings("simclr", epochs=2, warmup_epochs=1, budget=20, clusters=3)
    out = tmp_path / "run"
    pretrain_stage(tmp_path / "data.pt", tmp_path / "split.json", settings, 0, out, progress=False)
    d_i = split["indices"]["D_i"]
    record = read_json(out / "colt_resampling.json")["resamplings"][0]
    assert sum(c["size"] for c in record["clusters"]) == len(d_i)
    assert sum(c["pool_images"] for c in record["clusters"]) == 20
    seen = {label for c in record["clusters"] for label, _ in c["top_classes"]}
    assert seen <= set(dataset.train_labels[d_i].tolist())
    assert torch_load(out / CHECKPOINT_NAME)["method_state"]["colt"]["selection"].max() < (
        len(dataset.train_labels) - len(d_i)
    )


@pytest.mark.slow
def test_sdclr_colt_trains_through_snakemake(tmp_path):
    """SDCLR + COLT declared in the config alone, through the real Snakemake on the tiny
    config (pool: the training images outside D_i): the log has the pool images of each
    epoch, the run directory the resampling record, a probe follows, and the colt_resampling
    analysis' table and figure are made from the run's files."""
    import yaml

    from tests.workflow.test_workflow import TINY, snakemake

    config = yaml.safe_load(TINY.read_text())
    colt = {"warmup_epochs": 1, "period": 1, "budget": 64, "clusters": 3}
    config["methods"] = {
        "sdclr_colt": {"label": "SDCLR + COLT", "algorithm": "sdclr", "colt": colt}
    }
    config["splits"] = [1]
    config["analyses"] = ["colt_resampling"]
    (tmp_path / "colt.yaml").write_text(yaml.safe_dump(config))
    target = "results/eval/fmnist_lt/sdclr_colt/split1/seed0/linear.json"
    table = "results/tables/colt_resampling.csv"
    snakemake(
        tmp_path, target, table, "results/figures/colt_resampling.png", "--configfile", "colt.yaml"
    )
    run_dir = tmp_path / "results" / "checkpoints" / "fmnist_lt" / "sdclr_colt" / "split1" / "seed0"
    rows = list(csv.DictReader((run_dir / LOG_NAME).read_text().splitlines()))
    assert [int(r["colt_pool"]) for r in rows] == [0, 64]
    record = read_json(run_dir / "colt_resampling.json")
    assert [r["before_epoch"] for r in record["resamplings"]] == [2]
    assert read_json(tmp_path / target)["summary"]["All"] > 10
    shares = (tmp_path / table).read_text()
    assert "Few pool %" in shares and "sdclr_colt" in shares
