"""What the face regressor says about a generator of the faces world: which factors follow which styles (style mixing,
Karras et al. 2019, Sec. 3.1, Fig. 3), what the noise inputs change (Sec. 3.2), and how diverse the faces are.

The regressor reads the 20 factors of genlab.worlds.faces back from an image (normalized units, about [-1, 1]); its
provenance says how well (test R^2 ~ 0.85 at 32x32). For mixing, image A uses w_a everywhere except the layers that
take w_b; the share of a factor that follows B is the least-squares slope of the mixed image's change against the
A -> B change, over all pairs:

    share = sum_pairs (f(mix) - f(A)) (f(B) - f(A)) / sum_pairs (f(B) - f(A))^2

1 means the factor comes entirely from B's styles, 0 entirely from A's.
"""
from __future__ import annotations

import torch
from torch import nn

from genlab.metrics.fid import feature_space
from genlab.nn.eval_mode import evaluating
from genlab.nn.latent import mix_layers
from genlab.worlds.faces import FACTOR_NAMES

#: factor groups, by name in genlab.worlds.faces.FACTOR_NAMES
POSE = ("yaw", "pitch", "roll")
COLOUR = ("skin_tone", "hair_hue", "hair_lightness", "eye_hue", "bg_hue")


def regressor(device: torch.device | str = "cpu") -> nn.Module:
    """The shipped face regressor (frozen, eval mode)."""
    return feature_space("faces", device).net


@torch.no_grad()
def read_factors(images: torch.Tensor, net: nn.Module | None = None, batch_size: int = 100) -> torch.Tensor:
    """Images (N, 3, H, H) in [-1, 1] (generator outputs) -> normalized factors (N, N_FACTORS)."""
    net = net if net is not None else regressor()
    dev = next(net.parameters()).device
    x = (images.float().clamp(-1, 1) + 1) / 2
    return torch.cat([net(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)])


def follow_share(f_mix: torch.Tensor, f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
    """(N, F) factors of mixed, A and B images -> (F,) share of each factor that follows B (formula above)."""
    d_b, d_mix = f_b - f_a, f_mix - f_a
    return (d_mix * d_b).sum(0) / d_b.square().sum(0).clamp_min(1e-12)


def group_share(share: torch.Tensor, names: tuple[str, ...]) -> float:
    """Mean share over the named factors."""
    return float(torch.stack([share[FACTOR_NAMES.index(n)] for n in names]).mean())


@torch.no_grad()
def mixing_shares(G: nn.Module, layers_from_b: range, n: int = 500, *, seed: int = 0,
                  net: nn.Module | None = None) -> torch.Tensor:
    """(N_FACTORS,) shares of each factor that follow B when B supplies the styles of ``layers_from_b`` (style input
    indices, e.g. range(0, 4) = the 4x4 and 8x8 layers) and A all others. Noise maps are shared by A, B and the mix,
    so only the styles differ."""
    g = torch.Generator().manual_seed(seed)
    with evaluating(G):
        dev = next(G.parameters()).device
        za, zb = (torch.randn(n, G.config.z_dim, generator=g).to(dev) for _ in range(2))
        wa, wb = G.mapping(za), G.mapping(zb)
        mix = mix_layers(wa, wb, layers_from_b, G.n_styles)
        noise = [torch.randn(s, generator=g).to(dev) for s in G.noise_shapes(n)]
        imgs = [G.synthesis(w, noise=noise) for w in (wa, wb, mix)]
    fa, fb, fm = (read_factors(x, net) for x in imgs)
    return follow_share(fm, fa, fb)


@torch.no_grad()
def noise_factor_change(G: nn.Module, n: int = 200, n_noise: int = 8, *, seed: int = 0,
                        net: nn.Module | None = None) -> tuple[float, torch.Tensor]:
    """How much of the factors the noise alone moves: each of n latents is rendered with n_noise noise draws.

    Returns (ratio, per-factor ratios (N_FACTORS,)) with ratio_f = mean_w std_noise(f) / std_w(f): the std across
    noise draws for a fixed w over the std across different w (1 would mean noise changes the factor as much as the
    latent does; StyleGAN's claim is that it stays near 0)."""
    g = torch.Generator().manual_seed(seed)
    with evaluating(G):
        dev = next(G.parameters()).device
        z = torch.randn(n, G.config.z_dim, generator=g).to(dev)
        ws = G.map(z)
        f = torch.stack([read_factors(G.synthesis(ws, noise=g), net) for _ in range(n_noise)], 1)   # (n, k, F)
    within = f.std(1).mean(0)                       # noise-only spread, averaged over latents
    across = f.mean(1).std(0).clamp_min(1e-12)       # spread between latents
    per_factor = within / across
    return float(per_factor.mean()), per_factor


def factor_diversity(factors: torch.Tensor) -> float:
    """Mean per-factor std of normalized factors (N, F): how varied a set of faces is (compare with real faces)."""
    return float(factors.std(0).mean())
