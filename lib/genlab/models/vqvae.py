"""VQ-VAE (van den Oord et al. 2017) and the two-level VQ-VAE-2 (Razavi et al. 2019, Sec. 3.1, Fig. 2a).

* :class:`VQVAE`: encoder (strided 4x4 convs, 3x3 conv, residual blocks) -> one code map at 1/``downsample`` of the
  input -> :class:`~genlab.nn.quantize.VectorQuantizer` -> decoder (residual blocks, transposed 4x4 convs).
* :class:`VQVAE2`: the bottom encoder halves the input twice (1/4), the top encoder once more (1/8). The top codes
  are quantized first; a top decoder upsamples them to 1/4 and the bottom quantizer sees the bottom features *and*
  that decoded top, so the bottom codes only need to add what the top cannot say (local detail). The image decoder
  reads both: the upsampled top codes concatenated with the bottom codes.

Images are (B, C, H, W) in [-1, 1] with H, W divisible by the total downsampling (8 for VQ-VAE-2); the reconstruction
loss is the MSE, plus each quantizer's commitment (and codebook) loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.quantize import Quantized, VectorQuantizer


class ResBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), as in VQ-VAE (Sec. 4.1): channels -> channels."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, channels, 1))

    def forward(self, x):
        return x + self.net(x)


def encoder(c_in: int, channels: int, halvings: int, n_res: int, res_hidden: int) -> nn.Sequential:
    """``halvings`` strided 4x4 convs (each halves H, W), a 3x3 conv, n_res residual blocks, ReLU."""
    layers, c = [], c_in
    for i in range(halvings):
        out = channels if i == halvings - 1 else max(channels // 2, 1)
        layers += [nn.Conv2d(c, out, 4, stride=2, padding=1), nn.ReLU()]
        c = out
    layers += [nn.Conv2d(c, channels, 3, padding=1), *[ResBlock(channels, res_hidden) for _ in range(n_res)], nn.ReLU()]
    return nn.Sequential(*layers)


def decoder(c_in: int, c_out: int, channels: int, doublings: int, n_res: int, res_hidden: int) -> nn.Sequential:
    """A 3x3 conv, n_res residual blocks, ReLU, ``doublings`` transposed 4x4 convs (each doubles H, W)."""
    layers = [nn.Conv2d(c_in, channels, 3, padding=1), *[ResBlock(channels, res_hidden) for _ in range(n_res)],
              nn.ReLU()]
    c = channels
    for i in range(doublings):
        last = i == doublings - 1
        out = c_out if last else max(channels // 2, 1)
        layers += [nn.ConvTranspose2d(c, out, 4, stride=2, padding=1)] + ([] if last else [nn.ReLU()])
        c = out
    return nn.Sequential(*layers)


@dataclass
class VQVAEConfig:
    """channels: hidden width; embed_dim: code vector size; num_codes: codebook size (per level); downsample: the
    one-level model's total downsampling (a power of 2); ema: EMA codebooks (False: learnt by gradient);
    bottom_codes: VQ-VAE-2's bottom codebook size if it differs from num_codes (0: the same)."""

    image_channels: int = 3
    channels: int = 64
    res_hidden: int = 32
    n_res: int = 2
    embed_dim: int = 32
    num_codes: int = 256
    downsample: int = 4
    beta: float = 0.25
    ema: bool = True
    decay: float = 0.99
    bottom_codes: int = 0

    def __post_init__(self):
        d = self.downsample
        if d < 2 or d & (d - 1):
            raise ValueError(f"downsample must be a power of 2 >= 2, got {d!r}")


