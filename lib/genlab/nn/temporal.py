"""Temporal layers: a convolutional GRU cell (Ballas et al. 2016, Eq. 3-6; DVD-GAN's recurrent generator, Clark et
al. 2019, Sec. 3) and helpers for running an image network over the frames of a clip.

ConvGRU: the GRU's matrix products become 3x3 convolutions, so the hidden state is a feature map:

    z_t = sigmoid(W_z * x_t + U_z * h_{t-1})            update gate
    r_t = sigmoid(W_r * x_t + U_r * h_{t-1})            reset gate
    n_t = tanh(W_n * x_t + U_n * (r_t . h_{t-1}))       candidate
    h_t = (1 - z_t) . h_{t-1} + z_t . n_t
"""
from __future__ import annotations

import torch
from torch import nn


class ConvGRUCell(nn.Module):
    """forward(x (B, C_in, H, W), h (B, C_h, H, W) or None) -> h' (B, C_h, H, W); None starts from zeros."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-size maps), got {kernel_size}")
        self.hidden_channels = hidden_channels
        pad = kernel_size // 2
        self.x_gates = nn.Conv2d(in_channels, 3 * hidden_channels, kernel_size, padding=pad)            # W_z, W_r, W_n
        self.h_gates = nn.Conv2d(hidden_channels, 2 * hidden_channels, kernel_size, padding=pad, bias=False)  # U_z, U_r
        self.h_cand = nn.Conv2d(hidden_channels, hidden_channels, kernel_size, padding=pad, bias=False)   # U_n

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        wz, wr, wn = self.x_gates(x).chunk(3, dim=1)
        uz, ur = self.h_gates(h).chunk(2, dim=1)
        z = torch.sigmoid(wz + uz)                                   # update gate
        r = torch.sigmoid(wr + ur)                                   # reset gate
        n = torch.tanh(wn + self.h_cand(r * h))                      # candidate
        return torch.lerp(h, n, z)                                   # (1 - z) h + z n


def per_frame(net: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Run an image network on every frame: (B, T, ...) -> (B, T, ...) (time folded into the batch)."""
    b, t = clips.shape[:2]
    out = net(clips.reshape(b * t, *clips.shape[2:]))
    return out.reshape(b, t, *out.shape[1:])
