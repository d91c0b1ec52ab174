"""Operations in a style-based generator's latent space W (Karras et al. 2019, Sec. 2-3 and App. B).

w: one latent per image (B, w_dim), or one per style input (B, L, w_dim) with L the generator's number of style
inputs. Broadcasting, the truncation trick, and style mixing (a crossover point, or any range of layers) are shared by
StyleGAN and StyleGAN2 and by the notebooks' mixing experiments.
"""
from __future__ import annotations

import torch


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


def mix_layers(w_a: torch.Tensor, w_b: torch.Tensor, layers_from_b: range, n_layers: int) -> torch.Tensor:
    """Style input l takes w_b if l is in ``layers_from_b`` (e.g. range(4, 6): the 16x16 styles), else w_a.

    w_a, w_b: (B, w_dim) or (B, L, w_dim) -> (B, L, w_dim). Unlike :func:`mix_styles` the B layers need not be a suffix,
    which is what the coarse / middle / fine mixing experiments need.
    """
    a, b = broadcast_w(w_a, n_layers), broadcast_w(w_b, n_layers)
    layer = torch.arange(n_layers, device=a.device)[None, :, None]
    return torch.where((layer >= layers_from_b.start) & (layer < layers_from_b.stop), b, a)


def sample_crossover(batch: int, n_layers: int, prob: float = 0.9, *, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Crossover points for mixing regularization (Sec. 3.1): with probability ``prob`` a point uniform in
    [1, L - 1] (both latents used), else L (no mixing). Returns (B,) int64."""
    if n_layers < 2:
        return torch.full((batch,), n_layers, dtype=torch.long, device=device)
    point = torch.randint(1, n_layers, (batch,), generator=generator).to(device)
    mixed = torch.rand(batch, generator=generator).to(device) < prob
    return torch.where(mixed, point, torch.full_like(point, n_layers))
