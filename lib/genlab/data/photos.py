"""Natural-image patches cut from the sample photos that ship inside the scikit-image wheel (offline, no download).

Why these photos: they are real photographs with a stated licence, they are already installed (scikit-image is a
pinned dependency), and they are PNG files, so the decoded pixels are identical on every machine (a JPEG decoder may
differ by a grey level between library versions). Photos that scikit-image fetches with ``pooch`` (eagle, lily,
kidney, ...) are not used: they need the network. Shipped photos left out, and why: ``rocket``, ``hubble_deep_field``,
``retina`` (JPEG; the last two are mostly flat black), ``cat`` (the same file as ``chelsea``), ``colorwheel``
(synthetic), ``stereo_motorcycle`` (its docstring states no licence), the grey-level photos (the set is RGB).

Split: fixed BY SOURCE PHOTO (:data:`TRAIN_PHOTOS`, :data:`TEST_PHOTOS`), so no test patch overlaps a training
patch or comes from a training photo.

Patches: a fixed grid per photo, stride ``size // 2`` (neighbouring patches overlap by half), the grid centred in the
photo; no random positions, no filtering, no resampling. ``seed`` only shuffles the order (and so picks the subset
when ``n`` is given); it never changes which photos a split uses.

Value convention: float32 in [0, 1] (``uint8 / 255``), shape (N, 3, size, size); ``grayscale=True`` gives
(N, 1, size, size), luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the weights PIL uses for mode "L").
Every step is integer arithmetic or one IEEE division, so the result is bit-identical across calls and machines.

Licences, as scikit-image's docstrings state them (``help(skimage.data.<name>)``), are in :data:`PHOTOS`: two are
CC0 by the photographer, one is public domain (NASA), one is "no known copyright restrictions" (no formal licence).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Photo:
    """One source photo: the ``skimage.data`` function that loads it, its split, and what its docstring says."""
    name: str
    split: str
    shape: tuple[int, int, int]  # (H, W, 3) uint8 as skimage.data returns it
    sha256: str  # of the decoded uint8 pixels (C order): proves every machine cuts the same patches
    licence: str
    description: str


#: The photos, in the order their patches are cut (licence text quoted from scikit-image 0.26.0's docstrings).
PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "train", (512, 512, 3),
          "a8c429c18afa7b0fd5673e598d73a21225d94c864a71bbb3885126fdecb41071",
          "public domain: NASA Great Images database, 'No known copyright restrictions, released into the public "
          "domain.'", "astronaut Eileen Collins, portrait"),
    Photo("coffee", "train", (400, 600, 3),
          "0ce2b51640b9c95f19617f03eabf40c3f0368589cc1ee1190b70966165ac184f",
          "CC0: 'No copyright restrictions. CC0 by the photographer (Rachel Michetti).'",
          "coffee cup on a wooden table (Pikolo Espresso Bar)"),
    Photo("immunohistochemistry", "train", (512, 512, 3),
          "c5b3ef509a92f16d4c29be8cf0300fe75d53e13a3ce650159db932caea8dcc1b",
          "'No known copyright restrictions.' (acquired at the Center for Microscopy And Molecular Imaging, CMMI)",
          "stained colonic glands, light microscopy"),
    Photo("chelsea", "test", (300, 451, 3),
          "416b729128bfb2c3d1eb69bf9b1734a796293abc17939267b2dc94f8a5784031",
          "CC0: 'No copyright restrictions. CC0 by the photographer (Stefan van der Walt).'",
          "Chelsea the cat"),
)
TRAIN_PHOTOS: tuple[str, ...] = tuple(p.name for p in PHOTOS if p.split == "train")
TEST_PHOTOS: tuple[str, ...] = tuple(p.name for p in PHOTOS if p.split == "test")
_BY_NAME = {p.name: p for p in PHOTOS}
MIN_SIZE = 2
MAX_SIZE = min(min(p.shape[:2]) for p in PHOTOS)  # 300: every photo must hold at least one patch


@lru_cache(maxsize=None)
def _photo_uint8(name: str) -> np.ndarray:
    """(H, W, 3) uint8, read-only, checked against :data:`PHOTOS` (decoded from the file inside the skimage wheel)."""
    import skimage.data  # lazy: importing skimage costs time that users of the other datasets should not pay

    info = _BY_NAME[name]
    img = np.ascontiguousarray(getattr(skimage.data, name)())
    if img.shape != info.shape or img.dtype != np.uint8 or hashlib.sha256(img.tobytes()).hexdigest() != info.sha256:
        raise RuntimeError(f"scikit-image's sample photo {name!r} (shape {img.shape}, {img.dtype}) is not the one this "
                           f"patch set was built from: install the pinned version (pip install scikit-image==0.26.0, "
                           f"see pyproject.toml) so every machine cuts the same patches")
    img.setflags(write=False)
    return img


def photo(name: str) -> torch.Tensor:
    """A whole source photo as (3, H, W) float32 in [0, 1]; ``name``: one of :data:`TRAIN_PHOTOS`, :data:`TEST_PHOTOS`."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown photo {name!r}: use one of {[p.name for p in PHOTOS]}")
    return torch.from_numpy(_photo_uint8(name).transpose(2, 0, 1).copy()).float() / 255.0


