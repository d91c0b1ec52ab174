"""The rendering-to-video network of Deep Video Portraits (Kim et al. 2018, Sec. 5): a space-time volume of
synthetic conditioning images -> one photo-realistic frame of the target actor.

Input: the conditioning images (shaded colour, correspondence, eye gaze: ``channels`` = 9 per frame) of the last
N_w = ``window`` frames stacked on channels, oldest first (genlab.worlds.portraits.space_time_volume), in [-1, 1]:
(B, 9 N_w, H, W). Output: the current frame (B, 3, H, W) in [-1, 1] (tanh).

:class:`RenderingToVideo`: a U-Net (Ronneberger et al. 2015, as in pix2pix): ``n_down`` encoder steps
conv4x4/2 -> InstanceNorm -> LeakyReLU(0.2) (no norm on the first), widths ngf, 2 ngf, ... capped at 8 ngf; the
decoder mirrors it, each step a transposed conv4x4/2 -> IN -> ReLU followed by a 3x3 refinement conv -> IN -> ReLU
(the paper's decoder has such refinement convolutions), with the encoder feature of the same size concatenated
(skip connections); a last transposed conv4x4/2 to 3 channels and tanh. The paper's network is deeper (8 down-
sampling steps at 256x256) and uses dropout in the decoder; we drop the dropout (deterministic outputs) and say so.

The discriminator is a conditional PatchGAN (genlab.models.pix2pix, one scale) on the volume and a frame
concatenated, (B, 9 N_w + 3, H, W): it judges whether the frame is a real one *for these conditioning images*.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.models.pix2pix import MultiscaleDiscriminator, widths
from genlab.tensors import check_image


@dataclass(frozen=True)
class RenderingToVideoConfig:
    """window: N_w frames in the volume; channels: conditioning channels per frame (9); ngf / n_down: the U-Net's
    first width and depth (H, W divisible by 2**n_down); ndf / d_layers: the conditional PatchGAN; resolution: the
    frame size it is trained for (the network itself is fully convolutional)."""

    window: int = 5
    channels: int = 9
    ngf: int = 32
    n_down: int = 4
    ndf: int = 32
    d_layers: int = 3
    resolution: int = 64
    stem: int = 16

    def __post_init__(self):
        for name in ("window", "channels", "ngf", "n_down", "ndf", "d_layers", "resolution", "stem"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "stem" else 1):
                raise ValueError(f"{name} must be an int >= {0 if name == 'stem' else 1}, got {v!r}")

    @property
    def in_channels(self) -> int:
        """Channels of the space-time volume: channels * window."""
        return self.channels * self.window


class RenderingToVideo(nn.Module):
    """volume (B, 9 N_w, H, W) in [-1, 1] -> frame (B, 3, H, W) in [-1, 1]."""

    def __init__(self, config: RenderingToVideoConfig | None = None):
        super().__init__()
        self.config = c = config or RenderingToVideoConfig()
        w = widths(c.ngf, c.n_down)                                 # w[0..n_down-1]: encoder outputs
        enc: list[nn.Module] = [nn.Sequential(nn.Conv2d(c.in_channels, w[0], 4, 2, 1), nn.LeakyReLU(0.2, True))]
        for i in range(1, c.n_down):
            enc.append(nn.Sequential(nn.Conv2d(w[i - 1], w[i], 4, 2, 1), nn.InstanceNorm2d(w[i], affine=True),
                                     nn.LeakyReLU(0.2, True)))
        self.encoder = nn.ModuleList(enc)
        dec: list[nn.Module] = []
        for i in range(c.n_down - 1, 0, -1):                        # up from w[i] (+ skip) to w[i - 1]
            c_in = w[i] if i == c.n_down - 1 else 2 * w[i]
            dec.append(nn.Sequential(nn.ConvTranspose2d(c_in, w[i - 1], 4, 2, 1), nn.InstanceNorm2d(w[i - 1], affine=True),
                                     nn.ReLU(True), nn.Conv2d(w[i - 1], w[i - 1], 3, 1, 1),
                                     nn.InstanceNorm2d(w[i - 1], affine=True), nn.ReLU(True)))
        self.decoder = nn.ModuleList(dec)
        last = 2 * w[0] if c.n_down > 1 else w[0]
        if c.stem:                                                  # a full-resolution skip for pixel-sized detail
            self.stem = nn.Sequential(nn.Conv2d(c.in_channels, c.stem, 3, 1, 1), nn.LeakyReLU(0.2, True))
            self.up_full = nn.Sequential(nn.ConvTranspose2d(last, c.stem, 4, 2, 1), nn.InstanceNorm2d(c.stem, affine=True),
                                         nn.ReLU(True))
            self.to_rgb = nn.Sequential(nn.Conv2d(2 * c.stem, 3, 3, 1, 1), nn.Tanh())
        else:
            self.to_rgb = nn.Sequential(nn.ConvTranspose2d(last, 3, 4, 2, 1), nn.Tanh())

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        c = self.config
        check_image(volume, f"RenderingToVideo input (a space-time volume of N_w = {c.window} frames x {c.channels} "
                            f"channels)", channels=c.in_channels)
        if volume.shape[-1] % 2 ** c.n_down or volume.shape[-2] % 2 ** c.n_down:
            raise ValueError(f"RenderingToVideo: H and W must be divisible by 2**n_down = {2 ** c.n_down}, got "
                             f"{tuple(volume.shape[-2:])}")
        skips, x = [], volume
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        for i, block in enumerate(self.decoder):                    # skips[-1] is x itself: concat from the next
            x = block(x if i == 0 else torch.cat([x, skips[-1 - i]], 1))
        x = x if c.n_down == 1 else torch.cat([x, skips[0]], 1)
        if c.stem:
            return self.to_rgb(torch.cat([self.up_full(x), self.stem(volume)], 1))
        return self.to_rgb(x)


def make_discriminator(config: RenderingToVideoConfig) -> MultiscaleDiscriminator:
    """The conditional PatchGAN on (volume, frame): (B, 9 N_w + 3, H, W) -> patch logits (B, 1, h, w)."""
    return MultiscaleDiscriminator(config.in_channels + 3, config.ndf, config.d_layers, num_scales=1)
