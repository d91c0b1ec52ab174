"""Masked (causal) convolutions: PixelCNN's masks "A" and "B" (van den Oord et al. 2016, "Pixel Recurrent Neural
Networks", Sec. 3.4 and Fig. 4), including the R -> G -> B ordering of colour channels.

An autoregressive image model factorizes p(x) = prod_i p(x_i | x_<i) over pixels in raster order (row by row, left to
right) and, inside a pixel, over colours R, G, B. A convolution respects that order if its output at pixel (r, c)
only reads

* input pixels above, or to the left in the same row (the kernel positions strictly before the centre), and
* at the centre position itself, only colour groups allowed by the mask type:
  mask "A" (first layer, reads the image): input group g' feeds output group g only if g' < g  (R sees nothing of its
  own pixel, G sees R, B sees R and G);
  mask "B" (every later layer, reads features): g' <= g (a feature of colour g may use the features of colour g, which
  already exclude the pixel's own value of g and later colours).

Channel layout: with ``colour_groups=G`` the channels of a tensor are split into G contiguous blocks of equal size,
block 0 = R, 1 = G, 2 = B (for grey images G = 1 and the groups play no role: mask A hides the centre, B keeps it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_KINDS = ("A", "B")


def _pair(k: int | tuple[int, int]) -> tuple[int, int]:
    kh, kw = (k, k) if isinstance(k, int) else tuple(k)
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the centre is the current pixel), got {k!r}")
    return kh, kw


def channel_groups(channels: int, colour_groups: int) -> torch.Tensor:
    """Colour group of each channel: (channels,) int64, contiguous blocks ``[0]*n + [1]*n + ...``, n = channels / G."""
    if colour_groups < 1 or channels % colour_groups:
        raise ValueError(f"{channels} channels cannot be split into {colour_groups} equal colour groups: use a "
                         f"channel count divisible by {colour_groups}")
    return torch.arange(channels) // (channels // colour_groups)


def causal_mask(kind: str, kernel_size: int | tuple[int, int], in_channels: int, out_channels: int,
                colour_groups: int = 1) -> torch.Tensor:
    """The exact 0/1 mask of a causal convolution's weight: (out_channels, in_channels, kh, kw) float32.

    mask[o, i, a, b] = 1  if kernel position (a, b) lies before the centre in raster order,
                     = [group(i) <  group(o)]  at the centre for kind "A",
                     = [group(i) <= group(o)]  at the centre for kind "B",
                     = 0  after the centre.
    E.g. a 3x3 grey mask A is [[1,1,1],[1,0,0],[0,0,0]] and mask B is [[1,1,1],[1,1,0],[0,0,0]].
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be 'A' (first layer) or 'B' (later layers), got {kind!r}")
    kh, kw = _pair(kernel_size)
    ci, co = kh // 2, kw // 2
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    mask[:, :, :ci, :] = 1.0                      # rows above the centre
    mask[:, :, ci, :co] = 1.0                     # left of the centre in its row
    g_in = channel_groups(in_channels, colour_groups)
    g_out = channel_groups(out_channels, colour_groups)
    allowed = g_in[None, :] < g_out[:, None] if kind == "A" else g_in[None, :] <= g_out[:, None]
    mask[:, :, ci, co] = allowed.float()          # the centre: colour ordering R -> G -> B
    return mask


class MaskedConv2d(nn.Conv2d):
    """Convolution that only sees pixels above, and to the left in the current row (PixelCNN, van den Oord 2016,
    Sec. 3.4). mask "A" (first layer) also hides the centre pixel; mask "B" (later layers) lets it through; with
    ``colour_groups=3`` the centre follows R -> G -> B (see :func:`causal_mask`).

    x: (B, C_in, H, W) -> (B, C_out, H, W)   ("same" zero padding, stride 1)
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 colour_groups: int = 1, bias: bool = True):
        kh, kw = _pair(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type, self.colour_groups = mask_type, colour_groups
        self.register_buffer("mask", causal_mask(mask_type, (kh, kw), in_channels, out_channels, colour_groups),
                             persistent=False)

    def masked_weight(self) -> torch.Tensor:
        """W * M: the weight the layer really applies, (C_out, C_in, kh, kw)."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)

    def forward_at(self, x_padded: torch.Tensor, row: int, col: int, pad: int) -> torch.Tensor:
        """The output at one position only, as the full :meth:`forward` would compute it (used by cached sampling).

        x_padded: (B, C_in, H + 2*pad, W + 2*pad), the layer's input zero-padded by ``pad >= kh//2, kw//2`` on each side.
        Returns (B, C_out).
        """
        kh, kw = self.kernel_size
        r0, c0 = pad + row - kh // 2, pad + col - kw // 2
        window = x_padded[:, :, r0:r0 + kh, c0:c0 + kw]
        return F.conv2d(window, self.masked_weight(), self.bias).flatten(1)

    def extra_repr(self) -> str:
        return f"mask={self.mask_type!r}, colour_groups={self.colour_groups}, " + super().extra_repr()
