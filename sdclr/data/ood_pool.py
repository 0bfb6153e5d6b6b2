"""COLT's out-of-distribution pool (``sdclr.methods.colt``): the images a run may add to its
pretraining set.

* A ``.npy`` file of ``N x H x W x C`` uint8 images, ``H x W x C`` the dataset's (on CIFAR the
  300K Random Images of Hendrycks et al., ``300K_random_images.npy``, as COLT's code loads
  it); a wrong shape or dtype is a one-line error naming the file.
* Prepared by the pipeline's ``prepare_pool`` stage (:func:`save_pool`): the checked images
  as ``results/data/<dataset>/pool/<name>.pt``, a torch file (read with ``weights_only``)
  that the COLT runs naming the file take as an input (:func:`load_prepared_pool`).
* ``outside_pretraining_set``: the dataset's training images outside the run's pretraining
  set (for the Fashion-MNIST demo, which has no external pool: the training images not in
  D_i, the in-domain open-world setting of MAK, Jiang et al., ICML 2021). They are
  in-distribution classes, so this pool tests the mechanics, not COLT's OOD claim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sdclr.errors import InputError
from sdclr.torch_files import torch_load, torch_save

OUTSIDE = "outside_pretraining_set"
_FORMAT = "sdclr-ood-pool"


def _pool_array(path: Path) -> np.ndarray:
    """The ``.npy`` array of ``path``, memory-mapped (nothing is read yet, no pickle is
    loaded); a missing or unreadable file is a one-line error naming it."""
    if not path.exists():
        raise InputError(f"{path}: the OOD pool file does not exist; put it there or fix colt.pool")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"{path}: COLT's OOD pool is not a readable .npy array ({first}); replace the file"
        ) from None


def pool_file_length(path: str | Path) -> int:
    """How many images the pool file ``path`` holds, read from its header."""
    return int(_pool_array(Path(path)).shape[0])


def read_pool_file(path: str | Path, channels: int, size: int) -> torch.Tensor:
    """The pool of ``path`` as uint8 ``[N, C, H, W]``, checked against the dataset's
    geometry (``channels`` x ``size`` x ``size``)."""
    path = Path(path)
    array = _pool_array(path)
    expected = (size, size, channels)
    if array.ndim != 4 or tuple(array.shape[1:]) != expected or array.dtype != np.uint8:
        raise InputError(
            f"{path}: an OOD pool must be N x {size} x {size} x {channels} uint8, "
            f"got {'x'.join(map(str, array.shape))} {array.dtype}"
        )
    return torch.from_numpy(np.array(array)).permute(0, 3, 1, 2).contiguous()


def load_pool(spec: str, train_images: torch.Tensor, pretraining: torch.Tensor) -> torch.Tensor:
    """The pool ``spec`` names (a ``.npy`` path or ``outside_pretraining_set``) for a run on
    ``train_images[pretraining]`` (uint8 ``[N, C, H, W]``)."""
    if spec != OUTSIDE:
        return read_pool_file(spec, train_images.shape[1], train_images.shape[2])
    outside = torch.ones(train_images.shape[0], dtype=torch.bool)
    outside[pretraining] = False
    return train_images[outside]


def save_pool(images: torch.Tensor, source: str | Path, path: str | Path) -> None:
    """Write a checked pool (uint8 ``[N, C, H, W]``) and the file it came from to ``path``."""
    torch_save(path, {"format": _FORMAT, "source": str(source), "images": images.contiguous()})


def load_prepared_pool(path: str | Path) -> torch.Tensor:
    """The images of a pool file written by :func:`save_pool` (uint8 ``[N, C, H, W]``)."""
    obj = torch_load(path, what="prepared OOD pool")
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise InputError(f"{path} is not a prepared OOD pool; delete it and rerun prepare_pool")
    return obj["images"]


def run_pool(
    spec: str, prepared: str | Path | None, train_images: torch.Tensor, pretraining: torch.Tensor
) -> torch.Tensor:
    """A COLT run's pool: the prepared file of its pool file (``prepared``), or, for
    ``outside_pretraining_set``, the training images outside its pretraining set; a pool
    file named without a prepared one (a job run by hand) is read and checked here."""
    if prepared is not None:
        return load_prepared_pool(prepared)
    return load_pool(spec, train_images, pretraining)
