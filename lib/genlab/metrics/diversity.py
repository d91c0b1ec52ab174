"""How varied a set of samples is within each class: the mean pairwise distance between images of the same class.

    spread = within_class_spread(images, labels)      # images (N, C, H, W) uint8 or float in [0, 1], labels (N,)

spread = mean over classes c of  mean_{i < j, y_i = y_j = c} ||x_i - x_j||_2  (pixels scaled to [0, 1]). A generator
that draws one image per class has spread 0; compare with the same number on real images of those classes. Guidance
and truncation trade this spread for accuracy or quality.
"""
from __future__ import annotations

import torch


def within_class_spread(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over classes of the mean pairwise L2 distance between images of that class (classes with < 2 images are
    skipped); images (N, ...) uint8 0..255 or float in [0, 1], labels (N,) int."""
    x = images.flatten(1).double()
    x = x / 255.0 if not images.is_floating_point() else x
    spreads = []
    for c in labels.unique():
        xc = x[labels == c]
        if len(xc) < 2:
            continue
        d = torch.cdist(xc, xc)
        spreads.append(d.sum() / (len(xc) * (len(xc) - 1)))            # mean over the ordered pairs i != j
    if not spreads:
        raise ValueError("within_class_spread needs at least two images of one class")
    return float(torch.stack(spreads).mean())
