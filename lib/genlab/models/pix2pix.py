"""pix2pixHD-lite (Wang et al. 2018, "High-Resolution Image Synthesis and Semantic Manipulation with Conditional
GANs", Sec. 3.2): label map -> image, one frame at a time.

* :class:`GlobalGenerator` (G1): c7s1-ngf, ``n_down`` stride-2 convolutions, ``n_blocks`` residual blocks, ``n_down``
  transposed convolutions, c7s1-3 + tanh; instance norm and ReLU as in the paper (reflection padding at the 7x7
  convolutions).
* :class:`LocalEnhancer` (G2, the gpu profile): a front end at full resolution whose features are *added* to the last
  feature map of a G1 run on the 2x-downsampled labels, then residual blocks and one up-sampling
  (Sec. 3.2, "coarse-to-fine generator").
* :class:`PatchDiscriminator`: the 70x70-style PatchGAN (pix2pix, Isola et al. 2017): 4x4 convolutions, stride 2
  ``n_layers`` times, leaky ReLU 0.2, instance norm, one logit per patch.
* :class:`MultiscaleDiscriminator` (Sec. 3.2, "multi-scale discriminators"): ``num_scales`` PatchGANs of the same
  architecture on the input average-pooled 1x, 2x, 4x, ...; ``features`` returns every intermediate map of every scale
  for the feature-matching loss (Eq. 4, :func:`genlab.losses.feature_matching`).
  ``forward`` returns the per-scale logit maps nearest-upsampled to the finest map's size and stacked
  (B, num_scales, h, w): a loss averaged over that tensor is the average over scales of each scale's mean, the
  paper's sum over D_1..D_k up to the constant 1 / k.

Conditional inputs are one-hot label maps (B, K, H, W); the discriminators see the label map and the image
concatenated on channels (pix2pixHD's D(s, x)). Images are in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.tensors import check_image


@dataclass(frozen=True)
class Pix2PixConfig:
    """num_classes: K label channels in; ngf: G1's first width (doubling per down-sampling, capped at 8 ngf);
    n_down: G1's down-sampling steps; n_blocks: G1's residual blocks; local: add the local enhancer (G2) with
    n_blocks_local blocks; ndf / d_layers / num_scales: the multi-scale PatchGAN."""

    num_classes: int = 8
    out_channels: int = 3
    ngf: int = 32
    n_down: int = 2
    n_blocks: int = 4
    local: bool = False
    n_blocks_local: int = 2
    ndf: int = 32
    d_layers: int = 3
    num_scales: int = 2


def widths(ngf: int, n_down: int) -> list[int]:
    """Channel widths of an encoder with n_down stride-2 steps: ngf doubling per step, capped at 8 ngf."""
    return [min(ngf * 2 ** i, 8 * ngf) for i in range(n_down + 1)]


def conv_block(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    """Conv(k x k, stride) -> InstanceNorm -> ReLU, reflection-padded ("c7s1-k" / "dk" in the paper)."""
    pad = (k - 1) // 2
    return nn.Sequential(nn.ReflectionPad2d(pad) if stride == 1 else nn.ZeroPad2d(pad),
                         nn.Conv2d(c_in, c_out, k, stride), nn.InstanceNorm2d(c_out), nn.ReLU(True))


def up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Transposed conv 3x3, stride 2, x2 in size -> InstanceNorm -> ReLU ("uk")."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 3, 2, padding=1, output_padding=1),
                         nn.InstanceNorm2d(c_out), nn.ReLU(True))


class ResidualBlock(nn.Module):
    """x + F(x), F = (pad, conv3x3, IN, ReLU, pad, conv3x3, IN) ("Rk", after Johnson et al. 2016)."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def to_rgb(c_in: int, c_out: int = 3) -> nn.Sequential:
    """c7s1-3 then tanh: features -> image in [-1, 1]."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c_in, c_out, 7), nn.Tanh())


class GlobalGenerator(nn.Module):
    """G1: labels (B, K, H, W) -> image (B, 3, H, W) in [-1, 1]; H, W divisible by 2**n_down.
    ``features(labels)`` is the map before the last c7s1-3 (B, ngf, H, W), which the local enhancer adds to."""

    def __init__(self, config: Pix2PixConfig | None = None, in_channels: int | None = None):
        super().__init__()
        self.config = c = config or Pix2PixConfig()
        w = widths(c.ngf, c.n_down)
        layers: list[nn.Module] = [conv_block(in_channels or c.num_classes, w[0], 7)]
        layers += [conv_block(w[i], w[i + 1], 3, 2) for i in range(c.n_down)]
        layers += [ResidualBlock(w[-1]) for _ in range(c.n_blocks)]
        layers += [up_block(w[i + 1], w[i]) for i in reversed(range(c.n_down))]
        self.body = nn.Sequential(*layers)
        self.head = to_rgb(w[0], c.out_channels)

    def features(self, labels: torch.Tensor) -> torch.Tensor:
        return self.body(labels)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        check_image(labels, "GlobalGenerator input (one-hot labels)")
        return self.head(self.body(labels))


class LocalEnhancer(nn.Module):
    """G = {G1, G2}: labels (B, K, H, W) -> (B, 3, H, W). G2's front end (c7s1-ngf/2, d-ngf) at full resolution plus
    G1's features on the labels downsampled 2x (Sec. 3.2: "the element-wise sum of two feature maps"), then
    n_blocks_local residual blocks and one up-sampling back to H, W."""

    def __init__(self, config: Pix2PixConfig):
        super().__init__()
        self.config = c = config
        self.global_g = GlobalGenerator(config)
        half = max(c.ngf // 2, 8)
        self.front = nn.Sequential(conv_block(c.num_classes, half, 7), conv_block(half, c.ngf, 3, 2))
        self.blocks = nn.Sequential(*[ResidualBlock(c.ngf) for _ in range(c.n_blocks_local)], up_block(c.ngf, half))
        self.head = to_rgb(half, c.out_channels)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        check_image(labels, "LocalEnhancer input (one-hot labels)")
        coarse = F.avg_pool2d(labels, 2)                       # G1 runs at half resolution
        h = self.front(labels) + self.global_g.features(coarse)
        return self.head(self.blocks(h))


def make_generator(config: Pix2PixConfig) -> nn.Module:
    """G1 alone, or G1 inside the local enhancer when ``config.local``."""
    return LocalEnhancer(config) if config.local else GlobalGenerator(config)


class PatchDiscriminator(nn.Module):
    """x (B, C, H, W) -> list of feature maps, the last being the patch logits (B, 1, H / 2**n_layers, W / 2**n_layers).

    C4-ndf (no norm), C4-2ndf, ..., stride 2 n_layers times, then a stride-1 C4 and a 1-channel C4 (pix2pix)."""

    def __init__(self, in_channels: int, ndf: int = 32, n_layers: int = 3):
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True))]
        c = ndf
        for i in range(1, n_layers):
            c_out = min(c * 2, 8 * ndf)
            blocks.append(nn.Sequential(nn.Conv2d(c, c_out, 4, 2, 1), nn.InstanceNorm2d(c_out), nn.LeakyReLU(0.2, True)))
            c = c_out
        c_out = min(c * 2, 8 * ndf)
        blocks.append(nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c, c_out, 4, 1), nn.InstanceNorm2d(c_out),
                                    nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(c_out, 1, 4, 1)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out


class MultiscaleDiscriminator(nn.Module):
    """D_1..D_k on x, x pooled 2x, 4x, ...: x (B, C, H, W) with C = label + image channels (or any input).

    forward -> (B, k, h, w) logits (each scale's map nearest-upsampled to the finest one, h = H / 2**n_layers);
    features -> per scale, the list of its intermediate maps (the last is the logit map)."""

    def __init__(self, in_channels: int, ndf: int = 32, n_layers: int = 3, num_scales: int = 2):
        super().__init__()
        self.in_channels = in_channels
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_layers) for _ in range(num_scales))

    def features(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"discriminator expects (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)   # pix2pixHD's down-sampler
            out.append(d(x))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [f[-1] for f in self.features(x)]
        size = maps[0].shape[-2:]
        return torch.cat([F.interpolate(m, size=size, mode="nearest") for m in maps], dim=1)
