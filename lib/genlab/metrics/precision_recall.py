"""Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models", Sec. 2) in a feature space: quality and coverage measured separately, where FID mixes them.

Each set's manifold is the union of balls around its points, the radius of a ball the distance to that point's k-th
nearest neighbour in the same set (k = 3 in the paper):

    precision = share of generated points inside the real manifold     (are the samples realistic?)
    recall    = share of real points inside the generated manifold     (is all of the data covered?)

    p, r = precision_recall(features(real, "faces"), features(fake, "faces"))

Truncation should raise precision and lower recall. The paper embeds with VGG-16; here any :func:`genlab.metrics.fid.
features` space (the face regressor's, offline).
"""
from __future__ import annotations

import torch

from genlab.metrics.fid import Features


def _values(x: torch.Tensor | Features) -> torch.Tensor:
    return (x.values if isinstance(x, Features) else x).double()


def knn_radii(x: torch.Tensor, k: int = 3, batch_size: int = 1000) -> torch.Tensor:
    """(N, d) -> (N,): each point's distance to its k-th nearest other point of the same set."""
    if not 1 <= k < len(x):
        raise ValueError(f"k = {k} needs more than k points, got {len(x)}")
    out = []
    for i in range(0, len(x), batch_size):
        d = torch.cdist(x[i:i + batch_size], x)                     # (b, N); column i + j is the point itself (0)
        out.append(d.kthvalue(k + 1, dim=1).values)                 # k + 1: skip the zero distance to itself
    return torch.cat(out)


def coverage_share(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of ``points`` (M, d) inside at least one ball (``centres`` (N, d), ``radii`` (N,))."""
    inside = []
    for i in range(0, len(points), batch_size):
        d = torch.cdist(points[i:i + batch_size], centres)          # (b, N)
        inside.append((d <= radii[None, :]).any(1))
    return float(torch.cat(inside).double().mean())


def precision_recall(real: torch.Tensor | Features, fake: torch.Tensor | Features, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of the generated features ``fake`` against the real features ``real`` (each (N, d) or
    :class:`Features` of one space)."""
    if isinstance(real, Features) and isinstance(fake, Features) and real.space != fake.space:
        raise ValueError(f"features from different spaces: {real.space!r} vs {fake.space!r}")
    r, f = _values(real), _values(fake)
    precision = coverage_share(f, r, knn_radii(r, k))
    recall = coverage_share(r, f, knn_radii(f, k))
    return precision, recall
