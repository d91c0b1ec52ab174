"""Adaptive instance normalization as StyleGAN uses it (Karras et al. 2019, Sec. 2, Eq. 1; Huang & Belongie 2017).

A learned affine map "A" turns w into a style y = (y_s, y_b), one scale and one bias per channel; each feature map is
normalized to zero mean and unit variance over its pixels, then scaled and shifted by the style:

    AdaIN(x_i, y) = y_{s,i} * (x_i - mu(x_i)) / sigma(x_i) + y_{b,i}

The scale's bias starts at 1 (the official code's ``bias_init=1``), so an untrained affine map gives y_s ~ 1.
StyleGAN2 replaces this normalization by weight demodulation (genlab.nn.modulated, notebook 03), because the mean
removal is what lets the generator hide signal in "droplets".
"""
from __future__ import annotations

import torch
from torch import nn

from genlab.nn.equalized import EqualizedLinear


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x (B, C, H, W), scale and bias (B, C) -> (B, C, H, W): per-sample, per-channel normalize, then restyle."""
    if x.dim() != 4 or scale.shape != x.shape[:2] or bias.shape != x.shape[:2]:
        raise ValueError(f"adain needs x (B, C, H, W) and styles (B, C); got {tuple(x.shape)}, {tuple(scale.shape)}, "
                         f"{tuple(bias.shape)}")
    mu = x.mean(dim=(2, 3), keepdim=True)
    sigma = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return scale[:, :, None, None] * (x - mu) / sigma + bias[:, :, None, None]      # y_s (x - mu) / sigma + y_b


class AdaIN(nn.Module):
    """The affine map A (w -> style) followed by :func:`adain`: forward(x (B, C, H, W), w (B, w_dim)) -> (B, C, H, W)."""

    def __init__(self, w_dim: int, channels: int):
        super().__init__()
        self.to_scale = EqualizedLinear(w_dim, channels, bias_init=1.0)     # y_s = A_s w + 1 at init
        self.to_bias = EqualizedLinear(w_dim, channels, bias_init=0.0)      # y_b = A_b w

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return adain(x, self.to_scale(w), self.to_bias(w))
