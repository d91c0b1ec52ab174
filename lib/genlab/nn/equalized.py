"""Equalized learning rate (Karras et al. 2018, "Progressive Growing of GANs", Sec. 4.1), with StyleGAN's learning-rate
multiplier (Karras et al. 2019, Sec. 2 and App. C: the mapping network uses lr_mul = 0.01).

Instead of a careful initialization, the weights are stored as w ~ N(0, 1) / lr_mul and scaled at *run time* by the
He constant c = lr_mul / sqrt(fan_in):

    y = (c * w) x + lr_mul * b                               (effective weight c * w ~ N(0, 1 / fan_in))

An adaptive optimizer (Adam) moves every stored parameter by about the same step, whatever its scale; with the scale
applied at run time every *effective* weight then learns at the same speed (relative to its size), and lr_mul < 1
slows a whole layer down by that factor. ``bias_init`` is the effective bias at initialization (StyleGAN's affine
style layers start at bias 1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EqualizedLinear(nn.Module):
    """Linear layer with equalized learning rate: x (..., in_features) -> (..., out_features)."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0):
        super().__init__()
        if lr_mul <= 0:
            raise ValueError(f"lr_mul must be > 0, got {lr_mul}")
        self.in_features, self.out_features, self.lr_mul = in_features, out_features, lr_mul
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)     # w ~ N(0, 1) / lr_mul
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)                              # c = lr_mul / sqrt(fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.lr_mul if self.bias is not None else None
        return F.linear(x, self.weight * self.weight_gain, b)                          # y = (c w) x + lr_mul b

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, lr_mul={self.lr_mul}"


class EqualizedConv2d(nn.Module):
    """Conv2d with equalized learning rate, 'same' padding: x (B, C_in, H, W) -> (B, C_out, H, W) (stride 1).

    fan_in = C_in * k * k; the weight is stored ~ N(0, 1) / lr_mul and scaled by lr_mul / sqrt(fan_in) at run time.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        if lr_mul <= 0:
            raise ValueError(f"lr_mul must be > 0, got {lr_mul}")
        self.in_channels, self.out_channels, self.kernel_size, self.lr_mul = (in_channels, out_channels, kernel_size,
                                                                              lr_mul)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_channels,), bias_init / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size ** 2)            # c = lr_mul / sqrt(fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.lr_mul if self.bias is not None else None
        return F.conv2d(x, self.weight * self.weight_gain, b, padding=self.kernel_size // 2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, lr_mul={self.lr_mul}"


def scaled_lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) times sqrt(2), the He gain that keeps unit variance under equalized LR. Any shape."""
    return F.leaky_relu(x, 0.2) * math.sqrt(2.0)                  # lrelu(x) * sqrt(2)
