"""A run's checkpoint (``resume.pt``): written atomically every ``checkpoint_every`` epochs,
resumed by a restarted job only when it was written under the same settings file -- every
setting and the hash of every source file the job runs -- and seed; otherwise kept aside and
the run starts over, with one line saying what changed."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from sdclr import distributed
from sdclr.torch_files import torch_load, torch_save
from sdclr.training.run_files import set_aside
from sdclr.training.state import Training

log = logging.getLogger(__name__)


def plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state with every tensor in the default (contiguous) layout, whatever the
    training memory format, so saved files look the same from every runtime."""
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def resume(run: Training, checkpoint_path: Path) -> None:
    """Continue from ``checkpoint_path`` when it holds this run's settings and seed; a
    checkpoint of other settings is kept, renamed, and the run starts afresh."""
    state = torch_load(checkpoint_path, "checkpoint") if checkpoint_path.exists() else None
    if state is None:
        return
    if state.get("settings") != run.settings or state.get("seed") != run.seed:
        kept = set_aside(checkpoint_path)
        changed = settings_differences(state.get("settings"), run.settings)
        if state.get("seed") != run.seed:
            changed.append(f"seed {state.get('seed')} -> {run.seed}")
        log.warning(
            "%s was written under other settings or code (%s): starting afresh, not mixing "
            "the two; kept it as %s",
            checkpoint_path,
            "; ".join(changed[:6]) + (f"; {len(changed) - 6} more" if len(changed) > 6 else ""),
            kept,
        )
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    device = run.generator.get_state().device
    run.generator.set_state(state["generator"].to(device))
    if run.world.size > 1:
        saved = state.get("augment_generators") or []
        if len(saved) != run.world.size:
            raise ValueError(
                f"checkpoint {checkpoint_path} was written by {len(saved) or 1} processes, "
                f"this run has {run.world.size}; resume with pretrain.gpus unchanged"
            )
        run.augment_generator.set_state(saved[run.world.rank].to(device))
    run.method.load_state_dict(state.get("method_state") or {})
    run.history = state["history"]
    run.start_epoch = state["epoch"]
    log.info("resumed from %s at epoch %d/%d", checkpoint_path, run.start_epoch, run.config.epochs)
    saved_runtime = state.get("runtime")
    if saved_runtime is not None and saved_runtime != asdict(run.runtime):
        log.warning(
            "the checkpoint's epochs ran as %s, the rest runs as %s", saved_runtime, run.runtime
        )


def settings_differences(old: Any, new: Any, where: str = "") -> list[str]:
    """What differs between two settings (dotted keys; a source file by its path)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            name = f"{where}.{key}" if where else str(key)
            if where == "code":
                name = f"code of {key}"
            if old.get(key) != new.get(key):
                if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                    found.extend(settings_differences(old[key], new[key], name))
                elif key not in old or key not in new:
                    found.append(f"{name} {'added' if key not in old else 'removed'}")
                elif where == "code":
                    found.append(f"{name} changed")
                else:
                    found.append(f"{name} {old[key]!r} -> {new[key]!r}")
        return found
    return [] if old == new else [f"{where or 'settings'} differ"]


def save_checkpoint(run: Training, path: Path, epoch: int) -> None:
    """Write the resumable state after ``epoch`` finished epochs (rank 0 writes)."""
    augment_states = distributed.all_gather_objects(run.augment_generator.get_state().cpu())
    if run.world.is_main:
        torch_save(
            path,
            {
                "epoch": epoch,
                "model": plain_state_dict(run.model),
                "optimizer": run.optimizer.state_dict(),
                "generator": run.generator.get_state(),
                "augment_generators": augment_states if run.world.size > 1 else None,
                "method_state": run.method.state_dict(),
                "history": run.history,
                "settings": run.settings,
                "seed": run.seed,
                "runtime": asdict(run.runtime),
            },
        )
    distributed.barrier()
