"""One training step on the fast path, and how it runs on this device.

The step (:class:`TrainStep`) is the fast path on every device: both views of a batch in one
batched augmentation call, written straight into the model's memory format; the forward
under bf16 autocast where ``pretrain.precision`` says so (``auto``: bf16 on CUDA, fp32 on
CPU; the NT-Xent similarity matrix stays fp32; ``fp32`` is IEEE float32 with CUDA's TF32 off,
the reference's arithmetic; ``tf32`` float32 with TF32 convs and matmuls); channels-last
convolutions where ``pretrain.channels_last`` says so (``auto``: on CUDA); ``torch.compile``
where ``pretrain.compile`` says so (``auto``: on one-GPU CUDA runs); and nothing in the step
waits for the device (the loss stays a device tensor).

What is compiled is the method's whole forward, ``method.loss(model, view1, view2)``: for
SDCLR the dense pass, the switch to the pruned branch (mask and BatchNorm), the pruned pass and
NT-Xent are one graph, so switching branches never recompiles and the compiler fuses across
the branch boundary; the backward comes from the same graph. Compiling ``model`` alone would
give two graphs (one per branch, guarded on the branch flags) and leave NT-Xent eager. The
augmentation (it draws from a ``torch.Generator``) and the optimiser step stay eager; the
optimiser is the ``foreach`` SGD (one multi-tensor kernel per update op instead of one per
parameter, the same arithmetic). A run compiles at most once per batch shape (the last partial
batch of an epoch is a second shape) and once more when a scheduled temperature first changes
(then it is a graph input); ``tests/training/test_compile.py`` counts the compilations.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from sdclr import distributed
from sdclr.data.augment import BatchAugment
from sdclr.device import set_fp32_arithmetic
from sdclr.methods import Method


@dataclass(frozen=True)
class Runtime:
    """How the step runs on this device, resolved from ``PretrainConfig``'s ``auto`` values."""

    device: str
    precision: str  # "bf16" | "tf32" | "fp32"
    channels_last: bool
    compile: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def set_arithmetic(self) -> None:
        """Make CUDA's float32 arithmetic what ``precision`` says: IEEE for fp32 (the
        reference's), TF32 convs and matmuls for tf32, PyTorch's defaults for bf16 (TF32
        convs for what autocast leaves in float32; IEEE matmuls, so NT-Xent's similarities)."""
        tf32 = self.precision == "tf32"
        set_fp32_arithmetic(conv_tf32=tf32 or self.precision == "bf16", matmul_tf32=tf32)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the device, or nothing for fp32."""
        if self.precision == "bf16":
            return torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve_runtime(config: Any, device: torch.device | str, processes: int = 1) -> Runtime:
    """Resolve a ``PretrainConfig``'s ``auto`` values: bf16, channels-last and compiled on CUDA;
    fp32, contiguous and eager on CPU. A run of several processes compiles only when
    ``compile`` is ``true``: the cross-rank gather and synchronised statistics inside the
    forward are not yet measured compiled."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    precision = config.precision if config.precision != "auto" else ("bf16" if cuda else "fp32")
    channels_last = cuda if config.channels_last == "auto" else bool(config.channels_last)
    auto_compile = cuda and processes == 1
    compiled = auto_compile if config.compile == "auto" else bool(config.compile)
    return Runtime(str(device), precision, channels_last, compiled)


class TrainStep:
    """One SGD step of ``method`` on a uint8 batch: augment, forward, one backward, update.

    Both views come from one :class:`BatchAugment` call on ``cat([batch, batch])`` (per-sample
    parameters, so the two halves are independent views), already in the model's memory
    format. Nothing here reads a value back to the host: the returned loss is a detached
    device tensor.
    """

    def __init__(
        self,
        method: Method,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        augment: BatchAugment,
        runtime: Runtime,
    ) -> None:
        self.method = method
        self.model = model
        self.optimizer = optimizer
        self.augment = augment
        self.runtime = runtime
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        #: ``method.loss``, compiled when the runtime says so (see the module docstring).
        self.loss_fn = torch.compile(method.loss) if runtime.compile else method.loss
        self.parameters = list(model.parameters())

    def views(
        self, batch: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views of ``batch`` (uint8 [B, C, H, W] on the device; ``indices``:
        its samples' places in the pretraining set), with the method's own augmentation."""
        both = self.augment(torch.cat([batch, batch]), generator, self.runtime.memory_format)
        both = self.method.augment_views(both, torch.cat([indices, indices]), generator)
        view1, view2 = both.chunk(2)
        return view1, view2

    def loss(self, view1: torch.Tensor, view2: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The method's loss, under the runtime's autocast."""
        with self.runtime.autocast():
            return self.method.training_loss(self.model, view1, view2, indices, self.loss_fn)

    def __call__(
        self,
        batch: torch.Tensor,
        indices: torch.Tensor,
        generator: torch.Generator | None,
        lr: float,
    ) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = self.loss(*self.views(batch, indices, generator), indices)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.parameters)
        self.optimizer.step()
        return loss.detach()
