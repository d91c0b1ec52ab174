"""2x up- and down-sampling of feature maps and images, the two ways the StyleGAN ablation compares them.

Progressive GAN (config A of Karras et al. 2019, Table 1) doubles with nearest-neighbour upsampling and halves with
2x2 average pooling. Config B ("+ tuning (incl. bilinear up/down)", Sec. 2 and Zhang 2019) low-pass filters both:

* bilinear upsampling (``F.interpolate(..., mode="bilinear", align_corners=False)``): each output pixel is a
  3/4 - 1/4 blend of its two nearest inputs per axis, i.e. the separable filter [1, 3, 3, 1] / 4 applied to the
  zero-stuffed input;
* antialiased bilinear downsampling (``antialias=True``): at a factor of 2 the triangle kernel covers four inputs per
  axis with weights [1, 3, 3, 1] / 8, the same binomial filter StyleGAN applies before its strided convolutions.

Both take (B, C, H, W) and return (B, C, 2H, 2W) or (B, C, H/2, W/2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("nearest", "bilinear")


def _check(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"resampling mode must be one of {MODES}, got {mode!r}")


def upsample(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W): nearest neighbour (ProGAN) or bilinear (StyleGAN)."""
    _check(mode)
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def downsample(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/2, W/2): 2x2 average pooling ("nearest" family, ProGAN) or the [1, 3, 3, 1] / 8
    antialiased bilinear filter (StyleGAN). H and W must be even."""
    _check(mode)
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"downsample needs an even height and width, got {tuple(x.shape[-2:])}")
    if mode == "nearest":
        return F.avg_pool2d(x, 2)
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)


def resize_to(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Halve (B, C, S, S) repeatedly down to (B, C, size, size); S / size must be a power of 2."""
    s = x.shape[-1]
    if size > s or s % size or (s // size) & (s // size - 1):
        raise ValueError(f"cannot halve a {s}x{s} image down to {size}x{size}: the ratio must be a power of 2")
    while x.shape[-1] > size:
        x = downsample(x, mode)
    return x
