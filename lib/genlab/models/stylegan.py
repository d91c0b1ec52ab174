"""StyleGAN (Karras, Laine & Aila 2019, "A Style-Based Generator Architecture for GANs"): the latent side.

This module starts with the parts of Sec. 2-3 that act on latents, before any synthesis layer:

* :class:`MappingNetwork` (Sec. 2, Fig. 1b): z is normalized (pixel norm), then 8 fully connected layers with leaky
  ReLU and the learning rate multiplied by 0.01 (App. C) map it to the intermediate latent w; the network also tracks
  the running mean w_avg that the truncation trick needs.
* :func:`truncate` (Sec. 5, App. B, "truncation trick in W"): w' = w_avg + psi (w - w_avg), optionally only for the
  layers before a cutoff (coarse styles).
* :func:`mix_styles` and :func:`sample_crossover` (Sec. 3.1, style mixing regularization): with probability 0.9 a
  training image uses two latents, w1 for the layers before a random crossover point and w2 from it on.

Per-layer latents are (B, L, w_dim): L = the number of style inputs of the synthesis network (2 per resolution).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.equalized import EqualizedLinear
from genlab.nn.feature_stats import pixel_norm


class MappingNetwork(nn.Module):
    """f: z (B, z_dim) -> w (B, w_dim); z is pixel-normalized first (Sec. 2: "normalized z").

    n_layers equalized-LR linear layers with leaky ReLU (0.2), learning-rate multiplier ``lr_mul`` (0.01 in the paper).
    In training mode (and ``track_w_avg``) each forward pass moves the buffer ``w_avg`` towards the batch mean of w:
    w_avg <- w_avg + (1 - w_avg_beta) * (mean_B w - w_avg)   (an EMA, beta = 0.995 as in the official code).
    """

    def __init__(self, z_dim: int = 64, w_dim: int = 64, n_layers: int = 8, lr_mul: float = 0.01,
                 w_avg_beta: float = 0.995, track_w_avg: bool = True):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"the mapping network needs n_layers >= 1, got {n_layers}")
        self.z_dim, self.w_dim, self.w_avg_beta, self.track_w_avg = z_dim, w_dim, w_avg_beta, track_w_avg
        dims = [z_dim] + [w_dim] * n_layers
        self.layers = nn.ModuleList(EqualizedLinear(a, b, lr_mul=lr_mul) for a, b in zip(dims[:-1], dims[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"MappingNetwork expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        x = pixel_norm(z)                                                   # z / sqrt(mean z^2 + eps)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
        if self.training and self.track_w_avg:
            with torch.no_grad():
                self.w_avg.lerp_(x.detach().mean(0).to(self.w_avg.dtype), 1 - self.w_avg_beta)
        return x


def broadcast_w(w: torch.Tensor, n_layers: int) -> torch.Tensor:
    """One w per image (B, w_dim) -> the same w for every style input (B, L, w_dim); (B, L, w_dim) passes through."""
    if w.dim() == 2:
        return w[:, None].expand(-1, n_layers, -1)
    if w.dim() != 3 or w.shape[1] != n_layers:
        raise ValueError(f"expected w of shape (B, w_dim) or (B, {n_layers}, w_dim), got {tuple(w.shape)}")
    return w


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float, *, cutoff: int | None = None,
             n_layers: int | None = None) -> torch.Tensor:
    """The truncation trick in W: w' = w_avg + psi (w - w_avg).

    w: (B, w_dim) or (B, L, w_dim); w_avg: (w_dim,). psi = 1 is the identity, psi = 0 gives w_avg. With ``cutoff``,
    only style inputs 0 .. cutoff-1 (the coarse ones) are truncated; this needs per-layer latents (pass (B, L, w_dim)
    or ``n_layers`` to broadcast a (B, w_dim) w).
    """
    if cutoff is None:
        return torch.lerp(w_avg.expand_as(w), w, psi)              # w_avg + psi (w - w_avg), exact at psi = 0 and 1
    if w.dim() == 2:
        if n_layers is None:
            raise ValueError("truncate with a cutoff needs per-layer latents: pass w as (B, L, w_dim) or n_layers")
        w = broadcast_w(w, n_layers)
    layer = torch.arange(w.shape[1], device=w.device)[None, :, None]
    return torch.where(layer < cutoff, torch.lerp(w_avg.expand_as(w), w, psi), w)


def mix_styles(w1: torch.Tensor, w2: torch.Tensor, crossover: torch.Tensor | int, n_layers: int) -> torch.Tensor:
    """Style mixing: style input l of image b gets w1[b] if l < crossover[b], else w2[b].

    w1, w2: (B, w_dim) or (B, L, w_dim); crossover: (B,) ints in [0, L] or one int (L: no mixing, 0: all from w2).
    Returns (B, L, w_dim).
    """
    a, b = broadcast_w(w1, n_layers), broadcast_w(w2, n_layers)
    cross = torch.as_tensor(crossover, device=a.device).reshape(-1, 1, 1)
    layer = torch.arange(n_layers, device=a.device)[None, :, None]
    return torch.where(layer < cross, a, b)


def sample_crossover(batch: int, n_layers: int, prob: float = 0.9, *, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Crossover points for mixing regularization (Sec. 3.1): with probability ``prob`` a point uniform in
    [1, L - 1] (both latents used), else L (no mixing). Returns (B,) int64."""
    if n_layers < 2:
        return torch.full((batch,), n_layers, dtype=torch.long, device=device)
    point = torch.randint(1, n_layers, (batch,), generator=generator).to(device)
    mixed = torch.rand(batch, generator=generator).to(device) < prob
    return torch.where(mixed, point, torch.full_like(point, n_layers))
