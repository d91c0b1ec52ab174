"""The per-face fine detail (hair strands, skin mottling, freckles, background stripes) drawn from the detail seed
alone: :class:`Details`, the "noise" of the faces world."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from genlab.worlds.faces.hashing import _uniforms

N_DETAIL = 17  # uniforms per detail seed: background 4, strands 5, mottling 4, freckles 4
FRECKLE_CELL = 0.05  # freckles: at most one per cell of this size (image units), radius 0.011


@dataclass
class Details:
    """The stochastic fine detail of each face, drawn from its detail seed alone (never from the factors); every
    field is (n, 1, 1, 1) float32.

    Hair strands and skin mottling are triangle waves tri(k . p + phase) with random wave numbers and phases (the
    phases carry an offset of 64 so that every argument stays positive); freckles sit on a jittered grid of cells
    in the face frame, one where the cell's hash falls below the face's freckle density."""
    bg_cos: torch.Tensor  # background stripes: direction, period (image units), phase, wobble
    bg_sin: torch.Tensor
    bg_period: torch.Tensor
    bg_phase: torch.Tensor
    bg_wobble: torch.Tensor
    strand_k1: torch.Tensor  # hair strands along u: two waves (1 / wavelength, phase) mixed by strand_w
    strand_k2: torch.Tensor
    strand_phase1: torch.Tensor
    strand_phase2: torch.Tensor
    strand_w: torch.Tensor
    mottle_ku1: torch.Tensor  # skin mottling: the product of two waves in the face frame
    mottle_kv1: torch.Tensor
    mottle_ku2: torch.Tensor
    mottle_kv2: torch.Tensor
    mottle_phase1: torch.Tensor
    mottle_phase2: torch.Tensor
    freckle_density: torch.Tensor  # fraction of cells with a freckle (0 for a third of the faces)
    freckle_dark: torch.Tensor  # how much a freckle darkens the skin
    freckle_off_u: torch.Tensor  # offset of the cell grid, in cells: which cells a face has
    freckle_off_v: torch.Tensor

    @classmethod
    def from_seeds(cls, seeds: np.ndarray) -> Details:
        r = torch.from_numpy(_uniforms(seeds, N_DETAIL, domain=0)).T.reshape(N_DETAIL, -1, 1, 1, 1)
        angle, wave1, wave2 = math.pi * r[0], 2 * math.pi * r[9], 2 * math.pi * r[10]
        out = dict(bg_cos=torch.cos(angle), bg_sin=torch.sin(angle), bg_period=0.12 + 0.25 * r[1],
                   bg_phase=64 + r[2], bg_wobble=0.6 * r[3],
                   strand_k1=1 / (0.04 + 0.02 * r[4]), strand_k2=1 / (0.09 + 0.06 * r[5]), strand_phase1=64 + r[6],
                   strand_phase2=64 + r[7], strand_w=0.3 + 0.4 * r[8],
                   mottle_ku1=torch.cos(wave1) / 0.3, mottle_kv1=torch.sin(wave1) / 0.3,
                   mottle_ku2=torch.cos(wave2) / 0.2, mottle_kv2=torch.sin(wave2) / 0.2,
                   mottle_phase1=64 + r[11], mottle_phase2=64 + r[12],
                   freckle_density=0.35 * (1.5 * r[13] - 0.5).clamp(min=0.0), freckle_dark=0.2 + 0.2 * r[14],
                   freckle_off_u=16 + 500 * r[15], freckle_off_v=16 + 500 * r[16])
        return cls(**{k: t.to(torch.float32) for k, t in out.items()})
