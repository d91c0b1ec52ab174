"""Modulated convolution with weight demodulation (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", Sec. 2.2, Eqs. 1-3), StyleGAN2's replacement for AdaIN.

Instead of normalizing the *activations* (AdaIN, whose mean removal lets the generator smuggle signal through a
"droplet"), the style scales the convolution *weights* per sample, and the expected output std is normalized
analytically:

    w'_{ijk}  = s_i * w_{ijk}                                  (modulation, Eq. 1; i: input channel, j: output, k: tap)
    sigma_j   = sqrt( sum_{i,k} (w'_{ijk})^2 + eps )            (Eq. 2: output std for unit-variance i.i.d. input)
    w''_{ijk} = w'_{ijk} / sigma_j                              (demodulation, Eq. 3)

Two forms compute this (pure PyTorch, no custom ops; the official implementation has both):

* the *fused* (inference) form builds each sample's weights w'' and runs them as one grouped convolution
  (groups = B): the batch is folded into the channels, x (1, B*I, H, W) against weights (B*O, I, k, k) -- Sec. 2.2,
  "we implement ... using grouped convolutions". It is the equation read literally.
* the *training* form never builds per-sample weights. Since s_i only scales input channel i and 1/sigma_j only
  scales output channel j, the convolution with w'' equals

      y_j = (1 / sigma_j) * sum_i w_{ij.} * (s_i x_i),     sigma_j^2 = sum_i s_i^2 (sum_k w_{ijk}^2) + eps

  i.e. scale the activations, run ONE ordinary batched convolution with the shared weight, multiply the output by
  the demodulation factors; sigma comes from a (B, I) x (I, O) matrix product instead of a (B, O, I, k, k) tensor.
  It is faster -- forward + backward on a CPU, batch 32: about 4-25x for 128 channels at 4x4 and 8x8, 1.5x for 64
  at 16x16, even for 32 at 32x32 (benchmarks/bench_speed.py --parts) -- because a grouped convolution with B groups of
  per-sample weights cannot use the batched GEMM of an ordinary convolution, and its backward has to produce a
  per-sample weight gradient (B times the weight's size) and reduce it through the modulation.
  stylegan2-ada-pytorch uses it whenever the network is in training mode (``fused_modconv = not training``), as
  :class:`ModulatedConv2d` does here. The two forms agree to float rounding (tests/test_stylegan.py checks outputs
  and gradients).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.equalized import EqualizedLinear
from genlab.nn.resample import upsample


def demodulation(weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 / sigma_j for each sample: weight (O, I, k, k), styles (B, I) -> (B, O).

    sigma_j^2 = sum_{i,k} (s_i w_{ijk})^2 + eps = sum_i s_i^2 (sum_k w_{ijk}^2) + eps   (Eq. 2, as a matrix product)
    """
    return torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).t() + eps)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     eps: float = 1e-8, fused: bool = True, up: bool = False) -> torch.Tensor:
    """x (B, I, H, W), weight (O, I, k, k) (already scaled), styles s (B, I) -> (B, O, H', W'), 'same' padding.

    up: first double H and W (bilinear), so H' = 2H; else H' = H. fused: the grouped per-sample-weight form
    (inference); False: the training form (scale x, one batched conv, demodulate the output). See the module doc.
    """
    b, i, h, w_ = x.shape
    o, i_w, k, _ = weight.shape
    if i != i_w or styles.shape != (b, i):
        raise ValueError(f"modulated_conv2d: x {tuple(x.shape)}, weight {tuple(weight.shape)} and styles "
                         f"{tuple(styles.shape)} disagree (need x (B, I, H, W), weight (O, I, k, k), styles (B, I))")
    if not fused:
        x = x * styles[:, :, None, None]                                       # s_i x_i (before upsampling: 4x cheaper)
        out = F.conv2d(upsample(x, "bilinear") if up else x, weight, padding=k // 2)   # sum_i w_{ij.} * (s_i x_i)
        return out * demodulation(weight, styles, eps)[:, :, None, None] if demodulate else out   # / sigma_j
    if up:
        x = upsample(x, "bilinear")
        h, w_ = 2 * h, 2 * w_
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
    In training mode it runs the training form of :func:`modulated_conv2d`, in eval mode the fused (grouped) one.
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
        return modulated_conv2d(x, self.weight * self.weight_gain, self.affine(w), demodulate=self.demodulate,
                                fused=not self.training, up=self.up)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"demodulate={self.demodulate}, up={self.up}")
