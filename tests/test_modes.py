"""Ring of Gaussians and mode coverage: exact on constructed cases."""
from __future__ import annotations

import math

import pytest
import torch

from genlab.metrics.modes import mode_coverage
from genlab.worlds.ring import ring_centres, ring_of_gaussians


def test_ring_centres_lie_on_the_circle_at_equal_angles():
    c = ring_centres(8, radius=2.0)
    assert c.shape == (8, 2)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(c[0], torch.tensor([2.0, 0.0])) and torch.allclose(c[2], torch.tensor([0.0, 2.0]), atol=1e-6)
    with pytest.raises(ValueError, match="n_modes >= 1"):
        ring_centres(0)


def test_samples_are_seeded_and_spread_over_all_modes():
    a, ma = ring_of_gaussians(4000, generator=torch.Generator().manual_seed(3))
    b, mb = ring_of_gaussians(4000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert torch.bincount(ma, minlength=8).min() > 400
    # distance to the own centre is Rayleigh(std): mean std * sqrt(pi / 2)
    d = (a - ring_centres()[ma]).norm(dim=1)
    assert d.mean().item() == pytest.approx(0.05 * math.sqrt(math.pi / 2), rel=0.05)


def test_real_samples_cover_every_mode_with_the_chi2_share():
    x, _ = ring_of_gaussians(20000, generator=torch.Generator().manual_seed(0))
    cov = mode_coverage(x, ring_centres(), std=0.05)
    assert cov.modes_covered == 8 and cov.n == 20000
    assert cov.high_quality_share == pytest.approx(1 - math.exp(-4.5), abs=0.005)   # P(chi2_2 <= 9)


def test_collapsed_and_off_mode_samples_are_counted_exactly():
    c = ring_centres()
    # 90 points on mode 0, 5 on mode 3 (below 10% share), 5 far from every mode
    samples = torch.cat([c[0].expand(90, 2), c[3].expand(5, 2), torch.zeros(5, 2)])
    cov = mode_coverage(samples, c, std=0.05, min_share=0.1)
    assert cov.counts == (90, 0, 0, 5, 0, 0, 0, 0)
    assert cov.modes_covered == 1
    assert cov.high_quality_share == pytest.approx(0.95)
    assert mode_coverage(samples, c, std=0.05, min_share=0.05).modes_covered == 2
    with pytest.raises(ValueError, match="share D"):
        mode_coverage(torch.zeros(3, 3), c, std=0.05)
