"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), config F of its Table 1,
in pure PyTorch.

What changes from StyleGAN (genlab.models.stylegan):

* AdaIN is replaced by modulated convolutions with weight demodulation (Sec. 2.2, genlab.nn.modulated): no
  normalization of the activations, so no droplet artifacts. Noise and bias are added *after* the convolution, outside
  the style block (Fig. 2c).
* The skip generator (Sec. 4.1, Fig. 7b): every resolution has a modulated 1x1 tRGB (no demodulation) whose output
  is added to the upsampled RGB image of the resolution below; no progressive growing.
* The residual discriminator (Fig. 7c): fromRGB once at the input, then residual blocks
  (conv 3x3, conv 3x3, down) + (down, 1x1) combined with 1/sqrt(2).
* Regularization (genlab.train.gan): lazy R1 every 16 minibatches, path-length regularization every 4 minibatches with
  weight 2 and decay 0.01 (Sec. 3.2, Eq. 4), on half the batch; the generator's EMA is what gets shipped.

The mapping network, truncation and style mixing are StyleGAN's. Per-layer latents: L = 2 per resolution (block r
uses ws[2k-1] and ws[2k] for its convs and ws[2k+1] for its tRGB, k = log2(r) - 2), as in the official code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.models.stylegan import MappingNetwork, SynthesisConfig
from genlab.nn.equalized import EqualizedConv2d, EqualizedLinear, scaled_lrelu
from genlab.nn.latent import broadcast_w, mix_styles, sample_crossover, truncate
from genlab.nn.feature_stats import minibatch_stddev
from genlab.nn.modulated import ModulatedConv2d
from genlab.nn.noise import NoiseInjection, noise_maps
from genlab.nn.resample import downsample, upsample
from genlab.tensors import check_latent

_INV_SQRT2 = 2 ** -0.5


@dataclass
class StyleGAN2Config(SynthesisConfig):
    """Sizes as StyleGAN's (:class:`SynthesisConfig`); ``demodulate=False`` keeps the architecture but drops Eq. 3
    (an ablation)."""

    mixing_prob: float = 0.9
    demodulate: bool = True

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.mixing_prob <= 1:
            raise ValueError(f"mixing_prob must be in [0, 1], got {self.mixing_prob!r}")


class _StyledConv(nn.Module):
    """modulated 3x3 conv (demodulated) -> noise -> bias -> lrelu x sqrt(2)  (Fig. 2c)."""

    def __init__(self, c: StyleGAN2Config, c_in: int, c_out: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, c.w_dim, demodulate=c.demodulate, up=up)
        self.noise = NoiseInjection(c_out)
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x, w, noise):
        return scaled_lrelu(self.noise(self.conv(x, w), noise) + self.bias[None, :, None, None])


class _ToRGB(nn.Module):
    """modulated 1x1 conv without demodulation, + bias (linear output)."""

    def __init__(self, c: StyleGAN2Config, c_in: int):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c.image_channels, 1, c.w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(c.image_channels))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None]


