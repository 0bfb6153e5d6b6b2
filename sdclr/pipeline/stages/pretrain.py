"""Stage pretrain: one method on one split and seed, resumable (``sdclr.training.loop``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from sdclr.data.ood_pool import run_pool
from sdclr.data.pretraining_set import pretraining_indices
from sdclr.io import remove_stale_temporaries
from sdclr.methods.colt import COLT
from sdclr.pipeline.stages.common import job_inputs
from sdclr.settings import load
from sdclr.signals import Terminated, exit_on_sigterm
from sdclr.training.config import PretrainJob
from sdclr.training.loop import pretrain
from sdclr.training.runlock import run_directory_lock

log = logging.getLogger(__name__)


def pretrain_stage(
    data: str | Path,
    split_path: str | Path,
    settings: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    threads: int | None = None,
    progress: bool = True,
    removal: str | Path | None = None,
    pool_file: str | Path | None = None,
) -> dict[str, Any]:
    """Pretrain on the split's ``D_i`` (or ``D_b``) images; resumes from ``out_dir/resume.pt``.
    A removal run (``remove_difficult``) pretrains on the D_i images its removal record
    ``removal`` keeps (``sdclr.methods.difficult_removal``). A COLT run with a pool file reads
    the pool ``prepare_pool`` wrote (``pool_file``); one with ``outside_pretraining_set``
    derives its pool from this split's D_i here (``sdclr.data.ood_pool``).

    The job holds ``out_dir/run.lock`` while it runs (``sdclr.training.runlock``): a second job on
    the
    same run directory (an orphan of a killed Snakemake and its rerun, say) stops at once with
    a message naming the holder. SIGTERM (what SLURM sends before SIGKILL on preemption,
    ``scancel`` or the time limit) and SIGINT (Ctrl-C) stop the run cleanly with exit status
    143 / 130: a checkpoint being written is finished first, and the last complete one is kept
    for the next attempt to resume from.
    """
    with exit_on_sigterm(), _main_process_lock(out_dir):
        try:
            remove_stale_temporaries(out_dir)  # under the lock: no other job writes here
            job = PretrainJob.from_settings(settings)  # typed here, at the stage's door
            dataset, split, device = job_inputs(data, split_path, settings, threads)
            indices = torch.as_tensor(pretraining_indices(split, job.method, removal))
            images = dataset.train_images[indices]
            colt = job.method.extensions.get(COLT.name)
            pool = None
            if colt is not None:  # COLT's out-of-distribution pool
                spec = load(COLT.Settings, colt, COLT.name).pool
                pool = run_pool(spec, pool_file, dataset.train_images, indices)
            labels = dataset.train_labels[indices]
            return pretrain(
                job, images, out_dir, seed, device, progress,
                sample_ids=indices, pool=pool, labels=labels,
            )  # fmt: skip
        except Terminated as stop:
            log.warning(
                "%s received: stopped; a rerun resumes from the last checkpoint in %s",
                stop.signame,
                out_dir,
            )
            raise


@contextmanager
def _main_process_lock(out_dir: str | Path) -> Iterator[None]:
    """The run directory's lock, taken by the main process only (rank 0 under torchrun)."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    with run_directory_lock(out_dir):
        yield
