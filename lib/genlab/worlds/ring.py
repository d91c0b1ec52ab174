"""The 2-D toy of the GAN notebook: a ring of Gaussians, the classic mode-collapse benchmark (Metz et al. 2017,
"Unrolled Generative Adversarial Networks", Sec. 3.1; Srivastava et al. 2017, VEEGAN, Sec. 5).

p(x) = (1/K) sum_k N(x; c_k, std^2 I),  c_k = radius * (cos(2 pi k / K), sin(2 pi k / K))

Samples are float32 (N, 2). The exact mode centres and std are known, so genlab.metrics.modes can count which modes a
generator covers and which share of its samples is "high quality" (within 3 std of some mode).
"""
from __future__ import annotations

import math

import torch


def ring_centres(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The K mode centres on a circle: (K, 2), mode k at angle 2 pi k / K."""
    if n_modes < 1 or radius <= 0:
        raise ValueError(f"need n_modes >= 1 and radius > 0, got {n_modes}, {radius}")
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return (radius * torch.stack([angle.cos(), angle.sin()], 1)).float()


def ring_of_gaussians(n: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.05, *,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples of the mixture: points (n, 2) float32 and the mode each was drawn from (n,) int64 (uniform)."""
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    mode = torch.randint(n_modes, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator)
    return ring_centres(n_modes, radius)[mode] + std * noise, mode
