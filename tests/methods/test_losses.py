"""NT-Xent against a direct evaluation of its formula."""

import math

import pytest
import torch

from sdclr.methods import nt_xent


def nt_xent_by_the_formula(z1, z2, t):
    """Loop over the 2N views: -log(exp(s_ip / t) / sum_{j != i} exp(s_ij / t)), averaged."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = z.shape[0]
    total = 0.0
    for i in range(n2):
        partner = (i + n2 // 2) % n2
        sims = [float(z[i] @ z[j]) / t for j in range(n2)]
        denominator = sum(math.exp(sims[j]) for j in range(n2) if j != i)
        total += -math.log(math.exp(sims[partner]) / denominator)
    return total / n2


@pytest.mark.parametrize("temperature", [0.1, 0.2, 0.5])
def test_nt_xent_matches_the_formula(temperature):
    """The cross-entropy implementation equals PROTOCOL.md's NT-Xent on random projections."""
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    assert float(nt_xent(z1, z2, temperature)) == pytest.approx(
        nt_xent_by_the_formula(z1, z2, temperature), rel=1e-5
    )


def test_nt_xent_is_low_for_matching_views_and_scale_invariant():
    """Identical, well-separated views give a lower loss than random pairs; feature scale does
    not matter because features are L2-normalised."""
    torch.manual_seed(1)
    z = torch.randn(8, 16)
    assert float(nt_xent(z, z, 0.2)) < float(nt_xent(z, torch.randn(8, 16), 0.2))
    assert float(nt_xent(3 * z, z, 0.2)) == pytest.approx(float(nt_xent(z, z, 0.2)), rel=1e-5)


def test_nt_xent_rejects_mismatched_views():
    """Views of different shapes are an error, not a silent broadcast."""
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.randn(4, 3), torch.randn(5, 3), 0.2)
