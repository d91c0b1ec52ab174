"""Small MLP generator and discriminator for 2-D toy data (a Gaussian, a ring of 8 Gaussians).

On 2-D data a GAN's failures can be seen and counted: which modes of a ring of Gaussians the generator covers (mode
collapse; the unrolled-GAN paper, Metz et al. 2017, uses the same mixture), and how the saturating and non-saturating
losses behave (Goodfellow et al. 2014, Sec. 3). Both networks plug into genlab.train.gan like the DCGAN ones.
"""
from __future__ import annotations

import torch
from torch import nn

from genlab.tensors import check_latent


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> points (B, out_dim): two hidden ReLU layers of ``hidden`` units, a linear (unbounded) output."""

    def __init__(self, z_dim: int = 2, hidden: int = 64, out_dim: int = 2):
        super().__init__()
        self.z_dim = z_dim
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, out_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_latent(z, self.z_dim, "MLPGenerator")
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """points x (B, in_dim) -> logits (B,): two hidden leaky-ReLU (0.2) layers of ``hidden`` units, no batch norm."""

    def __init__(self, in_dim: int = 2, hidden: int = 64):
        super().__init__()
        self.in_dim = in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLPDiscriminator expects points of shape (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x).squeeze(1)
