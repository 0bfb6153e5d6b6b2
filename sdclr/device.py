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


def set_fp32_arithmetic(conv_tf32: bool, matmul_tf32: bool) -> None:
    """How CUDA computes float32 convolutions and matmuls: TF32 tensor cores (inputs rounded
    to a 10-bit mantissa, on Ampere and later GPUs) or IEEE float32. A process-wide switch of
    PyTorch, which by default uses TF32 for cuDNN convolutions and IEEE for matmuls; CPUs
    always compute IEEE float32."""
    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):  # torch >= 2.9
        cudnn.conv.fp32_precision = "tf32" if conv_tf32 else "ieee"
        torch.backends.cuda.matmul.fp32_precision = "tf32" if matmul_tf32 else "ieee"
    else:
        cudnn.allow_tf32 = conv_tf32
        torch.backends.cuda.matmul.allow_tf32 = matmul_tf32


def describe_device(device: torch.device | str) -> str:
    """``cpu``, or ``cuda (<GPU name>)``: the device an output records (its provenance)."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def float32_arithmetic(device: torch.device | str) -> str:
    """How float32 convolutions and matmuls compute on ``device`` now: ``fp32`` (IEEE) or
    ``tf32`` (convolutions or matmuls on TF32 tensor cores); CPUs always compute IEEE."""
    if torch.device(device).type != "cuda":
        return "fp32"
    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        tf32 = "tf32" in (cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    else:
        tf32 = cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
    return "tf32" if tf32 else "fp32"
