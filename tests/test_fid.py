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


def _with_statistics(mu: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n 'images' (n, 1, 1, d) whose features (Flatten) have exactly the sample mean ``mu`` and the unbiased sample
    covariance ``cov`` (what FID fits): random data, centred and whitened, then coloured by a square root of cov."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, len(mu), generator=g, dtype=torch.float64)
    x = x - x.mean(0)
    white = x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / (n - 1))).T           # sample covariance I
    y = white @ torch.linalg.cholesky(cov).T + mu
    torch.testing.assert_close(torch.cov(y.T), cov, rtol=1e-10, atol=1e-10)
    return y.view(n, 1, 1, -1)


def _random_rotation(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_fid_equals_the_closed_form_for_different_covariances():
    """The covariance term Tr(S1 + S2 - 2 (S1 S2)^(1/2)) with S1 != S2 (the Gaussian tests above have S1 = S2 = I, where
    it vanishes): for commuting S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T (Q = I: diagonal) it is sum_i (sqrt(a_i) -
    sqrt(b_i))^2; for non-commuting ones Tr (S1^(1/2) S2 S1^(1/2))^(1/2), computed here with symmetric eigensolves."""
    d, n = 4, 50
    mu1 = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    mu2 = torch.tensor([1.5, 0.0, 1.0, -0.5], dtype=torch.float64)
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    b = torch.tensor([4.0, 1.0, 2.0, 0.5], dtype=torch.float64)
    closed = float((mu1 - mu2).square().sum() + (a + b - 2 * (a * b).sqrt()).sum())      # = 2.25 + 10.34...
    for q in (torch.eye(d, dtype=torch.float64), _random_rotation(d, 3)):                # diagonal, then rotated
        s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
        x1, x2 = _with_statistics(mu1, s1, n, seed=1), _with_statistics(mu2, s2, n, seed=2)
        assert fid(x1, x2, Flatten(d)) == pytest.approx(closed, rel=1e-8)
        assert fid(x2, x1, Flatten(d)) == pytest.approx(closed, rel=1e-8)
    # non-commuting covariances: S1 diagonal, S2 rotated
    s1, s2 = torch.diag(a), _random_rotation(d, 4) @ torch.diag(b) @ _random_rotation(d, 4).T
    w, v = torch.linalg.eigh(s1)
    root1 = v @ torch.diag(w.sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()          # Tr (S1 S2)^(1/2)
    want = float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * cross)
    x1, x2 = _with_statistics(mu1, s1, n, seed=1), _with_statistics(mu2, s2, n, seed=2)
    assert fid(x1, x2, Flatten(d)) == pytest.approx(want, rel=1e-8)


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
