"""Equalized learning rate and ProGAN's feature-statistics layers, checked against their formulas."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.nn.equalized import EqualizedConv2d, EqualizedLinear
from genlab.nn.feature_stats import minibatch_stddev, pixel_norm


def test_equalized_linear_scales_the_stored_weight_at_run_time():
    torch.manual_seed(0)
    layer = EqualizedLinear(64, 8, bias_init=1.0, lr_mul=0.01)
    x = torch.randn(5, 64)
    expected = F.linear(x, layer.weight * (0.01 / math.sqrt(64)), layer.bias * 0.01)
    assert torch.allclose(layer(x), expected)
    # stored w ~ N(0, 1) / lr_mul; effective bias starts at bias_init
    assert layer.weight.std().item() == pytest.approx(100.0, rel=0.1)
    assert torch.allclose(layer.bias * layer.lr_mul, torch.ones(8))


def test_equalized_layers_preserve_unit_variance_at_init():
    torch.manual_seed(0)
    lin = EqualizedLinear(512, 512, bias=False)
    conv = EqualizedConv2d(64, 64, 3, bias=False)
    assert lin(torch.randn(256, 512)).std().item() == pytest.approx(1.0, rel=0.05)
    assert conv(torch.randn(8, 64, 16, 16))[:, :, 1:-1, 1:-1].std().item() == pytest.approx(1.0, rel=0.05)


def test_lr_mul_slows_the_effective_weights_by_that_factor_under_adam():
    # Adam moves each stored parameter by ~lr per step whatever its scale, so the effective weight moves by
    # ~lr * c = lr * lr_mul / sqrt(fan_in): two layers that differ only in lr_mul learn at speeds in that ratio.
    changes = {}
    for lr_mul in (1.0, 0.01):
        torch.manual_seed(0)
        layer = EqualizedLinear(16, 1, bias=False, lr_mul=lr_mul)
        w0 = (layer.weight * layer.weight_gain).detach().clone()
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
        x, y = torch.randn(64, 16), torch.randn(64, 1)
        for _ in range(5):
            loss = F.mse_loss(layer(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
        changes[lr_mul] = ((layer.weight * layer.weight_gain).detach() - w0).abs().mean().item()
    assert changes[0.01] / changes[1.0] == pytest.approx(0.01, rel=0.05)


def test_equalized_conv_matches_conv2d_and_rejects_even_kernels():
    torch.manual_seed(1)
    conv = EqualizedConv2d(3, 4, 3, lr_mul=0.5)
    x = torch.randn(2, 3, 7, 7)
    expected = F.conv2d(x, conv.weight * (0.5 / math.sqrt(27)), conv.bias * 0.5, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        EqualizedConv2d(3, 4, 2)
    with pytest.raises(ValueError, match="lr_mul"):
        EqualizedLinear(3, 4, lr_mul=0)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(3, 16, 4, 4) * 7
    y = pixel_norm(x)
    assert torch.allclose(y.square().mean(dim=1), torch.ones(3, 4, 4), atol=1e-5)
    assert torch.allclose(pixel_norm(torch.randn(5, 32)).square().mean(1), torch.ones(5), atol=1e-5)   # also for z


def test_minibatch_stddev_equals_a_hand_computation():
    torch.manual_seed(2)
    x = torch.randn(8, 6, 3, 3)
    y = minibatch_stddev(x, group_size=4, num_channels=2)
    assert y.shape == (8, 8, 3, 3) and torch.equal(y[:, :6], x)
    for grp in range(2):
        xs = x[4 * grp:4 * grp + 4]
        for f in range(2):
            block = xs[:, 3 * f:3 * f + 3]
            s = (block.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
            assert torch.allclose(y[4 * grp:4 * grp + 4, 6 + f], s.expand(4, 3, 3), atol=1e-6)
    # identical samples in a group: zero diversity
    same = torch.randn(1, 4, 2, 2).expand(4, 4, 2, 2)
    assert minibatch_stddev(same)[:, 4].abs().max() < 1e-3
    with pytest.raises(ValueError, match="multiple"):
        minibatch_stddev(torch.randn(6, 4, 2, 2), group_size=4)
