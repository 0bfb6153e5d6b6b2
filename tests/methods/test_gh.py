"""Geometric Harmonization (arXiv 2310.17622): the simplex ETF, Sinkhorn's marginals, the prior
estimate, the swapped-prediction loss by hand, and the extension composed with SimCLR, SDCLR
and BCL in the real training loop (resume, compile)."""

from __future__ import annotations

import csv
import functools
import math

import numpy as np
import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

from sdclr.errors import ConfigError
from sdclr.methods import create_method, nt_xent
from sdclr.methods.geometric_harmonization import (
    cluster_scores,
    estimate_prior,
    harmonization_weight,
    momentum_update,
    refreshes_prior,
    simplex_etf,
    sinkhorn,
    swapped_prediction_loss,
)
from sdclr.models import ModelConfig
from sdclr.torch_files import torch_load
from sdclr.training import step as train_step
from sdclr.training.loop import CHECKPOINT_NAME, LOG_NAME, MODEL_NAME
from tests.helpers import (
    assert_a_killed_run_resumes_bit_identically,
    pretrain,
    tiny_settings,
    toy_images,
)

GH = "geometric_harmonization"


@pytest.mark.parametrize(("k", "d"), [(10, 16), (100, 128), (3, 3)])
def test_the_etf_has_unit_rows_and_pairwise_cosines_minus_one_over_k_minus_one(k, d):
    m = simplex_etf(k, d, seed=0).double()
    gram = m @ m.T
    expected = torch.full((k, k), -1.0 / (k - 1), dtype=torch.float64)
    expected.fill_diagonal_(1.0)
    torch.testing.assert_close(gram, expected, atol=1e-6, rtol=0)
    assert torch.equal(simplex_etf(k, d, seed=0), simplex_etf(k, d, seed=0))
    assert not torch.equal(simplex_etf(k, d, seed=0), simplex_etf(k, d, seed=1))


def test_an_etf_of_more_vertices_than_dimensions_is_refused():
    with pytest.raises(ValueError, match="K <= d"):
        simplex_etf(17, 16, seed=0)


