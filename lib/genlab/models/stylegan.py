"""StyleGAN (Karras, Laine & Aila 2019, "A Style-Based Generator Architecture for GANs") and its Progressive GAN
baseline, as one generator and one discriminator whose switches are the rows of the paper's Table 1 (configs A-F).

The latent side (Sec. 2-3), before any synthesis layer:

* :class:`MappingNetwork` (Sec. 2, Fig. 1b): z is normalized (pixel norm), then 8 fully connected layers with leaky
  ReLU and the learning rate multiplied by 0.01 (App. C) map it to the intermediate latent w; the network also tracks
  the running mean w_avg that the truncation trick needs.
* :func:`genlab.nn.latent.truncate` (Sec. 5, App. B, "truncation trick in W"): w' = w_avg + psi (w - w_avg), optionally only for the
  layers before a cutoff (coarse styles).
* :func:`genlab.nn.latent.mix_styles` and :func:`~genlab.nn.latent.sample_crossover` (Sec. 3.1, style mixing regularization): with probability 0.9 a
  training image uses two latents, w1 for the layers before a random crossover point and w2 from it on.

Per-layer latents are (B, L, w_dim): L = the number of style inputs of the synthesis network (2 per resolution).

The synthesis side (:class:`StyleGANConfig`, :class:`Generator`, :class:`Discriminator`, :data:`CONFIGS`):

* A, Progressive GAN (Karras et al. 2018): z is pixel-normalized and a dense layer makes the 4x4 input; every layer
  is conv -> bias -> leaky ReLU -> pixel norm; nearest up / average-pool down; training grows 8 -> 16 -> 32 with
  fade-in (:class:`GrowthSchedule`); the discriminator has minibatch stddev. Equalized learning rate everywhere.
* B, "+ tuning": bilinear up/down sampling (genlab.nn.resample). (The paper's tuning also means longer training and
  tuned hyper-parameters; here every config gets the same budget.)
* C, "+ mapping and styles": the 8-layer mapping network, and AdaIN (instance norm + style from w) after every layer
  instead of pixel norm; the 4x4 input is still a dense layer, now of w.
* D, "remove traditional input": a learned 4x4x512 constant (here 4x4 x channels) starts the synthesis.
* E, "+ noise inputs": per-pixel noise with per-channel scales B before each nonlinearity.
* F, "+ mixing regularization": 90% of training images use two latents with a random crossover.

Each layer follows the official "layer epilogue": [op] -> noise -> bias -> leaky ReLU (x sqrt 2, the He gain) ->
pixel norm (A, B) or AdaIN (C-F). Images are linear RGB outputs, trained in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.adain import AdaIN
from genlab.nn.equalized import EqualizedConv2d, EqualizedLinear, scaled_lrelu
from genlab.nn.feature_stats import minibatch_stddev, pixel_norm
from genlab.nn.latent import broadcast_w, mix_styles, sample_crossover, truncate
from genlab.nn.noise import NoiseInjection, noise_maps
from genlab.nn.resample import downsample, resize_to, upsample
from genlab.tensors import check_latent



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


# ------------------------------------------------------------------------------------------------- the A-F switches
#: Table 1 of Karras et al. 2019, one row per config; each row adds one switch to the previous one.
CONFIGS: dict[str, dict] = {
    "A": dict(tuning=False, mapping=False, const_input=False, noise=False, mixing_prob=0.0),
    "B": dict(tuning=True, mapping=False, const_input=False, noise=False, mixing_prob=0.0),
    "C": dict(tuning=True, mapping=True, const_input=False, noise=False, mixing_prob=0.0),
    "D": dict(tuning=True, mapping=True, const_input=True, noise=False, mixing_prob=0.0),
    "E": dict(tuning=True, mapping=True, const_input=True, noise=True, mixing_prob=0.0),
    "F": dict(tuning=True, mapping=True, const_input=True, noise=True, mixing_prob=0.9),
}
CONFIG_NAMES = {"A": "Baseline Progressive GAN", "B": "+ Tuning (incl. bilinear up/down)",
                "C": "+ Add mapping and styles", "D": "+ Remove traditional input", "E": "+ Add noise inputs",
                "F": "+ Mixing regularization"}


def check_resolution(resolution: int, what: str = "resolution") -> int:
    """A power of two >= 4 (the synthesis starts at 4x4 and doubles), else a ValueError naming valid values."""
    if not isinstance(resolution, int) or resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"{what} must be a power of 2 >= 4 (4, 8, 16, 32, 64, ...), got {resolution!r}")
    return resolution


@dataclass
class SynthesisConfig:
    """Sizes shared by StyleGAN and StyleGAN2: ``channels(res) = min(max_channels, channel_base // res)`` feature maps
    at each resolution 4, 8, ..., resolution; two style inputs per resolution."""

    resolution: int = 32
    image_channels: int = 3
    z_dim: int = 64
    w_dim: int = 64
    max_channels: int = 64
    channel_base: int = 1024
    mapping_layers: int = 8

    def __post_init__(self):
        check_resolution(self.resolution)
        if self.image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 or 3, got {self.image_channels!r}")

    def channels(self, res: int) -> int:
        return max(1, min(self.max_channels, self.channel_base // res))

    @property
    def resolutions(self) -> list[int]:
        """4, 8, ..., resolution."""
        return [2 ** k for k in range(2, self.resolution.bit_length())]

    @property
    def n_styles(self) -> int:
        """Style inputs L: two per resolution."""
        return 2 * len(self.resolutions)


@dataclass
class StyleGANConfig(SynthesisConfig):
    """One generator/discriminator pair (sizes: :class:`SynthesisConfig`). ``start_resolution``: progressive growing
    starts there (= resolution: no growing). The five switches are the rows of Table 1; build one row with :meth:`of`."""

    start_resolution: int = 8
    tuning: bool = True
    mapping: bool = True
    const_input: bool = True
    noise: bool = True
    mixing_prob: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        check_resolution(self.start_resolution, "start_resolution")
        if self.start_resolution > self.resolution:
            raise ValueError(f"start_resolution {self.start_resolution} exceeds resolution {self.resolution}")
        if not 0 <= self.mixing_prob <= 1:
            raise ValueError(f"mixing_prob must be in [0, 1], got {self.mixing_prob!r}")
        if self.const_input and not self.mapping:
            raise ValueError("const_input needs mapping=True: without styles nothing would reach the constant "
                             "(configs D-F build on C)")
        if self.mixing_prob > 0 and not self.mapping:
            raise ValueError("mixing_prob > 0 needs mapping=True (style mixing mixes w's)")

    @classmethod
    def of(cls, config: str, **overrides) -> "StyleGANConfig":
        """The row ``config`` ("A" .. "F") of Table 1, with any size fields overridden."""
        if config not in CONFIGS:
            raise ValueError(f"unknown StyleGAN config {config!r}: use one of {', '.join(CONFIGS)} (Table 1)")
        return cls(**{**CONFIGS[config], **overrides})

    @property
    def resample(self) -> str:
        return "bilinear" if self.tuning else "nearest"


@dataclass
class GrowthSchedule:
    """Progressive growing (Karras et al. 2018, Sec. 3, Fig. 2), as a pure function of the training step.

    Train ``phase_steps`` at ``start``; then for each doubling fade the new block in over ``phase_steps`` (alpha 0 -> 1)
    and train it stable for ``phase_steps``; the last resolution stays until the end. ``start == final``: no growing.
    """

    start: int
    final: int
    phase_steps: int

    def __post_init__(self):
        check_resolution(self.start, "start")
        check_resolution(self.final, "final")
        if self.start > self.final or self.phase_steps < 1:
            raise ValueError(f"need start <= final and phase_steps >= 1, got {self}")

    def at(self, step: int) -> tuple[int, float]:
        """(resolution, alpha) at 0-based ``step``; alpha < 1 only while a new block fades in."""
        res, t = self.start, step - self.phase_steps
        while res < self.final and t >= 0:
            if t < self.phase_steps:
                return 2 * res, t / self.phase_steps
            res, t = 2 * res, t - 2 * self.phase_steps
        return res, 1.0

    @property
    def growth_steps(self) -> int:
        """Steps until the final resolution is reached and stable."""
        doublings = self.final.bit_length() - self.start.bit_length()
        return self.phase_steps * (1 + 2 * doublings)


def grow_real(x: torch.Tensor, resolution: int, alpha: float, mode: str) -> torch.Tensor:
    """Real images at the current growth stage (ProGAN Sec. 3): x (B, C, S, S) halved to ``resolution``; while a block
    fades in, blended with its own low-pass version: lerp(up(down(x_r)), x_r, alpha), as the generator's output is."""
    x = resize_to(x, resolution, mode)
    if alpha < 1:
        x = torch.lerp(upsample(downsample(x, mode), mode), x, alpha)
    return x


class _Layer(nn.Module):
    """[op] -> noise -> bias -> lrelu -> pixel norm | AdaIN. op: a 3x3 conv (after a 2x upsample if ``up``) or none."""

    def __init__(self, c: StyleGANConfig, c_in: int, c_out: int, *, conv: bool, up: bool = False):
        super().__init__()
        self.up, self.mode = up, c.resample
        self.conv = EqualizedConv2d(c_in, c_out, 3, bias=False) if conv else None
        self.noise = NoiseInjection(c_out) if c.noise else None
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.style = AdaIN(c.w_dim, c_out) if c.mapping else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.up:
            x = upsample(x, self.mode)
        if self.conv is not None:
            x = self.conv(x)
        if self.noise is not None:
            x = self.noise(x, noise)                                     # x + B_c n
        x = scaled_lrelu(x + self.bias[None, :, None, None])
        return self.style(x, w) if self.style is not None else pixel_norm(x)   # AdaIN(x, A w) | x / rms_c(x)


class Generator(nn.Module):
    """StyleGAN / Progressive GAN generator for one row of Table 1: z (B, z_dim) -> images (B, C, R, R).

    ``map(z)`` -> per-layer latents ws (B, L, w_dim) (style mixing applied in training for config F);
    ``synthesis(ws, noise=...)`` -> images; ``forward(z, psi=..., cutoff=..., noise=...)`` = both, with the truncation
    trick on ws. The growth stage (``set_growth``) decides the output resolution and fade-in alpha; after training it
    is (resolution, 1). Configs A and B have no W space: map() returns the pixel-normalized z for every layer.
    """

    def __init__(self, config: StyleGANConfig | None = None):
        super().__init__()
        self.config = c = config or StyleGANConfig()
        self.growth = (c.resolution, 1.0)
        self.mapping = MappingNetwork(c.z_dim, c.w_dim, c.mapping_layers) if c.mapping else None
        c4 = c.channels(4)
        if c.const_input:
            self.const = nn.Parameter(torch.ones(1, c4, 4, 4))                # the learned constant (init 1)
        else:
            self.input = EqualizedLinear(c.w_dim if c.mapping else c.z_dim, c4 * 16)   # traditional input: dense
        layers, rgb = [_Layer(c, c4, c4, conv=False), _Layer(c, c4, c4, conv=True)], [EqualizedConv2d(c4, c.image_channels, 1)]
        for res in c.resolutions[1:]:
            a, b = c.channels(res // 2), c.channels(res)
            layers += [_Layer(c, a, b, conv=True, up=True), _Layer(c, b, b, conv=True)]
            rgb.append(EqualizedConv2d(b, c.image_channels, 1))
        self.layers, self.to_rgb = nn.ModuleList(layers), nn.ModuleList(rgb)

    @property
    def n_styles(self) -> int:
        return self.config.n_styles

    def set_growth(self, resolution: int, alpha: float = 1.0) -> None:
        """Output ``resolution`` (4 .. config.resolution) with the newest block faded in by ``alpha`` in [0, 1]."""
        if resolution not in self.config.resolutions:
            raise ValueError(f"growth resolution must be one of {self.config.resolutions}, got {resolution!r}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"fade-in alpha must be in [0, 1], got {alpha!r}")
        self.growth = (resolution, float(alpha))

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, z_dim) -> ws (B, L, w_dim). Training mode with mixing_prob > 0: a second z and a random crossover
        among the active layers (Sec. 3.1), drawn from the global RNG."""
        c = self.config
        check_latent(z, c.z_dim, "StyleGAN Generator")
        if self.mapping is None:
            return broadcast_w(pixel_norm(z), c.n_styles)                    # ProGAN: normalized z, no W space
        w = self.mapping(z)
        if self.training and c.mixing_prob > 0:
            w2 = self.mapping(torch.randn_like(z))
            active = 2 * c.resolutions.index(self.growth[0]) + 2
            cross = sample_crossover(z.shape[0], active, c.mixing_prob, device=z.device)
            return mix_styles(w, w2, cross, c.n_styles)
        return broadcast_w(w, c.n_styles)

    def noise_shapes(self, batch: int, resolution: int | None = None) -> list[tuple[int, int, int, int]]:
        """Shapes of the noise maps, one per layer up to ``resolution`` (default: the growth stage)."""
        res = resolution or self.growth[0]
        return [(batch, 1, r, r) for r in self.config.resolutions if r <= res for _ in range(2)]

    def synthesis(self, ws: torch.Tensor, *, noise=None, return_features: bool = False):
        """ws (B, L, w_dim) -> images (B, C, r, r) at the growth stage; with ``return_features`` also the list of the
        2 per resolution feature maps (B, C_r, r, r) after each layer (for droplet pictures)."""
        c = self.config
        ws = broadcast_w(ws, c.n_styles)
        res, alpha = self.growth
        n = ws.shape[0]
        maps = noise_maps(noise, self.noise_shapes(n, res), ws.device, ws.dtype)
        if c.const_input:
            x = self.const.expand(n, -1, -1, -1)
        else:
            x = self.input(ws[:, 0]).reshape(n, -1, 4, 4)
        feats, prev = [], None
        for i, r in enumerate(c.resolutions):
            if r > res:
                break
            prev, x = x, self.layers[2 * i](x, ws[:, 2 * i], maps[2 * i])
            x = self.layers[2 * i + 1](x, ws[:, 2 * i + 1], maps[2 * i + 1])
            feats += [x]
        top = c.resolutions.index(res)
        img = self.to_rgb[top](x)
        if alpha < 1 and top > 0:                                             # fade-in: lerp(up(rgb_{r/2}), rgb_r, a)
            img = torch.lerp(upsample(self.to_rgb[top - 1](prev), c.resample), img, alpha)
        return (img, feats) if return_features else img

    def forward(self, z: torch.Tensor, *, psi: float = 1.0, cutoff: int | None = None, noise=None,
                return_features: bool = False):
        ws = self.map(z)
        if psi != 1:
            if self.mapping is None:
                raise ValueError("configs A and B have no mapping network, so no W space to truncate: use psi=1")
            ws = truncate(ws, self.mapping.w_avg, psi, cutoff=cutoff)
        return self.synthesis(ws, noise=noise, return_features=return_features)


class Discriminator(nn.Module):
    """Progressive GAN discriminator: images (B, C, r, r) at any growth resolution r -> logits (B,).

    fromRGB (1x1) at the input resolution, then per resolution conv 3x3, conv 3x3 and a 2x downsample (average pool
    for A, bilinear for B-F), down to 4x4: minibatch stddev (group 4), conv 3x3, dense, dense -> 1. While a block
    fades in (``set_growth(r, alpha)``) its input is lerp(fromRGB_{r/2}(down(x)), block_r(fromRGB_r(x)), alpha).
    """

    def __init__(self, config: StyleGANConfig | None = None, *, mbstd_group: int = 4):
        super().__init__()
        self.config = c = config or StyleGANConfig()
        self.alpha, self.mbstd_group = 1.0, mbstd_group
        self.from_rgb = nn.ModuleDict({str(r): EqualizedConv2d(c.image_channels, c.channels(r), 1)
                                       for r in c.resolutions})
        self.blocks = nn.ModuleDict({str(r): nn.ModuleList([EqualizedConv2d(c.channels(r), c.channels(r), 3),
                                                            EqualizedConv2d(c.channels(r), c.channels(r // 2), 3)])
                                     for r in c.resolutions[1:]})
        c4 = c.channels(4)
        self.final_conv = EqualizedConv2d(c4 + 1, c4, 3)
        self.final_dense = EqualizedLinear(c4 * 16, c4)
        self.out = EqualizedLinear(c4, 1)

    def set_growth(self, resolution: int, alpha: float = 1.0) -> None:
        """Only alpha matters here: the input's size says the resolution."""
        if resolution not in self.config.resolutions or not 0 <= alpha <= 1:
            raise ValueError(f"need a resolution in {self.config.resolutions} and alpha in [0, 1], got "
                             f"{resolution!r}, {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != c.image_channels or \
                x.shape[-1] not in c.resolutions or x.shape[-2] != x.shape[-1]:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"StyleGAN Discriminator expects images (B, {c.image_channels}, r, r) with r in "
                             f"{c.resolutions}, got {got}")
        res = x.shape[-1]
        h = scaled_lrelu(self.from_rgb[str(res)](x))
        for r in [q for q in reversed(c.resolutions) if 4 < q <= res]:
            conv0, conv1 = self.blocks[str(r)]
            h = downsample(scaled_lrelu(conv1(scaled_lrelu(conv0(h)))), c.resample)
            if r == res and self.alpha < 1:
                h = torch.lerp(scaled_lrelu(self.from_rgb[str(r // 2)](downsample(x, c.resample))), h, self.alpha)
        h = minibatch_stddev(h, self.mbstd_group)
        h = scaled_lrelu(self.final_conv(h))
        h = scaled_lrelu(self.final_dense(h.flatten(1)))
        return self.out(h).flatten()
