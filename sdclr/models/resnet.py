"""ResNet-18 / ResNet-50 encoders with a CIFAR or ImageNet stem and a width multiplier.

The CIFAR stem is a 3x3 stride-1 conv with no max-pool (PROTOCOL.md); the ImageNet stem is
the usual 7x7 stride-2 conv and 3x3 max-pool. Every conv is a ``MaskedConv2d`` so SDCLR can
prune it; ``norm_layer`` builds every BatchNorm (plain or dual).

Input normalisation, as the reference's ResNets do it: with ``input_normalization="imagenet"``
the first op of ``forward`` is ``x <- (x - mean) / std`` per channel, x in [0, 1], with the
ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); so pretraining and every
probe see the same normalised input. A 1-channel input (Fashion-MNIST) has no ImageNet
statistics of its own; it uses the means of the three, mean 0.449 and std 0.226 (the usual
grey-level reading of those numbers). ``"none"`` feeds [0, 1] pixels to the first conv.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sdclr.models.prunable import MaskedConv2d

NormFactory = Callable[[int], nn.Module]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalization_statistics(kind: str, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) of input normalisation ``kind`` for ``channels`` channels."""
    if kind == "none":
        return [0.0] * channels, [1.0] * channels
    if kind != "imagenet":
        raise ValueError(f"unknown input normalisation {kind!r}; use 'imagenet' or 'none'")
    if channels == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    if channels == 1:
        return [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]
    raise ValueError(f"ImageNet input normalisation needs 1 or 3 channels, not {channels}")


def conv3x3(cin: int, cout: int, stride: int = 1) -> MaskedConv2d:
    return MaskedConv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> MaskedConv2d:
    return MaskedConv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, planes, stride), norm(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), norm(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(conv1x1(cin, planes, stride), norm(planes))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, norm: NormFactory) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1, self.bn1 = conv1x1(cin, planes), norm(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), norm(planes)
        self.conv3, self.bn3 = conv1x1(planes, cout), norm(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv1x1(cin, cout, stride), norm(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


ARCHITECTURES: dict[str, tuple[type[nn.Module], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


class ResNet(nn.Module):
    """A ResNet trunk ending in global average pooling: ``forward(x) -> [N, feature_dim]``."""

    def __init__(
        self,
        arch: str = "resnet18",
        stem: str = "cifar",
        width: float = 1.0,
        in_channels: int = 3,
        norm: NormFactory = nn.BatchNorm2d,
        input_normalization: str = "none",
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
        self.input_normalization = input_normalization
        mean, std = normalization_statistics(input_normalization, in_channels)
        # Not persistent: constants of the config, so state dicts stay as they were.
        self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1), False)
        self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1), False)
        block, layers = ARCHITECTURES[arch]
        base = max(1, round(64 * width))
        if stem == "cifar":
            self.stem = nn.Sequential(
                MaskedConv2d(in_channels, base, 3, stride=1, padding=1, bias=False),
                norm(base),
                nn.ReLU(inplace=True),
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                MaskedConv2d(in_channels, base, 7, stride=2, padding=3, bias=False),
                norm(base),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            raise ValueError(f"unknown stem {stem!r}; use 'cifar' or 'imagenet'")
        stages, cin = [], base
        for i, num_blocks in enumerate(layers):
            planes = base * 2**i
            blocks = []
            for j in range(num_blocks):
                blocks.append(block(cin, planes, 2 if (i > 0 and j == 0) else 1, norm))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_normalization != "none":
            x = (x - self.input_mean) / self.input_std
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)
