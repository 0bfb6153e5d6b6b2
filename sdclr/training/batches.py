"""How an epoch's shuffled order is cut into steps, and each step into the processes' shares.

As the reference's DataLoader (``drop_last=False``), an epoch keeps its last partial batch:
``n`` images at batch ``B`` are ``floor(n / B)`` full steps and, when ``n mod B > 0``, one more
of ``n mod B`` images (CIFAR-10-LT's 11,165 at batch 512: 21 of 512 and one of 413, 22 steps).
``drop_last=True`` drops it. A partial batch of fewer than 2 images per process is always
dropped: BatchNorm cannot normalise a batch of one and NT-Xent needs a negative.

With ``P > 1`` processes each step's global batch is split into ``P`` equal, contiguous shares
(rank ``r`` takes images ``[r * b / P, (r + 1) * b / P)`` of a step of ``b``). A partial batch
not divisible by ``P`` loses its last ``b mod P`` images (at most ``P - 1`` an epoch, e.g. 413 ->
412 on 2 or 4 GPUs, 408 on 8): the projections are gathered across ranks with ``all_gather``,
which needs the same shape on every rank, and equal shares keep the step free of host
syncs. They are the last places of a fresh random order, so no image is left out for good.
"""

from __future__ import annotations

from sdclr.errors import ConfigError


def step_sizes(num_images: int, batch_size: int, drop_last: bool, processes: int = 1) -> list[int]:
    """The global batch size of every step of one epoch (see the module docstring)."""
    full, rest = divmod(num_images, batch_size)
    sizes = [batch_size] * full
    rest -= rest % processes
    if rest and not drop_last and rest // processes >= 2:
        sizes.append(rest)
    return sizes


def rank_share(step_start: int, step_size: int, rank: int, processes: int) -> tuple[int, int]:
    """(start, stop) in the epoch's order of ``rank``'s share of the step that starts at
    ``step_start`` and holds ``step_size`` images (divisible by ``processes``)."""
    share = step_size // processes
    start = step_start + rank * share
    return start, start + share


def check_batch(dataset: str, pretrain_set: str, batch_size: int, n: int, processes: int) -> None:
    """A batch must fit the pretraining set and split evenly over the processes."""
    if batch_size > n:
        raise ConfigError(
            f"datasets.{dataset}.pretrain.batch_size: {batch_size} is larger than "
            f"the {n} pretraining images of {pretrain_set}; set it to at most {n}"
        )
    if batch_size % processes:
        raise ConfigError(
            f"pretrain.batch_size {batch_size} must be divisible by the {processes} processes"
        )