def check_images(x: torch.Tensor, channels: int, multiple: int, model: str) -> None:
    """(B, C, H, W) float with H and W divisible by ``multiple``, else a ValueError that names the fix."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{model} expects float images (B, {channels}, H, W) in [-1, 1], got {got}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"{model} needs H and W divisible by {multiple} (its total downsampling), got {h}x{w}: "
                         f"crop or resize to e.g. {max(multiple, h // multiple * multiple)}x"
                         f"{max(multiple, w // multiple * multiple)}")


@dataclass
class VQVAEOutput:
    """recon (B, C, H, W); loss = MSE(recon, x) + the quantizers' losses; levels: {"top"/"bottom" or "codes":
    Quantized}; recon_loss: the MSE alone."""

    recon: torch.Tensor
    loss: torch.Tensor
    recon_loss: torch.Tensor
    levels: dict[str, Quantized]


class VQVAE(nn.Module):
    """One-level VQ-VAE: x (B, C, H, W) -> codes (B, H/d, W/d) -> reconstruction."""

    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = c = config or VQVAEConfig()
        k = c.downsample.bit_length() - 1
        self.enc = encoder(c.image_channels, c.channels, k, c.n_res, c.res_hidden)
        self.pre_quant = nn.Conv2d(c.channels, c.embed_dim, 1)
        self.quantizer = VectorQuantizer(c.num_codes, c.embed_dim, beta=c.beta, ema=c.ema, decay=c.decay)
        self.dec = decoder(c.embed_dim, c.image_channels, c.channels, k, c.n_res, c.res_hidden)

    def encode(self, x: torch.Tensor) -> Quantized:
        check_images(x, self.config.image_channels, self.config.downsample, "VQVAE")
        return self.quantizer(self.pre_quant(self.enc(x)))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) int64 -> images (B, C, h d, w d)."""
        return self.dec(self.quantizer.codebook[codes].permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        q = self.encode(x)
        recon = self.dec(q.quantized)
        mse = F.mse_loss(recon, x)
        return VQVAEOutput(recon, mse + q.loss, mse, {"codes": q})


class VQVAE2(nn.Module):
    """Two-level VQ-VAE-2: x (B, C, H, W) -> top codes (B, H/8, W/8) and bottom codes (B, H/4, W/4) -> recon."""

    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = c = config or VQVAEConfig()
        e = c.embed_dim
        self.enc_b = encoder(c.image_channels, c.channels, 2, c.n_res, c.res_hidden)             # -> 1/4
        self.enc_t = encoder(c.channels, c.channels, 1, c.n_res, c.res_hidden)                   # -> 1/8
        self.pre_quant_t = nn.Conv2d(c.channels, e, 1)
        self.quant_t = VectorQuantizer(c.num_codes, e, beta=c.beta, ema=c.ema, decay=c.decay)
        self.dec_t = decoder(e, e, c.channels, 1, c.n_res, c.res_hidden)                        # 1/8 -> 1/4
        self.pre_quant_b = nn.Conv2d(c.channels + e, e, 1)
        self.quant_b = VectorQuantizer(c.bottom_codes or c.num_codes, e, beta=c.beta, ema=c.ema, decay=c.decay)
        self.up_t = nn.ConvTranspose2d(e, e, 4, stride=2, padding=1)                            # top codes to 1/4
        self.dec = decoder(2 * e, c.image_channels, c.channels, 2, c.n_res, c.res_hidden)       # 1/4 -> 1

    def encode(self, x: torch.Tensor) -> tuple[Quantized, Quantized]:
        """x -> (top, bottom) :class:`Quantized`."""
        check_images(x, self.config.image_channels, 8, "VQVAE2")
        h_b = self.enc_b(x)
        top = self.quant_t(self.pre_quant_t(self.enc_t(h_b)))
        bottom = self.quant_b(self.pre_quant_b(torch.cat([h_b, self.dec_t(top.quantized)], 1)))
        return top, bottom

    def decode(self, q_top: torch.Tensor, q_bottom: torch.Tensor) -> torch.Tensor:
        """Quantized vectors (B, e, H/8, W/8) and (B, e, H/4, W/4) -> images (B, C, H, W)."""
        return self.dec(torch.cat([self.up_t(q_top), q_bottom], 1))

    def decode_codes(self, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        """Code maps (B, H/8, W/8) and (B, H/4, W/4) int64 -> images (B, C, H, W)."""
        if bottom.shape[-2:] != (2 * top.shape[-2], 2 * top.shape[-1]):
            raise ValueError(f"the bottom code map must be twice the top one's size, got {tuple(top.shape)} and "
                             f"{tuple(bottom.shape)}")
        emb = lambda vq, c: vq.codebook[c].permute(0, 3, 1, 2)                       # noqa: E731
        return self.decode(emb(self.quant_t, top), emb(self.quant_b, bottom))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        top, bottom = self.encode(x)
        recon = self.decode(top.quantized, bottom.quantized)
        mse = F.mse_loss(recon, x)
        return VQVAEOutput(recon, mse + top.loss + bottom.loss, mse, {"top": top, "bottom": bottom})
