"""Causal self-attention over the positions of a feature map in raster order, for autoregressive priors.

A convolutional autoregressive model sees a bounded neighbourhood per layer; one attention layer lets every position
read every earlier one (the idea PixelSNAIL, Chen et al. 2018, builds on, and what VQ-VAE-2's top prior uses, Razavi
et al. 2019, Sec. 3.2). Here it is a single multi-head layer, not PixelSNAIL's full architecture:

    tokens t = raster(x) (B, N, C), N = H W;  u = [t, row / H, col / W]  (two coordinate channels: attention itself
    is blind to order)
    q, k, v = u W_q, u W_k, u W_v;   a = softmax(q k^T / sqrt(d) + M) v,   M[s, r] = 0 if r <= s else -inf
    out = a W_o  reshaped to (B, C, H, W)

Causality: position s attends to positions r <= s, itself included. That is leak-free exactly when the *input*
features at r only depend on the data before r (true for the outputs of a mask-A-first PixelCNN stack), so the
layer adds no dependence on the current or any later value. :meth:`CausalSelfAttention.step` computes one new
position from cached keys and values (incremental sampling) and equals the full forward at that position.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def coordinates(h: int, w: int, device=None) -> torch.Tensor:
    """(H W, 2) float: (row / H, col / W) of every position in raster order."""
    r, c = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([r.flatten() / h, c.flatten() / w], 1).float()


class CausalSelfAttention(nn.Module):
    """x (B, C, H, W) -> (B, C, H, W); position s reads positions r <= s in raster order. heads must divide C."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if heads < 1 or channels % heads:
            raise ValueError(f"attention heads must divide the channels: {channels} channels, {heads} heads")
        self.channels, self.heads = channels, heads
        self.qkv = nn.Linear(channels + 2, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def _split(self, u: torch.Tensor):
        q, k, v = rearrange(self.qkv(u), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        u = torch.cat([rearrange(x, "b c h w -> b (h w) c"), coordinates(h, w, x.device).expand(b, -1, -1)], -1)
        q, k, v = self._split(u)
        n = h * w
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()          # r <= s
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)                # softmax(q k^T / sqrt(d) + M) v
        return rearrange(self.proj(rearrange(a, "b h n d -> b n (h d)")), "b (h w) c -> b c h w", h=h, w=w)

    def step(self, x_t: torch.Tensor, pos: int, size: tuple[int, int], cache: dict) -> torch.Tensor:
        """One position: x_t (B, C) at raster index ``pos`` of an H x W map -> (B, C). ``cache`` (a dict, empty at
        pos 0) keeps the keys and values of positions 0..pos; call with pos = 0, 1, 2, ... in order."""
        h, w = size
        coord = torch.tensor([[pos // w / h, pos % w / w]], device=x_t.device, dtype=x_t.dtype)
        q, k, v = self._split(torch.cat([x_t, coord.expand(len(x_t), -1)], -1)[:, None])   # (B, heads, 1, d)
        cache["k"] = k if pos == 0 else torch.cat([cache["k"], k], 2)
        cache["v"] = v if pos == 0 else torch.cat([cache["v"], v], 2)
        att = torch.softmax(q @ cache["k"].transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)   # (B, heads, 1, pos+1)
        return self.proj(rearrange(att @ cache["v"], "b h one d -> b (one h d)"))
