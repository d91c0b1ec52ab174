"""Perceptual path length (Karras et al. 2019, Sec. 4.2, Eq. 2 in W), measured in the face regressor's feature
space -- *not* the VGG-LPIPS distance of the paper, whose weights cannot be downloaded here.

    l_W = E[ d(g(lerp(w1, w2, t)), g(lerp(w1, w2, t + eps))) / eps^2 ],   z1, z2 ~ N(0, I), w = f(z), t ~ U(0, 1)

d is the squared Euclidean distance between the regressor's penultimate features (genlab.metrics.fid's "faces"
space, the same embedding FID-faces uses), eps = 1e-4, both images of a pair share their noise maps, and as in the
paper's code the values outside the 1st-99th percentile are dropped before averaging. A short path length means a
smooth latent space: a small step in W changes the image a little. Comparable only between generators scored in the
same feature space at the same resolution.
"""
from __future__ import annotations

import torch
from torch import nn

from genlab.metrics.fid import feature_space
from genlab.nn.eval_mode import evaluating


@torch.no_grad()
def perceptual_path_length(G: nn.Module, n: int = 1000, *, space: str | nn.Module = "faces", eps: float = 1e-4,
                           seed: int = 0, batch_size: int = 100, device: torch.device | str = "cpu") -> float:
    """PPL in W of a StyleGAN/StyleGAN2 generator (needs ``G.mapping`` and ``G.synthesis``), from n pairs.

    Repeatable: z, t and the noise come from a generator seeded with ``seed``; G is used in eval mode.
    """
    if getattr(G, "mapping", None) is None:
        raise ValueError("perceptual_path_length needs a generator with a mapping network (a W space): "
                         "StyleGAN configs C-F or StyleGAN2")
    net = feature_space(space, device)
    g = torch.Generator().manual_seed(seed)
    dist = []
    with evaluating(G):
        for i in range(0, n, batch_size):
            b = min(batch_size, n - i)
            z = torch.randn(2 * b, G.config.z_dim, generator=g).to(device)
            t = torch.rand(b, 1, generator=g).to(device)
            w = G.mapping(z)
            w1, w2 = w[:b], w[b:]
            wt = torch.cat([torch.lerp(w1, w2, t), torch.lerp(w1, w2, t + eps)])      # the two ends of a step
            maps = [m.repeat(2, 1, 1, 1) for m in
                    (torch.randn(s, generator=g).to(device) for s in G.noise_shapes(b))]  # same noise in a pair
            img = (G.synthesis(wt, noise=maps).float().clamp(-1, 1) + 1) / 2
            f = net(img)
            dist.append((f[:b] - f[b:]).square().sum(1) / eps ** 2)                 # d(., .) / eps^2
    d = torch.cat(dist).double()
    lo, hi = torch.quantile(d, 0.01), torch.quantile(d, 0.99)
    return float(d[(d >= lo) & (d <= hi)].mean())