def grid_positions(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the patch grid: stride ``size // 2``, centred, row-major."""
    stride = max(size // 2, 1)
    ny, nx = (height - size) // stride + 1, (width - size) // stride + 1
    oy, ox = (height - size - (ny - 1) * stride) // 2, (width - size - (nx - 1) * stride) // 2
    return [(oy + i * stride, ox + j * stride) for i in range(ny) for j in range(nx)]


@lru_cache(maxsize=16)
def _patches_uint8(split: str, size: int) -> np.ndarray:
    """All grid patches of a split, (N, 3, size, size) uint8, photos in :data:`PHOTOS` order, read-only."""
    out = []
    for name in TRAIN_PHOTOS if split == "train" else TEST_PHOTOS:
        img = _photo_uint8(name)
        out += [img[y:y + size, x:x + size].transpose(2, 0, 1) for y, x in grid_positions(*img.shape[:2], size)]
    patches = np.stack(out)
    patches.setflags(write=False)
    return patches


def photo_patches(split: str = "train", size: int = 32, n: int | None = None, *, grayscale: bool = False,
                  seed: int = 0) -> torch.Tensor:
    """Natural-image patches from the scikit-image sample photos (see the module docstring for grid and split).

    split: "train" (astronaut, coffee, immunohistochemistry) or "test" (chelsea).
    size: patch side in pixels, 2..300. n: how many patches (None: all of the split's grid; at size 32 that is
    2,786 train / 459 test). seed: the order (a seeded permutation; any prefix mixes the photos) and so the subset.
    Returns (N, 3, size, size) float32 in [0, 1], or (N, 1, size, size) BT.601 luma if ``grayscale``.
    A new tensor each call (safe to modify); the cut patches are cached in memory, so repeated calls are cheap.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r} (the split is by source photo: "
                         f"train={list(TRAIN_PHOTOS)}, test={list(TEST_PHOTOS)})")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an int between {MIN_SIZE} and {MAX_SIZE} (the smallest photo side), "
                         f"got {size!r}")
    patches = _patches_uint8(split, int(size))
    order = np.random.default_rng(seed).permutation(len(patches))  # PCG64: the same stream on every machine
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(patches):
            raise ValueError(f"n must be an int between 1 and {len(patches)} (all {split} patches of size {size}), "
                             f"or None for all of them; got {n!r}. For more patches use a smaller size")
        order = order[:n]
    x = torch.from_numpy(patches[order])  # fancy indexing copies: the cache stays untouched
    if grayscale:
        x = x.to(torch.int32)
        # ITU-R BT.601 luma in integers (exact), then one division: Y = (299 R + 587 G + 114 B) / 1000
        x = (299 * x[:, 0:1] + 587 * x[:, 1:2] + 114 * x[:, 2:3]).float() / (1000.0 * 255.0)
        return x
    return x.float() / 255.0
