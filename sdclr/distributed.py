"""Multi-GPU pretraining in one job: one process per GPU, launched by torchrun.

Design (no DDP wrapper, so SDCLR's two forwards per step need no special care):

* every rank holds the split's images and draws the same batch order; rank ``r`` trains on
  the ``r``-th of equal slices of each global batch, with its own augmentation generator
  (``sdclr/training/batches.py``: a last partial batch not divisible by the world size loses its
  remainder, at most ``size - 1`` images, since ``all_gather`` needs equal shapes);
* NT-Xent gathers the projections of all ranks (``all_gather`` that carries gradients), so each
  rank computes the loss of the whole global batch, as one process would;
* after the backward pass the gradients are summed over ranks and divided by the world size:
  since the gather's backward already sums each rank's share, this is exactly the gradient of
  the global-batch loss, and the weights stay identical on every rank (so are SDCLR's masks);
* BatchNorm is synchronised (``sdclr/models/sync_bn.py``, ``pretrain.sync_batchnorm``): its
  batch statistics, and their gradient, cover the global batch, as the reference's DDP runs
  convert every BatchNorm to SyncBatchNorm; dual BN keeps its dense and pruned statistics
  apart. (Per-rank statistics, ``sync_batchnorm: false``, would let each rank's positive
  pairs share the batch statistics of a smaller batch, the known BN shortcut);
* rank 0 alone writes checkpoints, logs and the final model.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_gather


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> World:
    """Join the process group torchrun describes in the environment (a single process when
    ``WORLD_SIZE`` is absent or 1): NCCL with GPUs, gloo on CPUs."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group(backend)
        # Leave the group before the interpreter exits: a gloo group torn down by the C++
        # destructors at exit can abort ("terminate called without an active exception").
        atexit.register(_leave)
    return world


def _leave() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank, in rank order, keeping the gradient path."""
    if not active():
        return tensor
    return torch.cat(all_gather(tensor))


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Sum every gradient over the ranks and divide by their number (one flat all-reduce)."""
    if not active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier() -> None:
    if active():
        dist.barrier()


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (a list of one element outside a process group)."""
    if not active():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def relaunch_with_torchrun(processes: int) -> None:
    """Replace this process by ``torchrun --standalone --nproc_per_node processes`` running the
    same script and arguments, unless it already runs under torchrun or needs one process."""
    if processes <= 1 or "LOCAL_RANK" in os.environ:
        return
    if torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise SystemExit(
            f"pretrain.gpus is {processes} but this job sees {torch.cuda.device_count()} GPU(s); "
            f"on SLURM ask for {processes} (resources.pretrain.gpus in the experiment config, "
            "config/README.md) or lower pretrain.gpus"
        )
    args = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        *sys.argv,
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, args)
