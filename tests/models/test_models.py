"""ResNets, prunable convs, global magnitude pruning, dual BatchNorm."""

import math

import pytest
import torch
from torch import nn

from sdclr.models import ModelConfig, branch, build_model, global_magnitude_prune, masked_convs
from sdclr.models.dual_bn import DualBatchNorm
from sdclr.models.prunable import MaskedConv2d


def test_resnet18_cifar_matches_the_paper_architecture():
    """ResNet-18 with the CIFAR stem: 512-d features, 3x3 stride-1 stem, no max-pool, and the
    same trunk parameter count as torchvision's resnet18 minus its 7x7 stem and fc."""
    model = build_model(ModelConfig(), in_channels=3)
    assert model.feature_dim == 512
    stem_conv = model.backbone.stem[0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.backbone.modules())
    trunk = sum(p.numel() for p in model.backbone.parameters())
    # torchvision resnet18 = 11,689,512 incl. 7x7x3x64 stem and a 512x1000+1000 fc
    assert trunk == 11_689_512 - 7 * 7 * 3 * 64 + 3 * 3 * 3 * 64 - (512 * 1000 + 1000)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 128)


def test_resnet50_imagenet_stem_and_width():
    """ResNet-50 gives 2048-d features; the width multiplier scales every stage."""
    assert build_model(ModelConfig(arch="resnet50", stem="imagenet"), 3).feature_dim == 2048
    narrow = build_model(ModelConfig(width=0.125), in_channels=1)
    assert narrow.feature_dim == 64
    assert narrow.backbone(torch.rand(2, 1, 28, 28)).shape == (2, 64)


def test_projection_head_layout():
    """SimCLR head: Linear+BN+ReLU+Linear(no bias)+BN; the SDCLR head has one more hidden block."""
    simclr = build_model(ModelConfig(), 3, head_hidden_layers=1).head
    assert [type(m).__name__ for m in simclr] == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert simclr[3].bias is None and simclr[3].out_features == 128
    sdclr = build_model(ModelConfig(), 3, head_hidden_layers=2).head
    assert sum(isinstance(m, nn.Linear) for m in sdclr) == 3


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.9, 0.123])
def test_pruning_masks_exactly_ceil_p_n_conv_weights(ratio):
    """Global magnitude pruning masks exactly ceil(p * N) of all conv weights (stem and shortcut
    convs included), the smallest by magnitude, and nothing outside convs."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.25), 3, dual_bn=True)
    convs = masked_convs(model)
    total = sum(c.weight.numel() for c in convs)
    masked = global_magnitude_prune(model, ratio)
    zeros = sum(int((c.weight_mask == 0).sum()) for c in convs)
    assert masked == zeros == math.ceil(ratio * total)
    assert model.backbone.stem[0] in convs
    assert any(
        isinstance(m.shortcut[0], MaskedConv2d)
        for m in model.backbone.modules()
        if hasattr(m, "shortcut") and len(m.shortcut)
    )
    if zeros:
        kept = torch.cat([c.weight.abs()[c.weight_mask == 1] for c in convs])
        dropped = torch.cat([c.weight.abs()[c.weight_mask == 0] for c in convs])
        assert dropped.max() <= kept.min()
    buffers = [n for n, _ in model.named_buffers() if n.endswith("weight_mask")]
    assert len(buffers) == len(convs)  # masks live on convs only: BN, head are never pruned


def test_pruned_branch_uses_masked_weights_and_dense_branch_does_not():
    """Inside branch(model, pruned=True) convs use weight * mask; outside, the dense weights."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125), 3, dual_bn=True).eval()
    x = torch.rand(2, 3, 16, 16)
    dense = model(x)
    global_magnitude_prune(model, 0.9)
    assert torch.allclose(model(x), dense)
    with branch(model, pruned=True):
        pruned = model(x)
    assert not torch.allclose(pruned, dense)
    assert torch.allclose(model(x), dense)  # back to dense after the block


def test_dual_bn_keeps_separate_statistics():
    """Dense and pruned branches update only their own BatchNorm running statistics."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=0.125), 3, dual_bn=True).train()
    bn = model.backbone.stem[1]
    assert isinstance(bn, DualBatchNorm)
    model(torch.rand(4, 3, 16, 16))
    dense_mean = bn.bns[0].running_mean.clone()
    assert torch.equal(bn.bns[1].running_mean, torch.zeros_like(dense_mean))
    with branch(model, pruned=True):
        model(torch.rand(4, 3, 16, 16) + 5.0)
    assert torch.equal(bn.bns[0].running_mean, dense_mean)
    assert bn.bns[1].running_mean.mean() > dense_mean.mean()
