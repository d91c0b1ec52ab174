"""Two feature-statistics layers of Progressive GAN (Karras et al. 2018), reused by StyleGAN and StyleGAN2.

* :func:`pixel_norm` (Sec. 4.2): normalizes each pixel's feature vector to unit mean square in the generator,
  b_{x,y} = a_{x,y} / sqrt(1/N sum_j (a^j_{x,y})^2 + eps); StyleGAN applies it to z before the mapping network.
* :func:`minibatch_stddev` (Sec. 3): the discriminator's end sees how diverse a group of samples is, which discourages
  mode collapse: the standard deviation of every feature over a group of samples, averaged to one number per group
  (per channel group), appended as extra constant feature maps.
"""
from __future__ import annotations

import torch
from einops import rearrange, repeat


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x (B, C, ...) -> same shape, each position's C-vector scaled to unit mean square over C (dim 1)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)     # a / sqrt(mean_j a_j^2 + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_channels: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Append minibatch standard deviation maps: x (B, C, H, W) -> (B, C + num_channels, H, W).

    The batch is split into groups of G = min(group_size, B) samples (sample i is in group i // G; B must be a
    multiple of G); the C channels into ``num_channels`` blocks (C divisible by it). For each group and block:
    s = mean over the block's channels and all pixels of sqrt(Var_group(x) + eps) (biased variance over the G
    samples), broadcast to an H x W map for every sample of the group.
    """
    b, c, h, w = x.shape
    g = min(group_size, b)
    if b % g:
        raise ValueError(f"batch size {b} must be a multiple of the minibatch-stddev group size {g}")
    if c % num_channels:
        raise ValueError(f"channels {c} must be divisible by num_channels {num_channels}")
    y = rearrange(x, "(n g) (f k) h w -> n g f k h w", g=g, f=num_channels)   # n groups of g samples
    std = (y.var(dim=1, unbiased=False) + eps).sqrt()                       # (n, f, k, h, w) over the group
    s = std.mean(dim=(2, 3, 4))                                             # (n, f): one number per group and block
    maps = repeat(s, "n f -> (n g) f h w", g=g, h=h, w=w)
    return torch.cat([x, maps.to(x.dtype)], dim=1)
