"""A pretrained model's feature file: the un-augmented dense backbone features of the test set
and of the split's balanced train pool, extracted once (stage ``features``) and read by every
probe and analysis of the model instead of each computing them again.

The file (``sdclr.pipeline.paths.FEATURES``) is a torch file of tensors read with
``weights_only=True`` (``sdclr.torch_files``): ``test`` and ``pool`` (float32 on the CPU, the
exact values :func:`~sdclr.probes.features.extract_features` returns, so a probe reading them
computes what it would compute from the network), the ``crop_size`` of the centre crop, the
``pool_indices`` of the train images and a ``format`` number. A reader checks that the crop
and the pool are its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sdclr.errors import InputError
from sdclr.probes.base import POOL, ProbeInputs
from sdclr.torch_files import torch_load, torch_save

FORMAT = 1


def pool_indices(split: dict[str, Any]) -> torch.Tensor:
    """The train images of the probe pool (split subset :data:`POOL`)."""
    return torch.as_tensor(split["indices"][POOL], dtype=torch.long)


def model_features(inputs: ProbeInputs) -> dict[str, Any]:
    """The feature file's content for the model and data of ``inputs`` (no stored features):
    the test set's and the pool's features, computed as a probe computes them."""
    if inputs.features is not None:
        raise ValueError("model_features computes features; these inputs already hold some")
    return {
        "format": FORMAT,
        "crop_size": inputs.crop_size,
        "pool_indices": pool_indices(inputs.split),
        "test": inputs.test_features().cpu(),
        "pool": inputs.subset_features(POOL).cpu(),
    }


def write_features(path: str | Path, inputs: ProbeInputs) -> dict[str, Any]:
    """Compute and write the feature file of ``inputs``' model; return its content."""
    content = model_features(inputs)
    torch_save(path, content)
    return content


def read_features(path: str | Path, split: dict[str, Any], crop_size: int) -> dict[str, Any]:
    """A feature file's ``test`` and ``pool`` features (on the CPU), checked against the
    reader's split pool and crop size."""
    content = torch_load(path, "feature file")
    redo = "delete it and re-run its features job"
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise InputError(f"feature file {path} is not of format {FORMAT}; {redo}")
    if content["crop_size"] != crop_size:
        raise InputError(
            f"feature file {path} holds {content['crop_size']} px crops, the job reads "
            f"{crop_size} px ones; {redo}"
        )
    if not torch.equal(content["pool_indices"], pool_indices(split)):
        raise InputError(f"feature file {path} holds another split's probe pool; {redo}")
    return {"test": content["test"], "pool": content["pool"]}
