"""The fixed faces dataset: :func:`split_factors` (factors and detail seeds of the train / test split, from an
integer hash) and :func:`faces` (the split rendered once per process, handed out as copies)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from genlab.worlds.faces.factors import N_FACTORS, _HIGH, _LOW, _check_resolution
from genlab.worlds.faces.hashing import _uniforms
from genlab.worlds.faces.render import render_faces

N_TRAIN, N_TEST = 20_000, 5_000
SPLIT_STREAMS = {"train": 1, "test": 2}  # hash streams of the split factors (disjoint by construction)
TEST_DETAIL_OFFSET = 1_000_000  # test face i has detail seed 1,000,000 + i; train face i has detail seed i


def _split_size(split: str) -> int:
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be 'train' ({N_TRAIN} faces) or 'test' ({N_TEST} faces), got {split!r}")
    return N_TRAIN if split == "train" else N_TEST


def split_factors(split: str) -> tuple[torch.Tensor, np.ndarray]:
    """The factors (N, N_FACTORS) float32 and detail seeds (N,) int64 of a split, from the integer hash (identical
    on every machine): factor j of face i = low_j + (high_j - low_j) hash_uniform(stream, i, j)."""
    n = _split_size(split)
    u = torch.from_numpy(_uniforms(np.arange(n, dtype=np.uint64), N_FACTORS, domain=SPLIT_STREAMS[split]))
    f = (_LOW.double() + (_HIGH - _LOW).double() * u).to(torch.float32)
    seeds = np.arange(n, dtype=np.int64) + (0 if split == "train" else TEST_DETAIL_OFFSET)
    return torch.minimum(f, _HIGH), seeds


@lru_cache(maxsize=4)
def _split_uint8(split: str, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split rendered once per process: (N, 3, R, R) uint8 and its factors. Never handed out directly."""
    f, seeds = split_factors(split)
    images = torch.empty(len(f), 3, resolution, resolution, dtype=torch.uint8)
    step = 1024
    for i in range(0, len(f), step):  # bounded float memory: 1024 faces at a time
        images[i:i + step] = render_faces(f[i:i + step], resolution, detail_seeds=seeds[i:i + step]).mul_(255).round_()
    return images, f


def faces(split: str = "train", n: int | None = None, resolution: int = 64, *,
          as_uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed faces dataset: split "train" (N_TRAIN = 20,000) or "test" (N_TEST = 5,000), disjoint by seed.

    n: the first n faces (None: all). resolution: int >= 16. Returns images (N, 3, R, R) float32 in [0, 1]
    (uint8 in [0, 255] if ``as_uint8``; the float images are exactly uint8 / 255, the renderer's output rounded as
    a PNG dataset would be) and factors (N, N_FACTORS) float32. Test face i is ``render_faces(factors[i:i+1],
    detail_seeds=[1_000_000 + i])`` rounded (train: seed i). The full split is rendered once per process and
    resolution (train at 64 x 64: about 10 s on one thread, 0.25 GB of uint8), kept in memory (the last 4 splits
    asked for), and callers get copies: as float32 the whole train split at 64 x 64 is 1 GB, so pass ``n`` or
    ``as_uint8=True`` (and convert per batch) where memory is short.
    """
    size = _split_size(split)
    res = _check_resolution(resolution)
    n = size if n is None else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= size:
        raise ValueError(f"n must be an int between 1 and {size} (the size of the {split} split), or None; "
                         f"got {n!r}")
    images, factors = _split_uint8(split, res)
    x = images[:n].clone()
    return (x if as_uint8 else x.float() / 255.0), factors[:n].clone()
