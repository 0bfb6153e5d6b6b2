"""Which training images a run pretrains on: its split subset (``D_i`` or ``D_b``), or, for a
removal run, the D_i images its removal record keeps (``sdclr.methods.difficult_removal`` writes the
record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdclr.errors import InputError
from sdclr.io import read_json


def pretraining_indices(
    split: dict[str, Any], method: Any, removal: str | Path | None
) -> list[int]:
    """The training-set indices a run of ``method`` (a ``MethodSpec``: ``name``,
    ``pretrain_set``, ``remove_difficult``) pretrains on: its subset, or what its removal
    record keeps."""
    if method.remove_difficult is None:
        if removal is not None:
            raise InputError(f"method {method.name!r} removes no examples; drop --removal")
        return split["indices"][method.pretrain_set]
    if removal is None:
        raise InputError(
            f"method {method.name!r} removes difficult examples: pass its removal record "
            "(--removal, written by the select_difficult rule)"
        )
    return kept_indices(removal, split, method.name)


def kept_indices(record_path: str | Path, split: dict[str, Any], method: str) -> list[int]:
    """The D_i indices a removal run pretrains on, from its removal record (checked against
    the split: they must be D_i's minus the removed ones)."""
    record = read_json(record_path)
    fix = f"delete {record_path} and re-run select_difficult"
    if not isinstance(record, dict) or "kept_indices" not in record:
        raise InputError(f"{record_path} is not a removal record; {fix}")
    if record.get("method") != method or record.get("split") != split["split"]:
        raise InputError(f"{record_path} is the record of another run or split; {fix}")
    kept, removed = record["kept_indices"], record["removed_indices"]
    if sorted(kept + removed) != sorted(split["indices"]["D_i"]):
        raise InputError(f"{record_path}: its indices are not this split's D_i; {fix}")
    return list(kept)
