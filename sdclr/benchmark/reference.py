"""The reference implementation's structure, timed: per-image torchvision PIL transforms in a
``DataLoader`` with worker processes, fp32, NT-Xent through ``exp`` / ``masked_select`` with
the loss read back every step, and for SDCLR the pruned branch run twice per step and the
per-epoch mask from a numpy sort on the CPU (``sdclr.benchmark``'s docstring has the whole)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from sdclr.benchmark.config import REFERENCE_METHODS, BenchConfig, build
from sdclr.benchmark.timing import complete, reset_peak, sync, synthetic_images, timed
from sdclr.device import set_fp32_arithmetic
from sdclr.models import masked_convs, set_branch


def pil_transform(size: int) -> T.Compose:
    """The reference's per-image torchvision pipeline (PIL in, float tensor out)."""
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=(0.1, 1.0), interpolation=InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
        ]
    )


class PILPairs(torch.utils.data.Dataset):
    """Two independently transformed PIL views of each image (the reference's dataset)."""

    def __init__(self, images_hwc: np.ndarray, size: int) -> None:
        self.images = images_hwc
        self.transform = pil_transform(size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = Image.fromarray(self.images[index])
        return self.transform(image), self.transform(image)


def reference_nt_xent(x1: torch.Tensor, x2: torch.Tensor, t: float) -> torch.Tensor:
    """NT-Xent as the reference computes it: ``exp`` of the similarity matrix, the diagonal
    removed with ``masked_select`` (a data-dependent shape: it waits for the device)."""
    x1, x2 = F.normalize(x1, dim=1), F.normalize(x2, dim=1)
    batch = x1.size(0)
    out = torch.cat([x1, x2], dim=0)
    sim = torch.exp(torch.mm(out, out.t().contiguous()) / t)
    mask = (torch.ones_like(sim) - torch.eye(2 * batch, device=sim.device)).bool()
    sim = sim.masked_select(mask).view(2 * batch, -1)
    pos = torch.exp(torch.sum(x1 * x2, dim=-1) / t)
    pos = torch.cat([pos, pos], dim=0)
    return (-torch.log(pos / sim.sum(dim=-1))).mean()


@torch.no_grad()
def numpy_prune(model: nn.Module, ratio: float) -> int:
    """The reference's per-epoch mask: every conv weight copied to the CPU, ``|w|`` sorted with
    numpy, the ``ceil(ratio * N)``-th smallest as the threshold, masks ``|w| > threshold``
    copied back to the device. Returns the number masked."""
    convs = masked_convs(model)
    weights = [conv.weight.detach().cpu().numpy() for conv in convs]
    magnitudes = np.concatenate([np.abs(w).ravel() for w in weights])
    k = math.ceil(ratio * magnitudes.size - 1e-9)
    if k == 0:
        for conv in convs:
            conv.weight_mask.fill_(1.0)
        return 0
    threshold = np.sort(magnitudes)[k - 1]
    masked = 0
    for conv, w in zip(convs, weights, strict=True):
        keep = (np.abs(w) > threshold).astype(np.float32)
        masked += int(keep.size - keep.sum())
        conv.weight_mask.copy_(torch.from_numpy(keep))
    return masked


def _reference_step(
    method_name: str, model: nn.Module, optimizer: torch.optim.Optimizer, t: float
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    def simclr(v1: torch.Tensor, v2: torch.Tensor) -> float:
        features = model(torch.cat([v1, v2]))
        f1, f2 = features.chunk(2)
        loss = reference_nt_xent(f1, f2, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.item())  # the reference's running average reads it every step

    def sdclr(v1: torch.Tensor, v2: torch.Tensor) -> float:
        # Pruned branch without gradient, for the dense branch's loss.
        with torch.no_grad():
            set_branch(model, pruned=True)
            f2_no_grad = model(v2).detach()
        set_branch(model, pruned=False)
        f1 = model(v1)
        loss = reference_nt_xent(f1, f2_no_grad, t)
        optimizer.zero_grad()
        loss.backward()
        # The pruned branch again, now with gradient, against the detached dense features.
        set_branch(model, pruned=True)
        f2 = model(v2)
        loss = reference_nt_xent(f1.detach(), f2, t)
        loss.backward()
        set_branch(model, pruned=False)
        optimizer.step()
        return float(loss.item())

    return sdclr if method_name == "sdclr" else simclr


def bench_reference(cfg: BenchConfig, method_name: str, device: torch.device) -> dict[str, Any]:
    """Steady-state steps of the reference-style pipeline (see the module docstring) of
    SimCLR or SDCLR, the reference code it reproduces."""
    if method_name not in REFERENCE_METHODS:
        raise ValueError(
            f"the reference-style pipeline reproduces {', '.join(REFERENCE_METHODS)} only, "
            f"not {method_name!r}"
        )
    set_fp32_arithmetic(conv_tf32=True, matmul_tf32=False)  # PyTorch's defaults, as it runs
    method, model, optimizer = build(cfg, method_name, device)
    images = synthetic_images(cfg.dataset_size, cfg.image_size, cfg.seed)
    dataset = PILPairs(images.permute(0, 2, 3, 1).contiguous().numpy(), cfg.image_size)
    total = cfg.warmup + cfg.steps
    sampler = torch.utils.data.RandomSampler(
        dataset,
        num_samples=cfg.batch_size * total,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    step = _reference_step(method_name, model, optimizer, cfg.temperature)
    reset_peak(device)
    mask_seconds = 0.0
    if method_name == "sdclr":
        numpy_prune(model, cfg.prune_ratio)
        mask_seconds = timed(lambda: numpy_prune(model, cfg.prune_ratio), cfg.mask_repeats, device)
    batches = iter(loader)
    started = 0.0
    for i in range(total):
        if i == cfg.warmup:
            sync(device)
            started = time.perf_counter()
        v1, v2 = next(batches)
        step(v1.to(device, non_blocking=True), v2.to(device, non_blocking=True))
    sync(device)
    step_seconds = (time.perf_counter() - started) / cfg.steps
    del batches, loader
    result: dict[str, Any] = {
        "step_seconds": step_seconds,
        "views_per_second": 2 * cfg.batch_size / step_seconds,
        "precision": "fp32",
        "workers": cfg.num_workers,
    }
    return complete(result, cfg, method_name, step_seconds, mask_seconds, device)
