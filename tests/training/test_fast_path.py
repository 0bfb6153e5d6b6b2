"""The fast pretraining path: same numbers as the straightforward step, no host syncs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from sdclr.benchmark import numpy_prune, reference_nt_xent
from sdclr.data.augment import AugmentConfig, BatchAugment
from sdclr.methods import create_method, nt_xent
from sdclr.models import ModelConfig, branch, global_magnitude_prune, masked_convs
from sdclr.settings import load
from sdclr.training.config import PretrainConfig
from sdclr.training.step import Runtime, TrainStep, resolve_runtime

FP32 = Runtime("cpu", "fp32", channels_last=False, compile=False)
FP32_CHANNELS_LAST = Runtime("cpu", "fp32", channels_last=True, compile=False)
BF16 = Runtime("cpu", "bf16", channels_last=True, compile=False)


def _setup(method_name: str = "sdclr", seed: int = 0):
    torch.manual_seed(seed)
    method = create_method(method_name, {"temperature": 0.2})
    model = method.build_model(ModelConfig(width=0.125, projection_dim=16), in_channels=3)
    model.train()
    method.on_epoch_start(model, 0)  # SDCLR: masks from the current weights
    return method, model


def _clone(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def _sgd(model: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_close_to_scale(ours: dict, ref: dict, rel: float = 1e-4, floor: float = 1e-6):
    """Every tensor within ``rel`` of its reference's largest magnitude (float32 reordering in
    a ResNet's backward is relative to the gradient's scale, not elementwise)."""
    assert ours.keys() == ref.keys()
    for name in ours:
        scale = ref[name].abs().max().item()
        error = (ours[name] - ref[name]).abs().max().item()
        assert error <= rel * scale + floor, (name, error, scale)


def _reference_sdclr_backward(model, v1, v2, t=0.2) -> torch.Tensor:
    """The reference's SDCLR step without the update: the pruned branch forward twice (no grad
    for the dense branch's loss, with grad for its own), two backward passes, the loss
    through exp / masked_select."""
    with torch.no_grad(), branch(model, pruned=True):
        f2_no_grad = model(v2).detach()
    f1 = model(v1)
    loss = reference_nt_xent(f1, f2_no_grad, t)
    loss.backward()
    with branch(model, pruned=True):
        f2 = model(v2)
    reference_nt_xent(f1.detach(), f2, t).backward()
    return loss.detach()


@pytest.mark.parametrize("runtime", [FP32, FP32_CHANNELS_LAST], ids=["fp32", "channels_last"])
def test_fast_sdclr_loss_and_gradients_match_the_reference_double_forward(runtime):
    """On a fixed batch and mask, the fast SDCLR step (one dense + one pruned forward, one
    backward, CE-form NT-Xent; contiguous or channels-last) gives the reference step's loss and
    gradients (pruned branch run twice, two backward passes, exp/masked_select NT-Xent)."""
    method, model = _setup()
    reference = _clone(model)
    v1, v2 = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    step = TrainStep(method, model, _sgd(model), BatchAugment(AugmentConfig(16)), runtime)
    fmt = runtime.memory_format
    loss = step.loss(
        v1.contiguous(memory_format=fmt), v2.contiguous(memory_format=fmt), torch.arange(8)
    )
    loss.backward()
    ref_loss = _reference_sdclr_backward(reference, v1, v2)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    _assert_close_to_scale(_grads(model), _grads(reference))


@pytest.mark.parametrize("method_name", ["simclr", "sdclr"])
def test_train_step_update_equals_the_straightforward_step(method_name):
    """A whole TrainStep (both views from one augmentation call, forward, backward, SGD
    update) leaves the same weights as doing those steps by hand with the same generator
    (for SDCLR by hand = the reference's double pruned forward and two backward passes)."""
    method, model = _setup(method_name)
    reference = _clone(model)
    augment = BatchAugment(AugmentConfig(16))
    batch = torch.randint(0, 256, (8, 3, 18, 18), dtype=torch.uint8)
    step = TrainStep(method, model, _sgd(model), augment, FP32_CHANNELS_LAST)
    loss = step(batch, torch.arange(8), torch.Generator().manual_seed(5), lr=0.1)

    optimizer = _sgd(reference)
    views = augment(torch.cat([batch, batch]), torch.Generator().manual_seed(5))
    v1, v2 = views.chunk(2)
    optimizer.zero_grad()
    if method_name == "sdclr":
        ref_loss = _reference_sdclr_backward(reference, v1, v2)
    else:
        f1, f2 = reference(torch.cat([v1, v2])).chunk(2)
        ref_loss = reference_nt_xent(f1, f2, 0.2)
        ref_loss.backward()
    optimizer.step()
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    _assert_close_to_scale(
        {n: p.detach() for n, p in model.named_parameters()},
        {n: p.detach() for n, p in reference.named_parameters()},
    )
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("method_name", ["simclr", "sdclr"])
def test_bf16_autocast_step_stays_close_to_fp32(method_name):
    """bf16 autocast (the CUDA default) changes the loss by < 3% and keeps the gradient's
    direction on a fixed batch and mask (cosine > 0.8 over all parameters: at initialisation
    on noise images the contrastive gradient is small, and bf16 rounding gives ~0.9)."""
    method, model = _setup(method_name)
    twin = _clone(model)
    v1, v2 = torch.rand(16, 3, 16, 16), torch.rand(16, 3, 16, 16)
    augment = BatchAugment(AugmentConfig(16))
    fp32 = TrainStep(method, model, _sgd(model), augment, FP32)
    bf16 = TrainStep(method, twin, _sgd(twin), augment, BF16)
    loss32 = fp32.loss(v1, v2, torch.arange(16))
    loss16 = bf16.loss(
        v1.contiguous(memory_format=torch.channels_last),
        v2.contiguous(memory_format=torch.channels_last),
        torch.arange(16),
    )
    assert loss16.dtype == torch.float32  # the NT-Xent similarities are fp32 under autocast
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.03)
    loss32.backward()
    loss16.backward()
    g32 = torch.cat([g.flatten() for g in _grads(model).values()])
    g16 = torch.cat([g.flatten() for g in _grads(twin).values()])
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.8


