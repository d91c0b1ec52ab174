"""Improved precision and recall: k-NN radii, and the two shares on sets whose answer is known."""
import pytest
import torch

from genlab.metrics.fid import Features
from genlab.metrics.precision_recall import coverage_share, knn_radii, precision_recall


def test_knn_radii_on_a_line():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64)
    assert knn_radii(x, 1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(x, 2).tolist() == [3.0, 2.0, 3.0, 6.0]
    with pytest.raises(ValueError, match="more than k"):
        knn_radii(x, 4)


def test_coverage_share_counts_points_inside_any_ball():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    radii = torch.tensor([1.0, 2.0], dtype=torch.float64)
    pts = torch.tensor([[0.5, 0.0], [11.5, 0.0], [5.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert coverage_share(pts, centres, radii) == pytest.approx(0.75)      # the ball's surface counts as inside


def test_collapse_keeps_precision_and_loses_recall():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(600, 4, generator=g, dtype=torch.float64)
    same = torch.randn(600, 4, generator=g, dtype=torch.float64)
    p, r = precision_recall(real, same)
    assert p > 0.8 and r > 0.8                                   # two samples of one distribution
    collapsed = 0.2 * torch.randn(600, 4, generator=g, dtype=torch.float64)   # all near the mode
    p2, r2 = precision_recall(real, collapsed)
    assert p2 > 0.9 and r2 < 0.4                                  # realistic, but covers little
    off = same + 6.0                                              # elsewhere entirely
    p3, r3 = precision_recall(real, off)
    assert p3 < 0.05 and r3 < 0.05
    with pytest.raises(ValueError, match="different spaces"):
        precision_recall(Features("faces", real), Features("digits", same))
