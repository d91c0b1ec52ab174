"""SSIM (genlab.metrics.image_quality): the separable form against torchmetrics' 11x11 grouped convolution, and a
closed form."""
import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as torchmetrics_ssim

from genlab.metrics import image_quality
from genlab.metrics.image_quality import ssim, ssim_per_image


@pytest.mark.parametrize("shape", [(3, 3, 64, 64), (5, 1, 28, 28), (2, 3, 17, 33), (70, 3, 16, 16)])
def test_ssim_equals_torchmetrics(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g)
    y = (x + 0.2 * torch.randn(shape, generator=g)).clamp(0, 1)
    want = torchmetrics_ssim(x.double(), y.double(), data_range=1.0, reduction="none")
    got = ssim_per_image(x, y)
    assert got.dtype == torch.float64 and got.shape == (shape[0],)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    want2 = torchmetrics_ssim(2 * x.double(), 2 * y.double(), data_range=2.0, reduction="none")
    assert torch.allclose(ssim_per_image(2 * x, 2 * y, 2.0), want2, rtol=0, atol=1e-12)


def test_ssim_closed_form_for_constant_images():
    # constant images: sigma = 0, so SSIM = (2 a b + C1) / (a^2 + b^2 + C1) exactly, C1 = 0.01^2
    a, b = 0.3, 0.7
    x, y = torch.full((2, 3, 12, 12), a), torch.full((2, 3, 12, 12), b)
    c1 = 0.01 ** 2
    assert ssim(x, y) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-7)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_ssim_chunking_does_not_change_the_result(monkeypatch):
    x, y = torch.rand(10, 3, 16, 16), torch.rand(10, 3, 16, 16)
    whole = ssim_per_image(x, y)
    monkeypatch.setattr(image_quality, "SSIM_CHUNK", 3)
    assert torch.allclose(ssim_per_image(x, y), whole, rtol=0, atol=1e-14)


def test_ssim_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))