def test_nt_xent_is_fp32_inside_autocast():
    """Inside a bf16 autocast region nt_xent still computes its similarity matrix in fp32:
    bf16 inputs give exactly the loss of their fp32 copies."""
    z1, z2 = torch.randn(12, 8).bfloat16(), torch.randn(12, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = nt_xent(z1, z2, 0.2)
    assert inside.dtype == torch.float32
    assert torch.equal(inside, nt_xent(z1.float(), z2.float(), 0.2))


def test_nt_xent_equals_the_reference_formula():
    """The cross-entropy form of NT-Xent equals the reference's exp / masked_select one."""
    z1, z2 = torch.randn(10, 6), torch.randn(10, 6)
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(
        reference_nt_xent(z1, z2, 0.5).item(), rel=1e-5
    )


@pytest.mark.parametrize("ratio", [0.123, 0.5, 0.9])
def test_device_prune_threshold_equals_numpy(ratio):
    """The on-device global magnitude mask equals numpy's on the CPU: the ceil(p N) smallest
    |w| by numpy's stable argsort, and the reference's sort-threshold masks |w| > t."""
    torch.manual_seed(1)
    model = create_method("sdclr").build_model(ModelConfig(width=0.25), in_channels=3)
    convs = masked_convs(model)
    masked = global_magnitude_prune(model, ratio)
    ours = np.concatenate([c.weight_mask.numpy().ravel() for c in convs])

    magnitudes = np.concatenate([np.abs(c.weight.detach().numpy()).ravel() for c in convs])
    k = math.ceil(ratio * magnitudes.size)
    expected = np.ones_like(magnitudes)
    expected[np.argsort(magnitudes, kind="stable")[:k]] = 0.0
    assert masked == k
    np.testing.assert_array_equal(ours, expected)

    ordered = np.sort(magnitudes)
    assert ordered[k - 1] < ordered[k]  # no tie at the threshold: both rules must agree
    np.testing.assert_array_equal(ours, (magnitudes > ordered[k - 1]).astype(np.float32))
    assert numpy_prune(model, ratio) == k  # the benchmark's reference-style numpy masks
    np.testing.assert_array_equal(
        np.concatenate([c.weight_mask.numpy().ravel() for c in convs]), expected
    )


def test_prune_masks_do_not_depend_on_the_memory_format():
    """A channels-last model (the CUDA default) gets exactly the masks of its contiguous copy:
    the ranking is over the weights' logical order, not their memory layout."""
    torch.manual_seed(3)
    model = create_method("sdclr").build_model(ModelConfig(width=0.125), in_channels=3)
    twin = _clone(model).to(memory_format=torch.channels_last)
    assert global_magnitude_prune(model, 0.9) == global_magnitude_prune(twin, 0.9)
    for a, b in zip(masked_convs(model), masked_convs(twin), strict=True):
        assert torch.equal(a.weight_mask, b.weight_mask)


@pytest.mark.parametrize("method", ["sort", "select"])
def test_both_ranking_methods_equal_numpy_stable_argsort(method):
    """The GPU default (stable sort) and the CPU default (selection + ties by position) mask
    exactly the entries numpy's stable argsort ranks first, with and without ties."""
    from sdclr.models.prunable import smallest_k_mask

    generator = torch.Generator().manual_seed(0)
    for values in (
        torch.rand(5000, generator=generator),
        torch.randint(0, 7, (5000,), generator=generator).float(),  # many ties
    ):
        for k in (0, 1, 1234, 4999, 5000):
            expected = np.ones(5000, dtype=np.float32)
            expected[np.argsort(values.numpy(), kind="stable")[:k]] = 0.0
            np.testing.assert_array_equal(smallest_k_mask(values, k, method).numpy(), expected)


def test_device_prune_breaks_ties_like_numpy_stable_sort():
    """With many equal magnitudes the masked weights are still exactly ceil(p N), and the same
    ones as numpy's stable argsort picks (ties broken by position, in module order)."""
    torch.manual_seed(2)
    model = create_method("sdclr").build_model(ModelConfig(width=0.125), in_channels=3)
    convs = masked_convs(model)
    with torch.no_grad():
        for conv in convs:  # only 8 distinct magnitudes
            conv.weight.copy_(torch.randint(-4, 5, conv.weight.shape).float())
    global_magnitude_prune(model, 0.6)
    ours = np.concatenate([c.weight_mask.numpy().ravel() for c in convs])
    magnitudes = np.concatenate([np.abs(c.weight.detach().numpy()).ravel() for c in convs])
    expected = np.ones_like(magnitudes)
    expected[np.argsort(magnitudes, kind="stable")[: math.ceil(0.6 * magnitudes.size)]] = 0
    np.testing.assert_array_equal(ours, expected)


def test_runtime_auto_is_bf16_channels_last_compiled_on_cuda_and_fp32_eager_on_cpu():
    """precision/channels_last/compile 'auto' resolve per device (compiled on CUDA only);
    explicit values win; bad values are refused naming the key."""
    auto = PretrainConfig(epochs=1)
    assert resolve_runtime(auto, "cpu") == Runtime("cpu", "fp32", False, False)
    assert resolve_runtime(auto, "cuda") == Runtime("cuda", "bf16", True, True)
    assert resolve_runtime(auto, "cuda", processes=2) == Runtime("cuda", "bf16", True, False)
    explicit = PretrainConfig(epochs=1, precision="bf16", channels_last=True, compile=True)
    assert resolve_runtime(explicit, "cpu") == Runtime("cpu", "bf16", True, True)
    off = PretrainConfig(epochs=1, precision="fp32", channels_last=False, compile=False)
    assert resolve_runtime(off, "cuda") == Runtime("cuda", "fp32", False, False)
    with pytest.raises(ValueError, match="pretrain.precision: 'fp16' is not a choice"):
        load(PretrainConfig, {"epochs": 1, "precision": "fp16"}, "pretrain")
    with pytest.raises(ValueError, match="pretrain.channels_last: 'yes' is not a choice"):
        load(PretrainConfig, {"epochs": 1, "channels_last": "yes"}, "pretrain")


class _SyncSpy(TorchFunctionMode):
    """Records calls that make the host wait for the device (on CUDA) when made on tensors:
    reading values (item, tolist, bool/int/float), data-dependent shapes (nonzero,
    masked_select, unique, boolean-mask indexing)."""

    SYNCING = {
        "item",
        "tolist",
        "__bool__",
        "__int__",
        "__float__",
        "nonzero",
        "argwhere",
        "masked_select",
        "unique",
        "unique_consecutive",
        "numpy",
        "cpu",
    }

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in self.SYNCING:
            self.calls.append(name)
        if name in ("__getitem__", "__setitem__", "index_put_", "index_put") and len(args) > 1:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                self.calls.append(f"{name}[bool mask]")
        if name == "where" and len(args) + len(kwargs) == 1:
            self.calls.append("where(condition)")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("method_name", ["simclr", "sdclr"])
def test_train_step_has_no_host_device_syncs(method_name):
    """Augmentation, forward, backward and update of a TrainStep call nothing that waits for
    the device: no item/tolist/bool(), no nonzero or boolean-mask indexing."""
    method, model = _setup(method_name)
    augment = BatchAugment(AugmentConfig(16, blur_p=0.5))
    step = TrainStep(method, model, _sgd(model), augment, FP32)
    batch = torch.randint(0, 256, (8, 3, 18, 18), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    step(batch, torch.arange(8), generator, 0.1)  # first step creates the momentum buffers
    with _SyncSpy() as spy:
        step(batch, torch.arange(8), generator, 0.1)
    assert spy.calls == []
    with _SyncSpy() as control:  # the spy does see syncing calls
        x = torch.rand(4)
        x[x > 0.5] = 0.0
        x.nonzero()
        x.sum().item()
    assert control.calls == ["__setitem__[bool mask]", "nonzero", "item"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method_name", ["simclr", "sdclr"])
def test_train_step_on_cuda_does_not_synchronize(method_name):
    """On CUDA, with torch's sync debug mode set to error, steps of the default runtime (bf16,
    channels-last) never synchronise the device."""
    method, model = _setup(method_name)
    model.cuda()
    runtime = resolve_runtime(PretrainConfig(epochs=1), "cuda")
    step = TrainStep(method, model, _sgd(model), BatchAugment(AugmentConfig(32)), runtime)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    step(images[:32], torch.arange(32, device="cuda"), generator, 0.1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(2):
            step(images[i * 32 : (i + 1) * 32], torch.arange(32, device="cuda"), generator, 0.1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_foreach_sgd_is_bit_identical_to_the_per_parameter_loop_on_cpu():
    """pretrain's optimiser updates every parameter with multi-tensor kernels; on a CPU that is
    the per-parameter loop's arithmetic exactly (momentum and weight decay included), so the
    switch changed no number."""
    from sdclr.methods import create_method
    from sdclr.models import ModelConfig

    finals = []
    for foreach in (False, True):
        torch.manual_seed(0)
        method = create_method("sdclr", {"prune_ratio": 0.9})
        model = method.build_model(ModelConfig(width=0.0625, projection_dim=16), 3)
        method.begin_epoch(model, 0)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=foreach
        )
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            v1, v2 = torch.rand(2, 8, 3, 12, 12, generator=generator)
            loss = method.loss(model, v1, v2)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        finals.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*finals, strict=True))
