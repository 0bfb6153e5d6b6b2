"""Device choice: CUDA when present, else CPU, with no edits to code or config."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """Return the device to train on.

    ``"auto"`` picks ``cuda`` when a GPU is visible, else ``cpu``. An explicit ``"cuda"``
    with no GPU present is an error rather than a silent fallback.
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no GPU is visible; use 'auto' or 'cpu'")
    return device
