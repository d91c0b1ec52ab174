"""AdaIN and noise injection equal their formulas."""
from __future__ import annotations

import pytest
import torch

from genlab.nn.adain import AdaIN, adain
from genlab.nn.noise import NoiseInjection


def test_adain_output_has_the_style_statistics():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8) * 5 + 2
    scale, bias = torch.tensor([[1.0, 2.0, 0.5], [3.0, 1.0, 1.0]]), torch.tensor([[0.0, -1.0, 4.0], [1.0, 2.0, 3.0]])
    y = adain(x, scale, bias)
    assert torch.allclose(y.mean(dim=(2, 3)), bias, atol=1e-5)
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), scale, atol=1e-4)
    # the input's own per-channel statistics are gone: shifting/scaling x changes nothing
    assert torch.allclose(adain(3 * x - 7, scale, bias), y, atol=1e-4)
    with pytest.raises(ValueError, match=r"styles \(B, C\)"):
        adain(x, scale[:, :2], bias)


def test_adain_module_starts_near_unit_scale():
    torch.manual_seed(0)
    layer = AdaIN(w_dim=16, channels=4)
    w = torch.zeros(2, 16)                                   # A(0) = the biases: scale 1, bias 0
    x = torch.randn(2, 4, 5, 5)
    expected = (x - x.mean(dim=(2, 3), keepdim=True)) / (x.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-8).sqrt()
    assert torch.allclose(layer(x, w), expected, atol=1e-5)


def test_noise_injection_adds_scaled_per_pixel_noise():
    layer = NoiseInjection(3)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(layer(x), x), "zero-initialized scales: the identity"
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.0, 1.0, -2.0]))
    n = torch.randn(2, 1, 4, 4)
    y = layer(x, n)
    assert torch.equal(y[:, 0], x[:, 0])
    assert torch.allclose(y[:, 1], x[:, 1] + n[:, 0]) and torch.allclose(y[:, 2], x[:, 2] - 2 * n[:, 0])
    with pytest.raises(ValueError, match="one map per sample"):
        layer(x, torch.randn(2, 3, 4, 4))
