"""DVD-GAN-lite (Clark, Donahue & Simonyan 2019, "Adversarial Video Generation on Complex Datasets", Sec. 3): a
recurrent generator and two cheap critics instead of one expensive one.

* :class:`RecurrentGenerator`: z -> a 4x4 map, upsampled to 8x8; a ConvGRU (genlab.nn.temporal) unrolled over the
  frames at 8x8, fed at every step with the z map plus a fresh per-frame noise map; a shared 2-D decoder turns each
  hidden state into a 32x32 frame. The number of frames is free.
* The dual discriminators decompose the critic: D_S (:class:`SpatialDiscriminator`) scores ``k`` randomly sampled
  full-resolution frames of each clip, each frame on its own, and sums their scores -- image quality;
  D_T (genlab.models.videogan.VideoDiscriminator on the clip average-pooled 2x2 in space) scores the whole clip at
  half resolution -- motion. :func:`random_frames` and :func:`pool_clip` are the views each sees: the pixels a critic
  reads per clip are k H W (D_S) and T H W / 4 (D_T) instead of T H W (:func:`pixel_ratio`).

The paper trains with the hinge loss, spectral norm in G and both critics, and an EMA of G's weights; here spectral
norm is in the critics only (small-scale, CPU). Clips are (B, T, C, 32, 32) in [-1, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.models.videogan import VideoGANConfig
from genlab.nn.noise import draw_noise
from genlab.nn.temporal import ConvGRUCell
from genlab.tensors import check_latent, check_video


def random_frames(clips: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """D_S's view: k distinct frames per clip, drawn uniformly without replacement and kept in time order
    (B, T, C, H, W) -> (B, k, C, H, W). Draws from the global RNG unless a generator is given."""
    b, t = clips.shape[:2]
    if not 1 <= k <= t:
        raise ValueError(f"k must be in [1, T={t}], got {k}")
    idx = torch.rand(b, t, generator=generator).argsort(1)[:, :k].sort(1).values.to(clips.device)   # (B, k)
    return clips[torch.arange(b, device=clips.device)[:, None], idx]


def pool_clip(clips: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """D_T's view: every frame average-pooled factor x factor: (B, T, C, H, W) -> (B, T, C, H / f, W / f)."""
    b, t = clips.shape[:2]
    pooled = F.avg_pool2d(clips.flatten(0, 1), factor)                  # (B T, C, H / f, W / f)
    return pooled.view(b, t, *pooled.shape[1:])


def pixel_ratio(frames: int, size: int, k: int, factor: int = 2) -> float:
    """Pixels D_S + D_T read per clip over those of one full-resolution full-clip critic:
    (k S^2 + T S^2 / f^2) / (T S^2) = k / T + 1 / f^2."""
    return (k * size * size + frames * (size // factor) ** 2) / (frames * size * size)


class RecurrentGenerator(nn.Module):
    """z (B, z_dim) -> clip (B, T, C, S, S) in [-1, 1], S = config.size (32 or 64), any T (default config.frames);
    ``noise``: the per-frame
    noise maps (None: global RNG; a torch.Generator; or a tensor (B, T, eps_dim, 8, 8))."""

    def __init__(self, config: VideoGANConfig | None = None):
        super().__init__()
        self.config = c = config or VideoGANConfig()
        w = c.width
        self.hidden = 4 * w
        self.project = nn.Sequential(nn.Linear(c.z_dim, 4 * w * 16, bias=False), nn.Unflatten(1, (4 * w, 4, 4)),
                                     nn.BatchNorm2d(4 * w), nn.ReLU(True), nn.Upsample(scale_factor=2),
                                     nn.Conv2d(4 * w, 4 * w, 3, 1, 1, bias=False), nn.BatchNorm2d(4 * w),
                                     nn.ReLU(True))                                         # z -> (B, 4w, 8, 8)
        self.gru = ConvGRUCell(4 * w + c.eps_dim, self.hidden)
        extra = [nn.ConvTranspose2d(w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True)] \
            if c.size == 64 else []                                                                            # 64
        self.decode = nn.Sequential(
            nn.BatchNorm2d(self.hidden), nn.ReLU(True),
            nn.ConvTranspose2d(self.hidden, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),  # 16
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),                # 32
            *extra, nn.Conv2d(w, c.channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, frames: int | None = None, noise=None) -> torch.Tensor:
        c = self.config
        check_latent(z, c.z_dim, "RecurrentGenerator")
        t = frames or c.frames
        base = self.project(z)                                                      # (B, 4w, 8, 8)
        eps = draw_noise(noise, (z.shape[0], t, c.eps_dim, 8, 8), z.device, base.dtype)
        h, states = None, []
        for i in range(t):
            h = self.gru(torch.cat([base, eps[:, i]], 1), h)                        # h_t = ConvGRU([z map, eps_t], h)
            states.append(h)
        out = self.decode(torch.stack(states, 1).flatten(0, 1))                     # every frame in one batch
        return out.view(z.shape[0], t, *out.shape[1:])


class SpatialDiscriminator(nn.Module):
    """D_S: frames (B, k, C, S, S) in [-1, 1], S = ``size`` (32 or 64) -> (B,) = the sum of each frame's score (a 2-D
    conv critic with spectral norm: S -> S/2 -> S/4 -> S/8 -> one logit)."""

    def __init__(self, channels: int = 1, width: int = 16, size: int = 32):
        super().__init__()
        w, self.channels = width, channels
        cells = (size // 8) ** 2
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, w, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            spectral_norm(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)), nn.LeakyReLU(0.2, True),
            nn.Flatten(), spectral_norm(nn.Linear(4 * w * cells, 1)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        check_video(frames, "SpatialDiscriminator (k frames per clip)", channels=self.channels)
        b, k = frames.shape[:2]
        return self.net(frames.flatten(0, 1)).view(b, k).sum(1)                     # sum over the k frames
