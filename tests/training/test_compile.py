"""torch.compile of the training step: what is compiled, how often, and that it computes what
the eager step does.

The compilation counts use dynamo's ``CompileCounter`` backend (it counts every frame dynamo
compiles and runs the captured graph eagerly), substituted for inductor in the real
``pretrain`` loop, so they are exact and fast on a CPU; the numerical check compiles with
inductor, as a CUDA run does.
"""

from __future__ import annotations

import copy
import csv
import functools
import logging

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.methods import create_method
from sdclr.models import ModelConfig
from sdclr.training import step as train_step
from sdclr.training.run_files import TIMING_NAME
from sdclr.training.step import Runtime, TrainStep
from tests.helpers import pretrain, tiny_settings, toy_images


@pytest.fixture
def counted_compile(monkeypatch):
    """``torch.compile`` inside the training step, with a counting backend; yields the
    counter. Dynamo's caches and counters start empty."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    counter = CompileCounter()
    monkeypatch.setattr(
        train_step.torch, "compile", functools.partial(torch.compile, backend=counter)
    )
    yield counter
    torch._dynamo.reset()


def _run_counting(tmp_path, settings, counter, images):
    """Pretrain with compile on; return the compiled-frame count after each epoch."""
    settings["pretrain"]["compile"] = True
    counts: list[int] = []
    pretrain(
        settings,
        images,
        tmp_path,
        seed=0,
        progress=False,
        on_epoch_end=lambda epoch, metrics: counts.append(counter.frame_count),
    )
    return counts


def test_sdclr_compiles_once_and_never_recompiles_across_branch_switches(tmp_path, counted_compile):
    """SDCLR's step switches to the pruned branch and back every step, and the epoch hook
    recomputes the mask: over three epochs the whole forward (both branches and NT-Xent) is
    one graph, compiled once, with no graph break and no recompile."""
    settings = tiny_settings("sdclr", epochs=3)
    settings["method"]["hyperparameters"]["prune_ratio"] = 0.9
    counts = _run_counting(tmp_path, settings, counted_compile, toy_images(48))  # 3 full steps
    assert counts == [1, 1, 1]
    assert not torch._dynamo.utils.counters["graph_break"]
    assert counted_compile.op_count > 100  # the graph holds both branches' convolutions


def test_the_last_partial_batch_compiles_once_more_and_only_once(tmp_path, counted_compile):
    """40 images at batch 16 give steps of 16, 16 and 8 every epoch: the partial batch is a
    second shape, compiled once in the first epoch and reused after."""
    settings = tiny_settings("sdclr", epochs=3)
    settings["method"]["hyperparameters"]["prune_ratio"] = 0.9
    counts = _run_counting(tmp_path, settings, counted_compile, toy_images(40))
    assert counts == [2, 2, 2]


def test_a_compiled_run_records_its_graphs_and_breaks_per_epoch(tmp_path, counted_compile, caplog):
    """A compiled run's timing.csv has, per epoch, the graphs compiled and graph breaks met so
    far in the run (40 images: the full and the partial batch, 2 graphs from the first epoch
    on, no break), and the log says so once, when they change; an eager run has neither."""
    settings = tiny_settings("sdclr", epochs=3)
    with caplog.at_level(logging.INFO, logger="sdclr.training.loop"):
        counts = _run_counting(tmp_path / "compiled", settings, counted_compile, toy_images(40))
    rows = list(csv.DictReader((tmp_path / "compiled" / TIMING_NAME).read_text().splitlines()))
    assert [int(r["compiled_graphs"]) for r in rows] == counts == [2, 2, 2]
    assert [int(r["graph_breaks"]) for r in rows] == [0, 0, 0]
    said = [r.message for r in caplog.records if r.message.startswith("compiled step")]
    assert said == ["compiled step: 2 graphs, 0 graph breaks in this run so far"]
    settings["pretrain"]["compile"] = False
    pretrain(settings, toy_images(40), tmp_path / "eager", seed=0, progress=False)
    header = (tmp_path / "eager" / TIMING_NAME).read_text().splitlines()[0]
    assert "compiled_graphs" not in header


def test_a_scheduled_temperature_recompiles_once_then_is_an_input(tmp_path, counted_compile):
    """A temperature schedule changes the method's temperature every epoch: dynamo compiles
    once more at the first change (the value becomes a graph input), and never again."""
    settings = tiny_settings("sdclr", epochs=3)
    settings["method"]["hyperparameters"] = {"prune_ratio": 0.9}
    settings["method"]["extensions"] = {
        "temperature_schedule": {"t_min": 0.1, "t_max": 1.0, "period": 2}
    }
    counts = _run_counting(tmp_path, settings, counted_compile, toy_images(48))
    assert counts == [1, 2, 2]


@pytest.mark.slow
def test_inductor_compiled_step_computes_the_eager_loss_and_gradients():
    """On one fixed batch (same weights, same augmented views) the inductor-compiled SDCLR
    forward gives the eager loss and gradients within bf16 tolerance (the compiler reorders
    fp32 sums; it must not change what is computed)."""
    torch.manual_seed(0)
    method = create_method("sdclr", {"temperature": 0.2, "prune_ratio": 0.9})
    model = method.build_model(ModelConfig(width=0.0625, projection_dim=16), in_channels=3)
    method.begin_epoch(model, 0)
    compiled_model = copy.deepcopy(model)
    augment = BatchAugment(AugmentConfig(crop_size=16))
    images = toy_images(32)[:, :, :14, :14]
    indices = torch.arange(32)

    def loss_and_grads(net: torch.nn.Module, compiled: bool):
        runtime = Runtime("cpu", "fp32", channels_last=False, compile=compiled)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        step = TrainStep(method, net, optimizer, augment, runtime)
        views = step.views(images, indices, torch.Generator().manual_seed(1))
        loss = step.loss(*views, indices)
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in net.parameters()])

    torch._dynamo.reset()
    eager_loss, eager_grads = loss_and_grads(model, compiled=False)
    compiled_loss, compiled_grads = loss_and_grads(compiled_model, compiled=True)
    torch._dynamo.reset()
    assert torch.isfinite(compiled_grads).all()
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-2, atol=1e-3)
    relative = (compiled_grads - eager_grads).norm() / eager_grads.norm()
    assert relative < 1e-2, relative  # bf16 has 8 bits of mantissa: ~4e-3 per value


def test_difficult_pairs_compile_in_the_graph_and_count_as_eager(tmp_path, counted_compile):
    """SDCLR + difficult pairs: the selection, the tuned logits and the per-row counts the
    extension keeps are in the one compiled graph (no graph break, no recompile), and the
    per-sample counts and the loss equal an eager run's."""
    from sdclr.torch_files import torch_load

    settings = tiny_settings("sdclr", epochs=2)
    settings["method"]["hyperparameters"] = {"prune_ratio": 0.9}
    settings["method"]["extensions"] = {
        "difficult_examples": {"margin": 0.1, "temperature_ratio": 0.5}
    }
    compiled_dir, eager_dir = tmp_path / "compiled", tmp_path / "eager"
    counts = _run_counting(compiled_dir, copy.deepcopy(settings), counted_compile, toy_images(48))
    assert counts == [1, 1] and not torch._dynamo.utils.counters["graph_break"]
    settings["pretrain"]["compile"] = False
    pretrain(settings, toy_images(48), eager_dir, seed=0, progress=False)
    compiled, eager = (
        torch_load(d / "model.pt")["sample_statistics"] for d in (compiled_dir, eager_dir)
    )
    for key in ("difficult_pairs", "candidate_pairs"):
        assert torch.equal(compiled["difficult_examples"][key], eager["difficult_examples"][key])
    assert int(compiled["difficult_examples"]["difficult_pairs"].sum()) > 0
