"""The StyleGAN-side metrics: factor shares under style mixing, noise-only factor change, droplet ratio, PPL --
exact on constructed cases, so each would fail if its formula broke."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.metrics import factor_probe
from genlab.metrics.droplets import droplet_ratio, on_border, spike_positions, spike_ratio
from genlab.metrics.ppl import perceptual_path_length
from genlab.models.stylegan import Generator, StyleGANConfig

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(resolution=16, max_channels=8, channel_base=64, mapping_layers=2, z_dim=8, w_dim=8)


def test_follow_share_is_the_least_squares_slope():
    g = torch.Generator().manual_seed(0)
    fa, fb = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g)
    fm = fa + torch.tensor([0.0, 0.3, 1.0]) * (fb - fa)
    assert torch.allclose(factor_probe.follow_share(fm, fa, fb), torch.tensor([0.0, 0.3, 1.0]), atol=1e-6)


def test_mixing_all_layers_from_b_follows_b_and_none_follows_a():
    torch.manual_seed(0)
    G = Generator(StyleGANConfig.of("F", **SMALL))
    everything = factor_probe.mixing_shares(G, range(0, G.n_styles), 40)
    nothing = factor_probe.mixing_shares(G, range(0, 0), 40)
    assert torch.allclose(everything, torch.ones_like(everything), atol=1e-4)
    assert torch.allclose(nothing, torch.zeros_like(nothing), atol=1e-4)
    assert factor_probe.group_share(everything, factor_probe.POSE) == pytest.approx(1.0, abs=1e-4)


def test_noise_factor_change_is_zero_without_noise_and_positive_with_it():
    torch.manual_seed(0)
    no_noise = Generator(StyleGANConfig.of("D", **SMALL))
    assert factor_probe.noise_factor_change(no_noise, 20, 3)[0] == pytest.approx(0.0, abs=1e-6)
    noisy = Generator(StyleGANConfig.of("E", **SMALL))
    with torch.no_grad():
        for layer in noisy.layers:
            layer.noise.weight.fill_(1.0)
    assert factor_probe.noise_factor_change(noisy, 20, 3)[0] > 0.01


def test_spike_ratio_of_a_single_droplet():
    f = torch.ones(2, 4, 8, 8)                       # every pixel's feature norm is 2
    assert torch.allclose(spike_ratio(f), torch.ones(2))
    f[1, :, 3, 5] = 10.0                              # one droplet: norm 20 against a median of 2
    assert torch.allclose(spike_ratio(f), torch.tensor([1.0, 10.0]))
    G = Generator(StyleGANConfig.of("F", **SMALL))
    assert droplet_ratio(G, 8) >= 1.0
    assert droplet_ratio(G, 8, border=1) >= 1.0


def test_border_spikes_are_left_out_and_located():
    f = torch.ones(3, 4, 8, 8)
    f[0, :, 0, 5] = 10.0           # on the top edge
    f[1, :, 3, 4] = 10.0           # inside
    f[2, :, 7, 7] = 10.0           # a corner
    assert torch.allclose(spike_ratio(f), torch.full((3,), 10.0))
    assert torch.allclose(spike_ratio(f, border=1), torch.tensor([1.0, 10.0, 1.0]))
    pos = spike_positions(f)
    assert pos.tolist() == [[0, 5], [3, 4], [7, 7]]
    assert on_border(pos, 8).tolist() == [True, False, True]
    assert on_border(torch.tensor([[1, 4]]), 8, border=2).tolist() == [True]
    with pytest.raises(ValueError, match="no interior"):
        spike_ratio(f, border=4)


class _Flat(nn.Module):
    """A feature space that is the raw pixels (in [0, 1]): d is the squared pixel distance."""

    num_features = 3 * 16 * 16

    def forward(self, x):
        return x.flatten(1).double()


class _LinearG(nn.Module):
    """g(w) = tanh-free linear images around 0, small enough to stay inside [-1, 1]: images = scale * A w."""

    def __init__(self, scale: float, constant: bool = False):
        super().__init__()
        self.config = StyleGANConfig(**SMALL)
        self.mapping = nn.Identity()
        self.n_styles, self.scale, self.constant = 1, scale, constant
        self.A = torch.randn(3 * 16 * 16, 8, generator=torch.Generator().manual_seed(0)) * 0.01

    def noise_shapes(self, batch):
        return []

    def synthesis(self, ws, noise=None):
        w = ws if ws.dim() == 2 else ws[:, 0]
        if self.constant:
            w = torch.zeros_like(w)
        return (self.scale * w @ self.A.T).reshape(-1, 3, 16, 16)


def test_ppl_is_zero_for_a_constant_generator_and_quadratic_in_the_image_scale():
    space = _Flat()
    assert perceptual_path_length(_LinearG(1.0, constant=True), 200, space=space) == 0.0
    p1 = perceptual_path_length(_LinearG(1.0), 200, space=space)
    p2 = perceptual_path_length(_LinearG(2.0), 200, space=space)
    assert p1 > 0 and p2 == pytest.approx(4 * p1, rel=1e-3)
    with pytest.raises(ValueError, match="mapping network"):
        perceptual_path_length(Generator(StyleGANConfig.of("A", **SMALL)), 10)
