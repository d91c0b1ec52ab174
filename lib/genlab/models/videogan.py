"""Video GANs, two ways to seed a clip (the lecture's "one z for the video" vs "a z per frame"), and a 3-D conv critic.

* :class:`SingleZGenerator` -- one latent decoded to the whole clip by 3-D transposed convolutions (as in VGAN,
  Vondrick et al. 2016, without its foreground/background streams): the clip length T is fixed by the architecture,
  and once z is drawn the whole future is fixed.
* :class:`MotionContentGenerator` -- MoCoGAN's decomposition (Tulyakov et al. 2018, Sec. 3): a content code z_C
  fixed per clip and a motion code per frame, z_M(t) = h_t of a GRU driven by fresh noise eps_t (Eq. 3), decoded frame
  by frame by one image generator G_I([z_C, z_M(t)]). It can run for any number of frames, also past the length it
  was trained on (the drift experiment of notebook 07).
* :class:`VideoDiscriminator` -- a 3-D convolutional critic of whole clips (spectral norm, leaky ReLU).

Clips are (B, T, C, H, W) in [-1, 1] (tanh); H = W = 32. Latents z are (B, z_dim) ~ N(0, I); the per-frame noise of
the motion GRU is drawn from ``noise``: None (the global RNG, what training uses: checkpoints restore it), a
``torch.Generator`` (repeatable samples: genlab.nn.inference.generate passes one), or a tensor (B, T, eps_dim).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.nn.noise import draw_noise
from genlab.tensors import check_latent, check_video


@dataclass
class VideoGANConfig:
    """frames: T of the single-z generator (fixed) and the default length of the others; size: H = W (32; the
    recurrent generator of genlab.models.dvdgan also makes 64);
    z_dim: latent size (the motion-content generator splits it into content_dim + the GRU's initial state);
    width: channels of the generators' last hidden layer (doubled per halving of the size); d_width: the critic's
    first layer; content_dim, eps_dim: MoCoGAN's content code and per-frame noise sizes."""

    frames: int = 16
    size: int = 32
    channels: int = 1
    z_dim: int = 64
    width: int = 16
    d_width: int = 16
    content_dim: int = 48
    eps_dim: int = 8

    def __post_init__(self):
        if self.size not in (32, 64) or self.frames < 2 or self.frames % 8:
            raise ValueError(f"video GANs here make 32x32 (or 64x64) clips of a multiple of 8 frames, got "
                             f"size={self.size}, frames={self.frames}")
        if not 0 < self.content_dim < self.z_dim:
            raise ValueError(f"content_dim must be in (0, z_dim), got {self.content_dim} of {self.z_dim}")


def _up3d(c_in: int, c_out: int, time: bool = True) -> list[nn.Module]:
    k, s, p = ((4, 4, 4), (2, 2, 2), (1, 1, 1)) if time else ((3, 4, 4), (1, 2, 2), (1, 1, 1))
    return [nn.ConvTranspose3d(c_in, c_out, k, s, p, bias=False), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True)]


