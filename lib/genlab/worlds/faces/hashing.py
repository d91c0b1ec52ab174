"""Counter-based random numbers: integer hashes (SplitMix64) that give the same uniforms on every machine, for the
per-face detail seeds and the factors of the fixed dataset split."""
from __future__ import annotations

import numpy as np


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijective mix of uint64 (numpy's uint64 wraps mod 2^64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniforms(keys: np.ndarray, count: int, domain: int) -> np.ndarray:
    """(n, count) float64 in [0, 1): the top 53 bits of hash(hash(domain, key) + counter). Integer maths only, so the
    numbers are the same on every machine; ``domain`` separates the streams (detail vs split factors)."""
    with np.errstate(over="ignore"):
        base = _splitmix64(_splitmix64(np.uint64(domain) << np.uint64(40)) ^ keys.astype(np.uint64))
        z = _splitmix64(base[:, None] + np.arange(count, dtype=np.uint64)[None, :])
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
