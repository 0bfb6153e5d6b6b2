"""The SimCLR projection head."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def projection_head(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    hidden_layers: int = 1,
    norm: Callable[[int], nn.Module] = nn.BatchNorm1d,
) -> nn.Sequential:
    """``hidden_layers`` x [Linear(hidden) + BN + ReLU], then Linear(out, no bias) + BN.

    With ``hidden_layers = 1`` and 512-d features this is PROTOCOL.md's SimCLR head
    Linear(512, 512) + BN + ReLU + Linear(512, 128, no bias) + BN; the reference's SDCLR head
    has ``hidden_layers = 2``.
    """
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(dim, hidden_dim), norm(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers += [nn.Linear(dim, out_dim, bias=False), norm(out_dim)]
    return nn.Sequential(*layers)
