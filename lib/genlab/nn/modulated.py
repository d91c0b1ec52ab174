"""Modulated convolution with weight demodulation (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", Sec. 2.2, Eqs. 1-3), StyleGAN2's replacement for AdaIN.

Instead of normalizing the *activations* (AdaIN, whose mean removal lets the generator smuggle signal through a
"droplet"), the style scales the convolution *weights* per sample, and the expected output std is normalized
analytically:

    w'_{ijk}  = s_i * w_{ijk}                                  (modulation, Eq. 1; i: input channel, j: output, k: tap)
    sigma_j   = sqrt( sum_{i,k} (w'_{ijk})^2 + eps )            (Eq. 2: output std for unit-variance i.i.d. input)
    w''_{ijk} = w'_{ijk} / sigma_j                              (demodulation, Eq. 3)

Each sample gets its own weights; they run as one grouped convolution (groups = B): the batch is folded into the
channels, x (1, B*I, H, W) against weights (B*O, I, k, k) -- the trick of the official implementation (Sec. 2.2,
"we implement ... using grouped convolutions"). Pure PyTorch, no custom ops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.equalized import EqualizedLinear
from genlab.nn.resample import upsample


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     eps: float = 1e-8) -> torch.Tensor:
    """x (B, I, H, W), weight (O, I, k, k) (already scaled), styles s (B, I) -> (B, O, H, W), 'same' padding."""
    b, i, h, w_ = x.shape
    o, i_w, k, _ = weight.shape
    if i != i_w or styles.shape != (b, i):
        raise ValueError(f"modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)} and styles "
                         f"{tuple(styles.shape)} disagree (need x (B, I, H, W), weight (O, I, k, k), styles (B, I))")
    wts = weight[None] * styles[:, None, :, None, None]                         # w'_{ijk} = s_i w_{ijk}   (B, O, I, k, k)
    if demodulate:
        sigma_inv = torch.rsqrt(wts.square().sum(dim=(2, 3, 4)) + eps)          # 1 / sigma_j              (B, O)
        wts = wts * sigma_inv[:, :, None, None, None]                           # w''_{ijk} = w'_{ijk} / sigma_j
    out = F.conv2d(x.reshape(1, b * i, h, w_), wts.reshape(b * o, i, k, k), padding=k // 2, groups=b)
    return out.reshape(b, o, h, w_)


class ModulatedConv2d(nn.Module):
    """A StyleGAN2 convolution: the affine map A (w -> s, bias init 1), modulated conv, optional demodulation.

    forward(x (B, I, H, W), w (B, w_dim)) -> (B, O, H', W'); ``up=True`` first doubles H, W (bilinear; the official
    code fuses a transposed conv with a [1, 3, 3, 1] blur instead). Weights use the equalized learning rate
    (stored ~ N(0, 1), scaled by 1/sqrt(I k^2) at run time). No bias here: the layer adds it after the noise.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, *, demodulate: bool = True,
                 up: bool = False):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.up = demodulate, up
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)        # s = A w, s ~ 1 at init
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = upsample(x, "bilinear")
        return modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w), demodulate=self.demodulate)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"demodulate={self.demodulate}, up={self.up}")
