"""Noise inputs (Karras et al. 2019, Sec. 3.2, Fig. 1b "B"): per-pixel Gaussian noise, one image per sample, added to
every channel with a learned per-channel scale, so the generator can place stochastic detail (hair strands,
freckles) without spending latent capacity on it:

    x'_{c,h,w} = x_{c,h,w} + B_c * n_{h,w},    n ~ N(0, 1) of shape (B, 1, H, W)

The scales start at 0 (the official code's init), so an untrained layer is the identity. Passing ``noise`` explicitly
fixes it (the notebooks resample it for the same w to measure what it changes).
"""
from __future__ import annotations

import torch
from torch import nn


class NoiseInjection(nn.Module):
    """forward(x (B, C, H, W), noise (B, 1, H, W) or None) -> (B, C, H, W); None draws fresh N(0, 1) noise."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))                   # B_c, one scale per channel

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        if noise is None:
            noise = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)
        elif noise.shape != (b, 1, h, w):
            raise ValueError(f"noise must have shape ({b}, 1, {h}, {w}) (one map per sample), got {tuple(noise.shape)}")
        return x + self.weight[None, :, None, None] * noise                   # x + B_c n


def noise_maps(noise, shapes: list[tuple[int, int, int, int]], device, dtype) -> list[torch.Tensor | None]:
    """None: fresh noise drawn by each layer (global RNG); a torch.Generator: draw every map from it (repeatable);
    a list: one (B, 1, H, W) map per noise layer, in order."""
    if noise is None:
        return [None] * len(shapes)
    if isinstance(noise, torch.Generator):
        return [draw_noise(noise, s, device, dtype) for s in shapes]
    noise = list(noise)
    if len(noise) < len(shapes):
        raise ValueError(f"need {len(shapes)} noise maps (one per layer), got {len(noise)}")
    return noise


def draw_noise(noise, shape: tuple[int, ...], device, dtype=torch.float32) -> torch.Tensor:
    """None: torch.randn (global RNG); a torch.Generator: drawn from it (on the CPU, then moved); a tensor: checked."""
    if noise is None:
        return torch.randn(shape, device=device, dtype=dtype)
    if isinstance(noise, torch.Generator):
        return torch.randn(shape, generator=noise).to(device=device, dtype=dtype)
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise must have shape {tuple(shape)}, got {tuple(noise.shape)}")
    return noise.to(device=device, dtype=dtype)
