"""What the linear probes read: a probe pool gathered batch by batch, each epoch's augmented
views, and validation top-k accuracy."""

from __future__ import annotations

import numpy as np
import torch

from sdclr.data.augment import random_crop_flip, random_resized_crop_flip
from sdclr.probes.features import center_crop


class ImageRows:
    """Rows ``rows`` of a uint8 image tensor, gathered when a batch is asked for (the full
    ImageNet-100 train pool at 256 px is about 25 GB: it is never copied as a whole).

    Indexing with a tensor of positions or a slice returns those images (centre-cropped to
    ``crop`` when given); ``shape`` and ``device`` are those of the selection.
    """

    def __init__(self, images: torch.Tensor, rows: torch.Tensor, crop: int | None = None):
        self.images, self.rows, self.crop = images, rows.to(images.device), crop

    @property
    def shape(self) -> torch.Size:
        c, h, w = self.images.shape[1:]
        size = (self.crop, self.crop) if self.crop else (h, w)
        return torch.Size([len(self.rows), c, *size])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        batch = self.images[self.rows[index]]
        return center_crop(batch, self.crop) if self.crop else batch


def train_views(
    images: torch.Tensor,
    crop: str,
    padding: int,
    size: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """One batch of probe train views on ``device``: ``pad`` = RandomCrop(padding) + flip of
    the (centre-cropped) images, computed where they live; ``resized`` = RandomResizedCrop(size,
    scale) + flip of the stored images, computed on ``device`` (the reference's ImageNet
    probe). Random parameters come from ``generator`` (CPU)."""
    if crop == "resized":
        return random_resized_crop_flip(images, size, scale, generator, device)
    return random_crop_flip(images, padding, generator).to(device)


def per_class_topk_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int
) -> np.ndarray:
    """Per-class top-``k`` accuracy (%): the share of each class's images whose label is among
    their ``k`` highest logits (NaN for a class absent from ``labels``). Its mean over classes
    equals plain top-``k`` accuracy on a class-balanced set (ImageNet-100-LT's validation)."""
    k = min(k, logits.shape[1])
    hit = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).cpu()
    labels = labels.cpu()
    correct = torch.bincount(labels[hit], minlength=num_classes).double()
    total = torch.bincount(labels, minlength=num_classes).double()
    return torch.where(total > 0, 100.0 * correct / total.clamp(min=1), float("nan")).numpy()