def test_cluster_scores_are_the_normalised_products_with_the_vertices():
    z = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # z M^T = [1, 0, -1] and [3, 4, -3]; their norms sqrt(2) and sqrt(34)
    expected = [
        [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
        [3 / 34**0.5, 4 / 34**0.5, -3 / 34**0.5],
    ]
    torch.testing.assert_close(cluster_scores(z, target), torch.tensor(expected))


T1 = [[0.9, 0.1, -0.4], [0.2, 0.8, 0.3], [-0.5, 0.4, 0.7], [0.6, -0.2, 0.5]]
T2 = [[0.7, 0.3, -0.2], [0.1, 0.9, 0.1], [-0.3, 0.2, 0.9], [0.8, 0.0, 0.2]]


def their_sinkhorn(t: np.ndarray, prior: np.ndarray, lam: float, iterations: int) -> np.ndarray:
    """The public code's algorithm in its own orientation (K x N, float64, no shift), written
    out independently: r = pi / (Q c), c = (1/N) / (Q^T r), then N (r Q c^T)^T."""
    q = np.exp(t / lam).T
    k, n = q.shape
    pi = (prior / prior.sum()).reshape(k, 1)
    c = np.full((n, 1), 1.0 / n)
    for _ in range(iterations):
        r = pi / (q @ c)
        c = (1.0 / n) / (q.T @ r)
    return (r * q * c.T).T * n


@pytest.mark.parametrize("prior", [[0.5, 0.25, 0.25], [1 / 3] * 3, [0.6, 0.4, 0.0]])
@pytest.mark.parametrize(("lam", "iterations"), [(0.5, 300), (0.05, 3000)])
def test_sinkhorn_gives_the_sample_and_cluster_marginals(prior, lam, iterations):
    """Each sample's row sums to 1 and cluster k's column to N pi_k once converged; a cluster
    of prior 0 gets nothing."""
    t, pi = torch.tensor(T1), torch.tensor(prior)
    q = sinkhorn(t, pi, temperature=lam, iterations=iterations)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(q.sum(dim=0), 4 * pi, atol=1e-4, rtol=0)
    assert bool((q >= 0).all()) and not q.requires_grad


@pytest.mark.parametrize("prior", [[0.5, 0.25, 0.25], [1 / 3] * 3, [0.6, 0.4, 0.0]])
def test_sinkhorn_is_the_public_codes_plan(prior):
    """At the defaults (lambda 0.05, 300 iterations) the plan is the public code's algorithm,
    computed independently; on 4 samples its cluster sums are still 0.4 % from N pi (rows
    are exact: the last update is the samples')."""
    q = sinkhorn(torch.tensor(T1), torch.tensor(prior), 0.05, 300)
    reference = their_sinkhorn(np.array(T1), np.array(prior), 0.05, 300)
    np.testing.assert_allclose(q.numpy(), reference, atol=1e-6)
    torch.testing.assert_close(q.sum(dim=0), 4 * torch.tensor(prior), atol=5e-3, rtol=0)


def test_sinkhorn_runs_both_views_independently_in_one_batch():
    pi = torch.tensor([0.5, 0.3, 0.2])
    both = sinkhorn(torch.stack([torch.tensor(T1), torch.tensor(T2)]), pi, 0.05, 50)
    torch.testing.assert_close(both[0], sinkhorn(torch.tensor(T1), pi, 0.05, 50))
    torch.testing.assert_close(both[1], sinkhorn(torch.tensor(T2), pi, 0.05, 50))


def test_sinkhorn_stays_finite_where_the_plain_exponential_overflows():
    """lambda = 0.005: exp(1 / lambda) overflows float32; the per-cluster shift keeps the
    plan finite with its marginals."""
    q = sinkhorn(torch.tensor(T1), torch.tensor([0.5, 0.25, 0.25]), 0.005, 300)
    assert bool(torch.isfinite(q).all())
    torch.testing.assert_close(q.sum(dim=1), torch.ones(4), atol=1e-4, rtol=0)


def test_the_moving_average_stores_the_first_scores_then_blends():
    m, seen = torch.zeros(3, 2), torch.zeros(3, dtype=torch.bool)
    momentum_update(m, seen, torch.tensor([0, 2]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 0.9)
    assert m.tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]] and seen.tolist() == [1, 0, 1]
    momentum_update(m, seen, torch.tensor([2, 1]), torch.tensor([[1.0, 0.0], [0.5, 0.5]]), 0.9)
    torch.testing.assert_close(m[2], torch.tensor([0.1, 0.9]))
    assert m[1].tolist() == [0.5, 0.5] and m[0].tolist() == [1.0, 0.0]


def test_the_prior_is_the_histogram_of_the_moving_averages_argmax():
    """Argmax per seen sample: clusters 0, 2, 2, 0 (a tie: the first index), 2; the unseen
    last row is left out -> pi = [2, 0, 3] / 5; nothing seen: uniform."""
    m = torch.tensor(
        [[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.0, 0.4, 0.5], [0.3, 0.3, 0.1], [0.2, 0.1, 0.6]]
    )
    m = torch.cat([m, torch.tensor([[0.0, 5.0, 0.0]])])
    seen = torch.tensor([True] * 5 + [False])
    assert estimate_prior(m, seen).tolist() == pytest.approx([2 / 5, 0.0, 3 / 5])
    assert estimate_prior(m, torch.zeros(6, dtype=torch.bool)).tolist() == pytest.approx(
        [1 / 3] * 3
    )


