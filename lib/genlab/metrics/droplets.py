"""A droplet measure (Karras et al. 2020, Sec. 2.1, Fig. 1): StyleGAN's AdaIN normalizes each feature map by its own
mean and variance, and the generator learns to dodge that by creating one strong, localized spike -- a "droplet" --
that dominates the statistics and lets it scale the rest of the map at will. In feature-map terms: at one pixel the
feature vector's norm is far above that of the rest of the image.

    ratio(image, layer) = max_{x,y} ||f_{:,x,y}||_2 / median_{x,y} ||f_{:,x,y}||_2

``droplet_ratio`` reports, per generator, the mean over images of the largest ratio among the intermediate layers at
or above ``min_resolution`` (the droplets of the paper appear from 64x64 on; at 32x32 they may be weak or absent,
which the notebook reports as measured). Weight demodulation (StyleGAN2) removes the cause, so its ratio should be
lower.

``border`` (pixels) leaves that many rows and columns at each edge out of both the max and the median: zero padding
makes edge features differ, and a "spike" on the image border is not a droplet. :func:`spike_positions` says where
the maximum sits.
"""
from __future__ import annotations

import torch
from torch import nn

from genlab.nn.eval_mode import evaluating


def _interior(feature_map: torch.Tensor, border: int) -> torch.Tensor:
    if border < 0 or 2 * border >= min(feature_map.shape[-2:]):
        raise ValueError(f"border {border} leaves no interior in a {tuple(feature_map.shape[-2:])} map")
    return feature_map[..., border:feature_map.shape[-2] - border, border:feature_map.shape[-1] - border]


def spike_ratio(feature_map: torch.Tensor, border: int = 0) -> torch.Tensor:
    """(B, C, H, W) -> (B,): max over pixels of the per-pixel feature norm, divided by its median (both over the
    pixels at least ``border`` away from every edge)."""
    norm = _interior(feature_map, border).float().norm(dim=1).flatten(1)    # ||f_{:,x,y}||_2  (B, H*W)
    return norm.amax(1) / norm.median(1).values.clamp_min(1e-12)


def spike_positions(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2) int64: the (row, column) of the largest per-pixel feature norm of each map."""
    norm = feature_map.float().norm(dim=1).flatten(1)
    idx = norm.argmax(1)
    return torch.stack([idx // feature_map.shape[-1], idx % feature_map.shape[-1]], 1)


def on_border(positions: torch.Tensor, size: int, border: int = 1) -> torch.Tensor:
    """(B, 2) positions in a size x size map -> (B,) bool: within ``border`` pixels of an edge. By area alone a
    uniformly placed maximum lands there with probability 1 - (size - 2 border)^2 / size^2."""
    return ((positions < border) | (positions >= size - border)).any(1)


@torch.no_grad()
def layer_features(G: nn.Module, n: int = 64, *, seed: int = 0, min_resolution: int = 8,
                   device: torch.device | str = "cpu") -> dict[int, list[torch.Tensor]]:
    """{resolution: [its intermediate feature maps (n, C, r, r)]} for n images (z and noise from ``seed``, psi = 1)."""
    g = torch.Generator().manual_seed(seed)
    with evaluating(G):
        z = torch.randn(n, G.config.z_dim, generator=g).to(device)
        _, feats = G(z, noise=g, return_features=True)
    out: dict[int, list[torch.Tensor]] = {}
    for f in feats:
        if f.shape[-1] >= min_resolution:
            out.setdefault(f.shape[-1], []).append(f.cpu())
    return out


def layer_ratios(G: nn.Module, n: int = 64, *, seed: int = 0, min_resolution: int = 8, border: int = 0,
                 device: torch.device | str = "cpu") -> dict[int, torch.Tensor]:
    """{resolution: (n, k) ratios of its k feature maps} for n images (z and noise from ``seed``, psi = 1)."""
    feats = layer_features(G, n, seed=seed, min_resolution=min_resolution, device=device)
    return {r: torch.stack([spike_ratio(f, border) for f in fs], 1) for r, fs in feats.items()}


def droplet_ratio(G: nn.Module, n: int = 64, *, seed: int = 0, min_resolution: int = 8, border: int = 0,
                  device: torch.device | str = "cpu") -> float:
    """Mean over n images of the largest :func:`spike_ratio` among the layers at >= min_resolution."""
    ratios = layer_ratios(G, n, seed=seed, min_resolution=min_resolution, border=border, device=device)
    if not ratios:
        raise ValueError(f"the generator has no feature maps at or above {min_resolution}x{min_resolution}")
    return float(torch.cat(list(ratios.values()), 1).amax(1).mean())