class Generator(nn.Module):
    """StyleGAN2 skip generator: z (B, z_dim) -> images (B, C, R, R); same interface as the StyleGAN Generator
    (map, synthesis, forward with psi / cutoff / noise / return_features). ``pl_mean`` (a buffer) is the running
    mean path length of the path-length regularizer."""

    def __init__(self, config: StyleGAN2Config | None = None):
        super().__init__()
        self.config = c = config or StyleGAN2Config()
        self.growth = (c.resolution, 1.0)                                      # never grows; kept for a common API
        self.mapping = MappingNetwork(c.z_dim, c.w_dim, c.mapping_layers)
        c4 = c.channels(4)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        convs, rgbs = [_StyledConv(c, c4, c4)], [_ToRGB(c, c4)]
        for res in c.resolutions[1:]:
            a, b = c.channels(res // 2), c.channels(res)
            convs += [_StyledConv(c, a, b, up=True), _StyledConv(c, b, b)]
            rgbs.append(_ToRGB(c, b))
        self.convs, self.to_rgb = nn.ModuleList(convs), nn.ModuleList(rgbs)
        self.register_buffer("pl_mean", torch.zeros(()))

    @property
    def n_styles(self) -> int:
        return self.config.n_styles

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) -> ws (B, L, w_dim), with style mixing in training (probability mixing_prob)."""
        c = self.config
        check_latent(z, c.z_dim, "StyleGAN2 Generator")
        w = self.mapping(z)
        if self.training and c.mixing_prob > 0:
            cross = sample_crossover(z.shape[0], c.n_styles, c.mixing_prob, device=z.device)
            return mix_styles(w, self.mapping(torch.randn_like(z)), cross, c.n_styles)
        return broadcast_w(w, c.n_styles)

    def noise_shapes(self, batch: int, resolution: int | None = None) -> list[tuple[int, int, int, int]]:
        """One (B, 1, r, r) map per styled conv: one at 4x4, two at every other resolution."""
        return [(batch, 1, 4, 4)] + [(batch, 1, r, r) for r in self.config.resolutions[1:] for _ in range(2)]

    def synthesis(self, ws: torch.Tensor, *, noise=None, return_features: bool = False):
        """ws (B, L, w_dim) -> images (B, C, R, R) (+ the feature map after every styled conv)."""
        c = self.config
        ws = broadcast_w(ws, c.n_styles)
        n = ws.shape[0]
        maps = noise_maps(noise, self.noise_shapes(n), ws.device, ws.dtype)
        x = self.convs[0](self.const.expand(n, -1, -1, -1), ws[:, 0], maps[0])
        img, feats = self.to_rgb[0](x, ws[:, 1]), [x]
        for k in range(1, len(c.resolutions)):
            x = self.convs[2 * k - 1](x, ws[:, 2 * k - 1], maps[2 * k - 1])
            x = self.convs[2 * k](x, ws[:, 2 * k], maps[2 * k])
            img = upsample(img, "bilinear") + self.to_rgb[k](x, ws[:, 2 * k + 1])   # skip: sum of upsampled tRGBs
            feats.append(x)
        return (img, feats) if return_features else img

    def forward(self, z: torch.Tensor, *, psi: float = 1.0, cutoff: int | None = None, noise=None,
                return_features: bool = False):
        ws = self.map(z)
        if psi != 1:
            ws = truncate(ws, self.mapping.w_avg, psi, cutoff=cutoff)
        return self.synthesis(ws, noise=noise, return_features=return_features)


class _ResBlock(nn.Module):
    """(conv 3x3 -> conv 3x3 -> down) + (down -> 1x1 conv, no bias), times 1/sqrt(2)  (Fig. 7c)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqualizedConv2d(c_in, c_in, 3)
        self.conv1 = EqualizedConv2d(c_in, c_out, 3)
        self.skip = EqualizedConv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        y = downsample(scaled_lrelu(self.conv1(scaled_lrelu(self.conv0(x)))), "bilinear")
        return (y + self.skip(downsample(x, "bilinear"))) * _INV_SQRT2


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: images (B, C, R, R) -> logits (B,)."""

    def __init__(self, config: StyleGAN2Config | None = None, *, mbstd_group: int = 4):
        super().__init__()
        self.config = c = config or StyleGAN2Config()
        self.mbstd_group = mbstd_group
        self.from_rgb = EqualizedConv2d(c.image_channels, c.channels(c.resolution), 1)
        self.blocks = nn.ModuleList(_ResBlock(c.channels(r), c.channels(r // 2)) for r in reversed(c.resolutions[1:]))
        c4 = c.channels(4)
        self.final_conv = EqualizedConv2d(c4 + 1, c4, 3)
        self.final_dense = EqualizedLinear(c4 * 16, c4)
        self.out = EqualizedLinear(c4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        shape = (c.image_channels, c.resolution, c.resolution)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"StyleGAN2 Discriminator expects images (B, {', '.join(map(str, shape))}), got {got}")
        h = scaled_lrelu(self.from_rgb(x))
        for block in self.blocks:
            h = block(h)
        h = scaled_lrelu(self.final_conv(minibatch_stddev(h, self.mbstd_group)))
        return self.out(scaled_lrelu(self.final_dense(h.flatten(1)))).flatten()
