"""Vector quantization for VQ-VAE / VQ-VAE-2 (van den Oord et al. 2017, "Neural Discrete Representation Learning",
Sec. 3.1-3.2 and App. A.1; Razavi et al. 2019, "Generating Diverse High-Fidelity Images with VQ-VAE-2", Sec. 3.1).

Each encoder output vector z_e(x) (one per position of a D-channel feature map) is replaced by its nearest codebook
entry e_k, k = argmin_j ||z_e - e_j||^2. The argmin has no gradient, so the decoder's gradient is copied straight
through to the encoder (the straight-through estimator):

    z_q = z_e + sg[e_k - z_e]          forward: e_k;  backward: d z_q / d z_e = I
    loss = beta ||z_e - sg[e_k]||^2  (+ ||sg[z_e] - e_k||^2 when the codebook learns by gradient)

with the commitment weight beta = 0.25. Instead of the second (codebook) term the codebook can follow exponential
moving averages of the vectors assigned to each code (VQ-VAE App. A.1, VQ-VAE-2 Eq. 2-4), decay gamma = 0.99:

    N_k <- gamma N_k + (1 - gamma) n_k             n_k: vectors assigned to code k in this batch
    m_k <- gamma m_k + (1 - gamma) sum_{i: k} z_i
    e_k  = m_k / N~_k,   N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j    (Laplace smoothing, eps = 1e-5)

N starts at 1 and m at the initial codebook (as in the vector-quantize-pytorch package), so an unused code stays put
instead of collapsing to 0. Codes no batch has used since the last :meth:`VectorQuantizer.reset_usage` are *dead*;
:meth:`~VectorQuantizer.restart_dead_codes` moves exactly those onto randomly chosen current encoder outputs (as in
Jukebox, Dhariwal et al. 2020). :meth:`~VectorQuantizer.kmeans_init` sets the codebook by k-means on a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    """What :class:`VectorQuantizer` returns. quantized (B, D, *positions): z_q with the straight-through gradient;
    codes (B, *positions) int64; loss: the scalar to add to the reconstruction loss (commitment, + codebook term without EMA);
    commitment: the unweighted ||z_e - sg[e]||^2; perplexity: exp(entropy) of this batch's code histogram;
    inputs: z_e itself (B, D, *positions), detached (what dead-code restarts draw from)."""

    quantized: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    commitment: torch.Tensor
    perplexity: torch.Tensor
    inputs: torch.Tensor | None = None


def nearest_code(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """flat (N, D), codebook (K, D) -> (N,) indices of the nearest code in squared Euclidean distance:
    ||z||^2 - 2 z.e + ||e||^2 (the first term is the same for every code and is left out)."""
    d = codebook.square().sum(1)[None, :] - 2 * flat @ codebook.T       # (N, K)
    return d.argmin(1)


def _flatten(z: torch.Tensor, dim: int) -> torch.Tensor:
    """Channel-first encoder outputs (B, D, *positions) -> (N, D) vectors, N = B * prod(positions); (N, D) passes."""
    return z if z.dim() == 2 else z.movedim(1, -1).reshape(-1, dim)      # e.g. "b d h w -> (b h w) d"


class VectorQuantizer(nn.Module):
    """Codebook of ``num_codes`` vectors of size ``dim``; forward(z_e (B, dim, *positions)) -> :class:`Quantized`.

    positions: any number of trailing axes -- (H, W) for image feature maps, (T, H, W) for video feature volumes,
    (N,) for sequences; codes come back as (B, *positions).

    ema=True: the codebook is a buffer updated by EMAs (in training mode); ema=False: a parameter learnt by the
    codebook loss. Usage since the last reset is counted in the buffer ``usage`` (K,) in training mode.
    """

    def __init__(self, num_codes: int, dim: int, *, beta: float = 0.25, ema: bool = True, decay: float = 0.99,
                 eps: float = 1e-5):
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ValueError(f"need num_codes >= 1 and dim >= 1, got {num_codes}, {dim}")
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.num_codes, self.dim, self.beta, self.ema, self.decay, self.eps = num_codes, dim, beta, ema, decay, eps
        init = torch.rand(num_codes, dim) * 2 / num_codes - 1 / num_codes       # uniform(-1/K, 1/K), as Sonnet
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_codes))          # N_k
            self.register_buffer("ema_sum", init.clone())                     # m_k
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("usage", torch.zeros(num_codes))

    def forward(self, z: torch.Tensor) -> Quantized:
        if z.dim() < 3 or z.shape[1] != self.dim:
            raise ValueError(f"VectorQuantizer expects channel-first encoder outputs (B, {self.dim}, *positions), e.g. "
                             f"(B, {self.dim}, H, W) or (B, {self.dim}, T, H, W), got {tuple(z.shape)}")
        b, positions = z.shape[0], z.shape[2:]
        flat = _flatten(z, self.dim)
        codes = nearest_code(flat.detach().float(), self.codebook.detach().float())
        e = self.codebook[codes]                                               # (N, D): e_k per position
        commitment = F.mse_loss(flat, e.detach())                              # ||z_e - sg[e]||^2
        loss = self.beta * commitment
        if not self.ema:
            loss = loss + F.mse_loss(e, flat.detach())                         # ||sg[z_e] - e||^2
        counts = torch.bincount(codes, minlength=self.num_codes).to(flat.dtype)
        if self.training:
            self.usage += counts.detach().to(self.usage.dtype)
            if self.ema:
                self._ema_update(flat.detach(), codes, counts)
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        st = flat + (e - flat).detach()                                        # straight-through: z_e + sg[e - z_e]
        return Quantized(st.view(b, *positions, self.dim).movedim(-1, 1), codes.view(b, *positions), loss,
                         commitment.detach(), perplexity.detach(), z.detach())

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat.to(self.ema_sum.dtype))   # sum_{i: k} z_i
        self.ema_count.lerp_(counts.to(self.ema_count.dtype), 1 - self.decay)          # N <- g N + (1 - g) n
        self.ema_sum.lerp_(sums, 1 - self.decay)                                        # m <- g m + (1 - g) sum
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n    # Laplace smoothing
        self.codebook.copy_(self.ema_sum / smoothed[:, None])                          # e = m / N~

    # ---------------------------------------------------------------------------------------------- codebook health
    def dead_codes(self) -> torch.Tensor:
        """Indices of the codes no training batch has used since the last :meth:`reset_usage`."""
        return torch.nonzero(self.usage == 0).flatten()

    def reset_usage(self) -> None:
        self.usage.zero_()

    @torch.no_grad()
    def restart_dead_codes(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Move every dead code onto a random encoder output of ``z`` (B, D, *positions) (or flat (N, D)); the EMA state of
        a restarted code becomes (N = 1, m = e). Returns the restarted indices; other codes are untouched."""
        dead = self.dead_codes()
        if len(dead) == 0:
            return dead
        flat = _flatten(z, self.dim)
        pick = torch.randint(len(flat), (len(dead),), generator=generator).to(flat.device)
        new = flat[pick].to(self.codebook.dtype)
        self.codebook.data[dead] = new
        if self.ema:
            self.ema_sum[dead] = new
            self.ema_count[dead] = 1.0
        self.usage[dead] = 1.0                                               # alive until the next reset
        return dead

    @torch.no_grad()
    def kmeans_init(self, z: torch.Tensor, iters: int = 10, generator: torch.Generator | None = None) -> None:
        """Lloyd's k-means on the encoder outputs z (B, D, *positions) (or (N, D)), started from random outputs; empty
        clusters keep their previous centre. Sets the codebook and restarts the EMA state (N = 1, m = e)."""
        flat = _flatten(z, self.dim).float()
        centres = flat[torch.randint(len(flat), (self.num_codes,), generator=generator).to(flat.device)].clone()
        for _ in range(iters):
            codes = nearest_code(flat, centres)
            counts = torch.bincount(codes, minlength=self.num_codes)
            sums = torch.zeros_like(centres).index_add_(0, codes, flat)
            used = counts > 0
            centres[used] = sums[used] / counts[used, None]
        self.codebook.data.copy_(centres.to(self.codebook.dtype))
        if self.ema:
            self.ema_sum.copy_(self.codebook)
            self.ema_count.fill_(1.0)

    def perplexity_of(self, codes: torch.Tensor) -> float:
        """exp(entropy) of the code histogram of ``codes`` (any shape): K if all codes are used equally, 1 if one."""
        p = torch.bincount(codes.flatten(), minlength=self.num_codes).double()
        p = p / p.sum()
        return float(torch.exp(-(p * torch.log(p.clamp_min(1e-300))).sum()))
