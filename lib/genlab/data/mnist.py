"""MNIST 5k: 5,000 real MNIST digits (500 per class) shipped in data/mnist5k.npz, with a fixed 4000/1000 split.

Value convention: images are float32 in [0, 1] with shape (N, 1, 28, 28) (``as_uint8=True`` gives the raw uint8 in
[0, 255], what 256-way softmax models predict); labels are int64 in [0, 9], shape (N,).
The split is stratified (400 train / 100 test per class) and fixed by a seeded permutation, identical on every machine.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from genlab.paths import data_dir, embedded_file

SPLIT_SEED = 20240405
N_TRAIN_PER_CLASS = 400


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Fixed stratified split: per class, a seeded permutation; the first 400 go to train, the rest to test."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        train.append(idx[:N_TRAIN_PER_CLASS])
        test.append(idx[N_TRAIN_PER_CLASS:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    # interleave classes so any prefix is roughly balanced
    return {"train": train_idx[rng.permutation(len(train_idx))], "test": test_idx[rng.permutation(len(test_idx))]}


@lru_cache(maxsize=4)
def _load(folder: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Read and checksum the file in ``folder`` once per process (evaluations call :func:`mnist5k` often)."""
    with np.load(embedded_file("mnist5k.npz")) as z:
        images, labels = z["images"], z["labels"]
    return images, labels, split_indices(labels)


def mnist5k(split: str = "train", *, as_uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the embedded MNIST 5k split.

    split: "train" (4000), "test" (1000) or "all" (5000, original order).
    Returns images (N, 1, 28, 28) float32 in [0, 1] (uint8 in [0, 255] if ``as_uint8``) and labels (N,) int64.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    images, labels, splits = _load(str(data_dir()))
    idx = splits[split] if split != "all" else np.arange(len(labels))
    images, labels = images[idx], labels[idx]  # fancy indexing copies: callers may modify what they get
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return (x if as_uint8 else x.float() / 255.0), y