def test_the_swapped_prediction_loss_on_a_4_by_3_example_by_hand():
    """L = -1/4 sum_i sum_k [q1_ik log softmax(t2_i/g)_k + q2_ik log softmax(t1_i/g)_k]."""
    q1 = [[1.0, 0.0, 0.0], [0.0, 0.7, 0.3], [0.0, 0.0, 1.0], [0.5, 0.0, 0.5]]
    q2 = [[0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [0.1, 0.0, 0.9], [1.0, 0.0, 0.0]]
    gamma = 0.1

    def log_softmax(row):
        top = max(v / gamma for v in row)
        norm = top + math.log(sum(math.exp(v / gamma - top) for v in row))
        return [v / gamma - norm for v in row]

    by_hand = 0.0
    for i in range(4):
        l2, l1 = log_softmax(T2[i]), log_softmax(T1[i])
        by_hand -= sum(q1[i][k] * l2[k] + q2[i][k] * l1[k] for k in range(3)) / 4
    got = swapped_prediction_loss(
        torch.tensor(T1), torch.tensor(T2), torch.tensor(q1), torch.tensor(q2), gamma
    )
    assert got.item() == pytest.approx(by_hand, rel=1e-6)
    # one entry in numbers: row 0 of the first direction is -log softmax(t2_0 / 0.1)_0
    assert log_softmax(T2[0])[0] == pytest.approx(-math.log(1 + math.exp(-4) + math.exp(-9)))


def test_the_loss_has_finite_gradients_through_both_views_only():
    """Gradients reach both views' projections, finite; the Sinkhorn targets carry none. The
    one loss's gradient equals the sum of SDCLR's two per-branch passes (the other branch
    detached), as in the public code."""
    g = torch.Generator().manual_seed(0)
    target = simplex_etf(10, 16, seed=0)
    z1 = torch.randn(8, 16, generator=g, requires_grad=True)
    z2 = torch.randn(8, 16, generator=g, requires_grad=True)
    pi = torch.full((10,), 0.1)

    def loss(a, b):
        t1, t2 = cluster_scores(a, target), cluster_scores(b, target)
        q = sinkhorn(torch.stack([t1, t2]), pi, 0.05, 300)
        return swapped_prediction_loss(t1, t2, q[0], q[1], 0.1)

    value = loss(z1, z2)
    value.backward()
    assert math.isfinite(value.item())
    for z in (z1, z2):
        assert bool(torch.isfinite(z.grad).all()) and z.grad.abs().sum() > 0
    dense = torch.autograd.grad(loss(z1, z2.detach()), z1)[0]
    pruned = torch.autograd.grad(loss(z1.detach(), z2), z2)[0]
    torch.testing.assert_close(dense, z1.grad)
    torch.testing.assert_close(pruned, z2.grad)


def test_the_weight_ramps_after_the_warm_up_and_the_prior_refreshes_on_schedule():
    """The public code's CIFAR run: W = 500, R = 10 -> w = 0 up to epoch 499 (0-based), 0.1 at
    500, 1 from 509; pi at the ends of epochs 499, 519, 539, ..."""
    w = [harmonization_weight(e, 500, 10, 1.0) for e in (0, 499, 500, 504, 509, 600)]
    assert w == pytest.approx([0.0, 0.0, 0.1, 0.5, 1.0, 1.0])
    assert harmonization_weight(3, 3, 0, 2.0) == 2.0
    assert [e for e in range(560) if refreshes_prior(e, 500, 20)] == [499, 519, 539, 559]
    assert [e for e in range(60) if refreshes_prior(e, 0, 20)] == [19, 39, 59]
    assert [e for e in range(8) if refreshes_prior(e, 4, 2)] == [3, 5, 7]


def gh_settings(method: str = "sdclr", epochs: int = 3, **extensions) -> dict:
    """A tiny run with GH (K = 10 on 16-d projections): 1 warm-up epoch, a 2-epoch ramp,
    pi every epoch."""
    settings = tiny_settings(method, epochs=epochs)
    gh = {"clusters": 10, "warmup_epochs": 1, "ramp_epochs": 2, "prior_period": 1}
    settings["method"]["extensions"] = {GH: gh, **extensions}
    return settings


@pytest.mark.parametrize(
    ("method", "extensions"),
    [
        ("simclr", {}),
        ("sdclr", {}),
        ("sdclr", {"bcl": {"num_ops": 2, "min_magnitude": 5}}),
        ("simclr", {"bcl": {"num_ops": 1, "min_magnitude": 10}}),
    ],
    ids=["simclr", "sdclr", "bcl_d", "bcl_i"],
)
def test_gh_composes_with_each_method_in_the_training_loop(tmp_path, method, extensions):
    """A few epochs of the real loop: the log has the weight ramp, L_GH only after the warm-up,
    the prior's non-empty clusters; the checkpoint holds the moving average of every sample,
    the prior and the ETF."""
    torch.set_num_threads(1)
    pretrain(gh_settings(method, **extensions), toy_images(48), tmp_path, seed=0, progress=False)
    rows = list(csv.DictReader((tmp_path / LOG_NAME).read_text().splitlines()))
    assert [float(r["gh_weight"]) for r in rows] == [0.0, 0.5, 1.0]
    assert float(rows[0]["gh_loss"]) == 0.0 and all(float(r["gh_loss"]) > 0 for r in rows[1:])
    assert all(math.isfinite(float(r["loss"])) and 1 <= int(r["gh_clusters"]) <= 10 for r in rows)
    state = torch_load(tmp_path / CHECKPOINT_NAME)["method_state"][GH]
    assert state["momentum"].shape == (48, 10) and bool(state["seen"].all())
    assert state["prior"].sum().item() == pytest.approx(1.0)
    assert torch.equal(state["target"], simplex_etf(10, 16, seed=0))


def test_bcl_observes_the_contrastive_loss_without_the_gh_term():
    """With BCL, each sample's momentum loss is its NT-Xent alone (as the public code feeds
    BCL), while the loss trained on is NT-Xent + w L_GH."""
    torch.manual_seed(0)
    method = create_method(
        "simclr",
        {"temperature": 0.2},
        extensions={
            "bcl": {"num_ops": 1, "min_magnitude": 10},
            GH: {"clusters": 10, "warmup_epochs": 0, "ramp_epochs": 0},  # w = 1
        },
    )
    model = method.build_model(ModelConfig(width=0.0625, projection_dim=16), 3)
    method.setup(6, torch.device("cpu"), model)
    method.begin_epoch(model, 0)
    v1, v2 = torch.rand(6, 3, 12, 12), torch.rand(6, 3, 12, 12)
    with torch.no_grad():
        z1, z2 = model(torch.cat([v1, v2])).chunk(2)
        contrastive = nt_xent(z1, z2, 0.2, per_sample=True)
    loss = method.training_loss(model, v1, v2, torch.arange(6))
    bcl, gh = method.extensions
    torch.testing.assert_close(bcl.momentum_loss, contrastive)
    assert loss.item() == pytest.approx(contrastive.mean().item() + gh.loss_sum.item(), rel=1e-5)
    assert gh.loss_sum.item() > 0 and method.sample_contrastive_losses is None


def test_more_clusters_than_projection_dimensions_is_a_config_error_naming_the_key():
    method = create_method(
        "simclr", {}, "methods.x.hyperparameters", extensions={GH: {"clusters": 100}}
    )
    model = method.build_model(ModelConfig(width=0.0625, projection_dim=16), 3)
    with pytest.raises(ConfigError, match=r"methods\.x\.geometric_harmonization\.clusters: 100"):
        method.setup(4, torch.device("cpu"), model)


def test_more_clusters_than_a_datasets_projection_dimension_stops_the_config_before_any_job():
    """The default K = 100 on the tiny config's 32-dimensional projection is refused when the
    config loads (one line naming the key), not when the pretraining job starts."""
    import yaml

    from sdclr.pipeline.config import validate_config
    from tests.workflow.test_workflow import TINY

    config = yaml.safe_load(TINY.read_text())
    config["methods"]["sdclr_gh"] = {"algorithm": "sdclr", "geometric_harmonization": {}}
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert message.startswith("methods.sdclr_gh.geometric_harmonization.clusters: 100 exceeds")
    assert "\n" not in message and "model.projection_dim" in message


class Interrupt(Exception):
    pass


def test_an_interrupted_gh_run_resumes_bit_identically(tmp_path):
    """SDCLR + BCL + GH stopped after epoch 2 (in the ramp, after a prior refresh) and run
    again ends with the bytes of an uninterrupted run: model, checkpoint (moving average,
    prior, ETF, BCL's state) and log."""
    torch.set_num_threads(1)
    settings = gh_settings("sdclr", epochs=4, bcl={"num_ops": 2, "min_magnitude": 5})
    pretrain(settings, toy_images(48), tmp_path / "straight", seed=1, progress=False)

    def stop_after_two(epoch, metrics):
        if epoch == 2:
            raise Interrupt

    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        pretrain(
            settings, toy_images(48), resumed, seed=1, progress=False, on_epoch_end=stop_after_two
        )
    assert torch_load(resumed / CHECKPOINT_NAME)["epoch"] == 2
    pretrain(settings, toy_images(48), resumed, seed=1, progress=False)
    for name in (MODEL_NAME, CHECKPOINT_NAME, LOG_NAME):
        assert (tmp_path / "straight" / name).read_bytes() == (resumed / name).read_bytes(), name


@pytest.mark.slow
def test_a_gh_run_survives_a_kill_bit_identically(tmp_path):
    """The same run SIGKILLed after its second epoch (a separate process, as a scheduler kills
    a job) and run again ends with the bytes of an uninterrupted run."""
    settings = gh_settings("sdclr", 4, bcl={"num_ops": 2, "min_magnitude": 5})
    assert_a_killed_run_resumes_bit_identically(settings, tmp_path)


@pytest.fixture
def counted_compile(monkeypatch):
    """``torch.compile`` in the training step with dynamo's counting backend."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    counter = CompileCounter()
    monkeypatch.setattr(
        train_step.torch, "compile", functools.partial(torch.compile, backend=counter)
    )
    yield counter
    torch._dynamo.reset()


@pytest.mark.parametrize(
    ("warmup", "extensions", "expected"),
    [
        pytest.param(0, {}, [1, 1], id="sdclr"),
        pytest.param(  # about a minute on 2 busy cores
            1,
            {"bcl": {"num_ops": 2, "min_magnitude": 5}},
            [1, 2, 2],
            id="bcl_d",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_gh_compiles_to_one_graph_without_breaks(
    tmp_path, counted_compile, warmup, extensions, expected
):
    """SDCLR (+ BCL) + GH: both branches, NT-Xent, the 300 Sinkhorn iterations and L_GH are
    one graph with no graph break; the weight ramp and the prior are inputs (no recompile),
    and only switching L_GH on after a warm-up compiles once more. The moving average equals
    an eager run's."""
    settings = gh_settings("sdclr", len(expected), **extensions)
    settings["method"]["extensions"][GH]["warmup_epochs"] = warmup
    settings["pretrain"]["compile"] = True
    counts: list[int] = []
    compiled_dir, eager_dir = tmp_path / "compiled", tmp_path / "eager"
    pretrain(
        settings, toy_images(48), compiled_dir, seed=0, progress=False,
        on_epoch_end=lambda epoch, metrics: counts.append(counted_compile.frame_count),
    )  # fmt: skip
    assert counts == expected
    assert not torch._dynamo.utils.counters["graph_break"]
    settings["pretrain"]["compile"] = False
    pretrain(settings, toy_images(48), eager_dir, seed=0, progress=False)
    compiled, eager = (
        torch_load(d / CHECKPOINT_NAME)["method_state"][GH] for d in (compiled_dir, eager_dir)
    )
    torch.testing.assert_close(compiled["momentum"], eager["momentum"], atol=1e-4, rtol=0)