class SingleZGenerator(nn.Module):
    """z (B, z_dim) -> clip (B, T, C, 32, 32) in [-1, 1], T = config.frames (fixed): (T/8, 4, 4) -> x2 -> x2 -> x2."""

    def __init__(self, config: VideoGANConfig | None = None):
        super().__init__()
        self.config = c = config or VideoGANConfig()
        if c.size != 32:
            raise ValueError(f"SingleZGenerator makes 32x32 clips, got size={c.size}")
        w = c.width
        self.t0 = c.frames // 8
        self.project = nn.Sequential(nn.Linear(c.z_dim, 8 * w * self.t0 * 16, bias=False),
                                     nn.Unflatten(1, (8 * w, self.t0, 4, 4)), nn.BatchNorm3d(8 * w), nn.ReLU(True))
        self.net = nn.Sequential(*_up3d(8 * w, 4 * w), *_up3d(4 * w, 2 * w), *_up3d(2 * w, w),   # T/8 -> T, 4 -> 32
                                 nn.Conv3d(w, c.channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        check_latent(z, self.config.z_dim, "SingleZGenerator")
        if frames is not None and frames != self.config.frames:
            raise ValueError(f"a single-z generator makes clips of exactly {self.config.frames} frames (its "
                             f"architecture fixes T); asked for {frames}")
        return self.net(self.project(z)).transpose(1, 2)                  # (B, C, T, H, W) -> (B, T, C, H, W)


class FrameGenerator(nn.Module):
    """DCGAN-style image generator: code (N, d) -> frame (N, C, 32, 32) in [-1, 1]; 4 -> 8 -> 16 -> 32."""

    def __init__(self, code_dim: int, width: int, channels: int):
        super().__init__()
        w = width

        def up(c_in, c_out):
            return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        self.net = nn.Sequential(nn.ConvTranspose2d(code_dim, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w),
                                 nn.ReLU(True), *up(8 * w, 4 * w), *up(4 * w, 2 * w),
                                 nn.ConvTranspose2d(2 * w, channels, 4, 2, 1), nn.Tanh())

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code[:, :, None, None])


class MotionContentGenerator(nn.Module):
    """z (B, z_dim) = [z_C (content_dim) | h_0 (z_dim - content_dim)] -> clip (B, T, C, 32, 32) in [-1, 1].

    z_M(t) = h_t, h_t = GRU(eps_t, h_{t-1}), eps_t ~ N(0, I) (MoCoGAN, Eq. 3); frame t = G_I([z_C, z_M(t)]).
    ``frames`` may be any T >= 1 (default config.frames); ``noise`` as in the module doc.
    """

    def __init__(self, config: VideoGANConfig | None = None):
        super().__init__()
        self.config = c = config or VideoGANConfig()
        if c.size != 32:
            raise ValueError(f"MotionContentGenerator makes 32x32 clips, got size={c.size}")
        self.motion_dim = c.z_dim - c.content_dim
        self.gru = nn.GRUCell(c.eps_dim, self.motion_dim)
        self.frame = FrameGenerator(c.z_dim, c.width, c.channels)

    def motion_codes(self, h0: torch.Tensor, frames: int, noise=None) -> torch.Tensor:
        """(B, motion_dim) -> z_M (B, T, motion_dim)."""
        eps = draw_noise(noise, (h0.shape[0], frames, self.config.eps_dim), h0.device, h0.dtype)
        h, out = h0, []
        for t in range(frames):
            h = self.gru(eps[:, t], h)
            out.append(h)
        return torch.stack(out, 1)

    def forward(self, z: torch.Tensor, frames: int | None = None, noise=None) -> torch.Tensor:
        c = self.config
        check_latent(z, c.z_dim, "MotionContentGenerator")
        t = frames or c.frames
        content, h0 = z[:, :c.content_dim], z[:, c.content_dim:]
        zm = self.motion_codes(h0, t, noise)                                        # (B, T, motion_dim)
        codes = torch.cat([content[:, None].expand(-1, t, -1), zm], 2)              # [z_C, z_M(t)]
        frames_ = self.frame(codes.flatten(0, 1))                                   # every frame in one batch
        return frames_.view(z.shape[0], t, *frames_.shape[1:])


class VideoDiscriminator(nn.Module):
    """Whole-clip critic: clip (B, T, C, S, S) in [-1, 1], T a multiple of 8 (or any T >= 8 with ``time_stride``
    halving it), S = 32 or 16 -> logits (B,). Three strided 3-D convs (spectral norm, leaky ReLU 0.2), a linear head.
    ``time_stride=False`` keeps T (for a spatially pooled clip whose frames are few)."""

    def __init__(self, channels: int = 1, width: int = 16, size: int = 32, frames: int = 16):
        super().__init__()
        w, self.size, self.frames, self.channels = width, size, frames, channels
        layers, c_in, t, s = [], channels, frames, size
        for c_out in (w, 2 * w, 4 * w):
            st = 2 if t >= 4 else 1
            layers += [spectral_norm(nn.Conv3d(c_in, c_out, (4 if st == 2 else 3, 4, 4), (st, 2, 2),
                                               (1, 1, 1))), nn.LeakyReLU(0.2, inplace=True)]
            c_in, t, s = c_out, t // st, s // 2
        self.net = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(c_in * t * s * s, 1))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_video(clips, "VideoDiscriminator", channels=self.channels, frames=self.frames)
        if clips.shape[-1] != self.size:
            raise ValueError(f"VideoDiscriminator was built for {self.size}x{self.size} frames, got "
                             f"{tuple(clips.shape[-2:])}")
        return self.head(self.net(clips.transpose(1, 2)).flatten(1)).flatten()
