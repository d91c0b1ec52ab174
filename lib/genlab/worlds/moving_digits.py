"""Moving digits: MNIST-5k digits bouncing in a box, with exact ground truth per frame (a seeded Moving-MNIST
stand-in, after Srivastava et al. 2015, for the video notebooks).

Each clip holds 1 or 2 digits. A digit is a sprite of side ``sprite = round(size * 28 / 64)`` (14 px in a 32x32 box,
28 px in a 64x64 box: the same share of the frame as Moving MNIST's 28-px digits in 64x64), cut from MNIST 5k --
the *train* split's digits for the train split of clips, the *test* split's digits for the test split, so a network
judged on test clips has never seen their digits. Its top-left corner p_t moves with constant speed and bounces
elastically off the walls (the reflection keeps |v|):

    p_{t+1} = p_t + v_t;   if p_{t+1} < 0:  p_{t+1} = -p_{t+1},      v_{t+1} = -v_t   (per axis)
                           if p_{t+1} > L:  p_{t+1} = 2 L - p_{t+1},  v_{t+1} = -v_t,   L = size - sprite

Speeds are uniform in ``speed`` pixels per frame, directions uniform on the circle; digits are drawn at the rounded
position and overlap with max (as in Moving MNIST). Frames are (B, T, 1, S, S) float in [0, 1]; ground truth:
positions and velocities (B, T, K, 2) as (x, y) in pixels (float, before rounding), labels (B, K), and the number
of digits per clip (B,) (the second digit of a 1-digit clip has label -1 and zero velocity).

Everything is a function of (split, index, seed): clip i of a split is the same on every machine and for every n.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from genlab.data.mnist import mnist5k

SIZES = (32, 64)
SPLIT_STREAMS = {"train": 1, "test": 2}      # disjoint seed streams per split


@dataclass
class Clips:
    """A batch of moving-digit clips and their ground truth (shapes above); ``speed`` (B, K) in pixels/frame."""

    videos: torch.Tensor
    positions: torch.Tensor
    velocities: torch.Tensor
    labels: torch.Tensor
    n_digits: torch.Tensor

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def speed(self) -> torch.Tensor:
        return self.velocities[:, 0].norm(dim=-1)


def sprite_size(size: int) -> int:
    return round(size * 28 / 64)


@lru_cache(maxsize=4)
def _sprites(split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's MNIST-5k digits resized (area) to the sprite size: (N, s, s) in [0, 1], labels (N,); computed once
    per process (a training loop asks for a few clips every step). Callers only index them (which copies)."""
    x, y = mnist5k(split)
    s = sprite_size(size)
    if s != 28:
        x = F.interpolate(x, size=(s, s), mode="area")
    return x[:, 0], y


def _check(split: str, size: int, frames: int, digits) -> tuple[int, int]:
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES} (pixels), got {size!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames!r}")
    lo, hi = (digits, digits) if isinstance(digits, int) else tuple(digits)
    if not 1 <= lo <= hi <= 2:
        raise ValueError(f"digits must be 1, 2 or (1, 2), got {digits!r}")
    return lo, hi


def trajectories(p0: torch.Tensor, v0: torch.Tensor, frames: int, box: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bouncing motion: start positions and velocities (..., 2) -> positions, velocities (..., T, 2), frame 0 first;
    every coordinate stays in [0, box] and every reflection keeps the speed (the equations above)."""
    p, v = p0.clone().double(), v0.clone().double()
    ps, vs = [], []
    for _ in range(frames):
        ps.append(p.clone())
        vs.append(v.clone())
        p = p + v
        low, high = p < 0, p > box
        p = torch.where(low, -p, torch.where(high, 2 * box - p, p))      # reflect off the wall
        v = torch.where(low | high, -v, v)
        p = p.clamp(0, box)                                               # a speed above 2 * box could overshoot
    return torch.stack(ps, -2).float(), torch.stack(vs, -2).float()


def moving_digits(split: str = "train", n: int = 1000, *, frames: int = 16, size: int = 32, digits=1,
                  speed: tuple[float, float] = (1.0, 3.0), start: int = 0, seed: int = 0) -> Clips:
    """Clips ``start .. start + n - 1`` of a split (see the module doc for shapes and value ranges).

    digits: 1, 2 or (1, 2) (each clip draws 1 or 2); speed: (min, max) pixels per frame; frames: T (16 by default;
    longer clips for drift tests); seed: another world with the same rules (0 is the course's).
    """
    lo, hi = _check(split, size, frames, digits)
    if not 0 <= speed[0] <= speed[1]:
        raise ValueError(f"speed must be (min, max) with 0 <= min <= max pixels per frame, got {speed!r}")
    sprites, sprite_labels = _sprites(split, size)
    s, box = sprites.shape[-1], size - sprites.shape[-1]
    k = 2
    # clip i's numbers come from its own stream (seed, split, i): the same clip for every n and start
    idx = range(start, start + n)
    draws = np.stack([np.random.default_rng([seed, SPLIT_STREAMS[split], i]).random(1 + 5 * k) for i in idx]) \
        if n else np.zeros((0, 1 + 5 * k))
    n_digits = torch.from_numpy(lo + np.minimum(np.floor(draws[:, 0] * (hi - lo + 1)), hi - lo).astype(np.int64))
    d = torch.from_numpy(draws[:, 1:]).float().view(n, k, 5)          # per digit: sprite, x0, y0, speed, direction
    which = (d[..., 0] * len(sprites)).long().clamp(max=len(sprites) - 1)          # (n, k) sprite indices
    p0 = d[..., 1:3] * box                                                          # (n, k, 2) start in [0, box]
    mag = speed[0] + d[..., 3] * (speed[1] - speed[0])
    angle = d[..., 4] * 2 * math.pi
    v0 = torch.stack([mag * torch.cos(angle), mag * torch.sin(angle)], -1)
    present = torch.arange(k)[None, :] < n_digits[:, None]                          # (n, k)
    v0 = v0 * present[..., None]
    pos, vel = trajectories(p0, v0, frames, float(box))                            # (n, k, T, 2)
    videos = torch.zeros(n, frames, size, size)
    rows = torch.arange(s)
    b_idx = torch.arange(n)[:, None, None, None]
    t_idx = torch.arange(frames)[None, :, None, None]
    for j in range(k):
        if not present[:, j].any():
            continue
        xy = pos[:, j].round().long()                                               # (n, T, 2)
        r = (xy[..., 1][..., None] + rows)[..., :, None]                            # (n, T, s, 1)
        c = (xy[..., 0][..., None] + rows)[..., None, :]                            # (n, T, 1, s)
        layer = torch.zeros_like(videos)
        layer[b_idx, t_idx, r, c] = (sprites[which[:, j]] * present[:, j, None, None])[:, None]
        videos = torch.maximum(videos, layer)
    labels = torch.where(present, sprite_labels[which], torch.full_like(which, -1))
    return Clips(videos[:, :, None], pos.transpose(1, 2).contiguous(), vel.transpose(1, 2).contiguous(), labels,
                 n_digits)
