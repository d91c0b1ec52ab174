"""FID/KID plumbing (torchmetrics with our feature nets) and sanity: the ruler measures something."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.data.mnist import mnist5k
from genlab.metrics.fid import feature_space, features, fid, kid

pytestmark = pytest.mark.usefixtures("one_thread")


class Flatten(nn.Module):
    """Identity features of (B, 1, 1, d) 'images' -- lets the test know the exact answer."""

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d

    def forward(self, x):
        return x.flatten(1).double()


def test_fid_of_two_gaussians_is_the_squared_mean_distance():
    # N(0, I) vs N(m, I): FID = ||m||^2 + Tr(I + I - 2 I) = ||m||^2 (up to sampling error)
    g = torch.Generator().manual_seed(0)
    d, n = 4, 20000
    m = torch.tensor([0.5, -0.5, 0.0, 1.0])
    a = torch.randn(n, 1, 1, d, generator=g)
    b = torch.randn(n, 1, 1, d, generator=g) + m
    assert fid(a, b, Flatten(d), batch_size=5000) == pytest.approx(float(m @ m), abs=0.02)
    assert fid(a, a, Flatten(d)) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_zero_for_equal_sets_and_positive_for_shifted_ones():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(600, 1, 1, 3, generator=g)
    b = torch.randn(600, 1, 1, 3, generator=g)
    same, same_std = kid(a, b, Flatten(3), subsets=20, subset_size=300)
    shifted, _ = kid(a, b + 1.0, Flatten(3), subsets=20, subset_size=300)
    assert abs(same) < 2 * same_std and abs(same) < 0.01 * shifted, (same, same_std, shifted)
    # repeatable, and the caller's RNG stream is untouched
    state = torch.get_rng_state()
    assert kid(a, b + 1.0, Flatten(3), subsets=20, subset_size=300)[0] == shifted
    assert torch.equal(state, torch.get_rng_state())


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = 3
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, -1)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(2, 3).expand(c, 1, -1, 1), groups=c)


def _two_real_sets(space: str) -> tuple[torch.Tensor, torch.Tensor]:
    """600 + 600 disjoint real images of the space's domain, in [0, 1]."""
    if space == "digits":
        return mnist5k("train")[0][:600], mnist5k("test")[0][:600]
    from genlab.worlds.faces import faces
    return faces("train", n=600, resolution=32)[0], faces("test", n=600, resolution=32)[0]


@pytest.mark.parametrize("space", ["digits", "faces"])
def test_fid_floor_is_small_and_grows_with_blur_and_noise(space):
    real_a, real_b = _two_real_sets(space)
    ref = features(real_a, space)                        # embedded once, compared seven times
    floor = fid(ref, real_b, space)
    blurs = [fid(ref, _blur(real_b, s), space) for s in (1.0, 1.6, 2.5)]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(real_b.shape, generator=g)
    noisy = [fid(ref, (real_b + s * noise).clamp(0, 1), space) for s in (0.1, 0.25, 0.5)]
    assert floor < 0.25 * min(blurs[0], noisy[0]), (floor, blurs, noisy)
    assert blurs == sorted(blurs) and noisy == sorted(noisy), (blurs, noisy)


def test_precomputed_features_give_the_same_numbers_and_spaces_do_not_mix():
    a, b = mnist5k("train")[0][:300], mnist5k("test")[0][:300]
    fa, fb = features(a, "digits"), features(b, "digits")
    assert fa.values.shape == (300, 128) and fa.space == "digits"
    assert fid(fa, fb, "digits") == pytest.approx(fid(a, b, "digits"), rel=1e-9)
    assert kid(fa, b, "digits", subsets=10, subset_size=100) == pytest.approx(
        kid(a, b, "digits", subsets=10, subset_size=100), rel=1e-9)
    with pytest.raises(ValueError, match="cannot be compared"):
        fid(fa, fb, "faces")


def test_feature_space_rejects_wrong_inputs():
    net = feature_space("digits")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        net(torch.rand(2, 1, 28, 28) * 2 - 1)
    with pytest.raises(TypeError, match="divide uint8 by 255"):
        net(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown feature space"):
        feature_space("inception")
    with pytest.raises(ValueError, match="at least 2"):
        fid(torch.rand(1, 1, 28, 28), torch.rand(5, 1, 28, 28), "digits")
