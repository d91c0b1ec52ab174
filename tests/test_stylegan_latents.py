"""StyleGAN's latent side: mapping network, truncation, style mixing (exact on constructed inputs)."""
from __future__ import annotations

import pytest
import torch

from genlab.models.stylegan import MappingNetwork
from genlab.nn.latent import broadcast_w, mix_styles, sample_crossover, truncate


def test_mapping_network_shapes_lr_mul_and_z_normalization():
    torch.manual_seed(0)
    f = MappingNetwork(z_dim=16, w_dim=32, n_layers=8)
    assert len(f.layers) == 8 and all(layer.lr_mul == 0.01 for layer in f.layers)
    z = torch.randn(5, 16)
    assert f(z).shape == (5, 32)
    f.eval()
    assert torch.allclose(f(z), f(3.0 * z), atol=1e-5), "z is normalized: its scale must not matter"
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        f(torch.randn(5, 8))


def test_w_avg_tracks_the_mean_of_w_only_in_training():
    torch.manual_seed(0)
    f = MappingNetwork(z_dim=8, w_dim=8, n_layers=2, w_avg_beta=0.5)
    z = torch.randn(64, 8)
    w = f(z)                                   # training mode: w_avg <- w_avg + 0.5 (mean w - w_avg), from 0
    assert torch.allclose(f.w_avg, 0.5 * w.detach().mean(0), atol=1e-6)
    before = f.w_avg.clone()
    f.eval()
    f(z)
    assert torch.equal(f.w_avg, before)


def test_truncation_psi_0_gives_w_avg_and_psi_1_the_identity():
    w, w_avg = torch.randn(4, 6), torch.randn(6)
    assert torch.allclose(truncate(w, w_avg, 0.0), w_avg.expand(4, 6))
    assert torch.equal(truncate(w, w_avg, 1.0), w)
    assert torch.allclose(truncate(w, w_avg, 0.5), (w + w_avg) / 2)


def test_truncation_cutoff_only_touches_the_coarse_layers():
    w, w_avg = torch.randn(3, 10, 4), torch.randn(4)
    out = truncate(w, w_avg, 0.0, cutoff=4)
    assert torch.allclose(out[:, :4], w_avg.expand(3, 4, 4)) and torch.equal(out[:, 4:], w[:, 4:])
    assert truncate(torch.randn(3, 4), w_avg, 0.7, cutoff=2, n_layers=6).shape == (3, 6, 4)
    with pytest.raises(ValueError, match="per-layer"):
        truncate(torch.randn(3, 4), w_avg, 0.7, cutoff=2)


def test_mixing_applies_w2_to_exactly_the_layers_from_the_crossover():
    w1, w2 = torch.zeros(3, 5), torch.ones(3, 5)
    out = mix_styles(w1, w2, torch.tensor([0, 2, 6]), n_layers=6)
    assert out.shape == (3, 6, 5)
    from_w2 = out[:, :, 0]                              # 1 where style input l of image b came from w2
    assert from_w2.tolist() == [[1] * 6, [0, 0, 1, 1, 1, 1], [0] * 6]
    assert torch.equal(broadcast_w(w1, 6), mix_styles(w1, w2, 6, 6))


def test_sample_crossover_mixes_with_the_stated_probability():
    g = torch.Generator().manual_seed(0)
    c = sample_crossover(20000, 8, prob=0.9, generator=g)
    mixed = c < 8
    assert mixed.float().mean().item() == pytest.approx(0.9, abs=0.01)
    assert c[mixed].min() >= 1 and c[mixed].max() <= 7
    assert set(c[mixed].tolist()) == set(range(1, 8))
    assert torch.equal(sample_crossover(4, 1), torch.ones(4, dtype=torch.long))
