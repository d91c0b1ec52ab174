"""DCGAN: shapes and feature-map sizes per image size, tanh range, exact parameter counts, Radford et al.'s layer rules
(no batch norm on D's input or G's output), initialisation statistics, clear input errors; the 2-D toy MLPs."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.models.dcgan import DCGANConfig, Discriminator, Generator
from genlab.models.toy2d import MLPDiscriminator, MLPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def _map_sizes(net: nn.Sequential, x: torch.Tensor) -> list[int]:
    """Spatial size after each (transposed) convolution of ``net``."""
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for m in net.net
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    net(x)
    for h in hooks:
        h.remove()
    return sizes


@pytest.mark.parametrize("size, channels, g_maps, d_maps", [
    (28, 1, [7, 14, 28], [14, 7, 1]),
    (32, 3, [4, 8, 16, 32], [16, 8, 4, 1]),
    (64, 3, [4, 8, 16, 32, 64], [32, 16, 8, 4, 1]),
])
def test_shapes_and_feature_map_sizes(size, channels, g_maps, d_maps):
    torch.manual_seed(0)
    cfg = DCGANConfig(image_size=size, channels=channels, z_dim=16, g_width=8, d_width=8)
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.randn(3, 16)
    x = G(z)
    assert x.shape == (3, channels, size, size)
    assert D(x).shape == (3,)
    assert _map_sizes(G, z) == g_maps
    assert _map_sizes(D, x) == d_maps


def test_generator_output_is_tanh_bounded_even_for_huge_latents():
    G = Generator(DCGANConfig())
    x = G(1000 * torch.randn(8, 64))
    assert x.min() >= -1 and x.max() <= 1
    assert isinstance(G.net[-1], nn.Tanh) and isinstance(G.net[-2], nn.ConvTranspose2d)  # no batch norm at the output


def test_parameter_counts_at_28x28_width_32():
    cfg = DCGANConfig()                                    # 28x28x1, z 64, widths 32
    G, D = Generator(cfg), Discriminator(cfg)
    g = (64 * 64 * 7 * 7 + 2 * 64                          # z -> 7x7x64 (no bias), batch norm
         + 64 * 32 * 4 * 4 + 2 * 32                        # 7 -> 14, 32 channels
         + 32 * 1 * 4 * 4 + 1)                             # 14 -> 28, image (bias before tanh)
    d = (1 * 32 * 4 * 4 + 32                               # 28 -> 14 (bias: no batch norm on the input layer)
         + 32 * 64 * 4 * 4 + 2 * 64                        # 14 -> 7 with batch norm
         + 64 * 7 * 7 + 1)                                 # 7x7 -> one logit
    assert sum(p.numel() for p in G.parameters()) == g == 234_177
    assert sum(p.numel() for p in D.parameters()) == d == 36_577
    no_bn = Discriminator(DCGANConfig(d_batchnorm=False))
    assert sum(p.numel() for p in no_bn.parameters()) == d - 2 * 64 + 64  # bias instead of the batch-norm affine


def test_batch_norm_placement_follows_radford_et_al():
    D = Discriminator(DCGANConfig(image_size=64, channels=3))
    assert isinstance(D.net[1], nn.LeakyReLU) and D.net[1].negative_slope == 0.2      # first layer: no batch norm
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 3
    no_bn = Discriminator(DCGANConfig(image_size=64, channels=3, d_batchnorm=False))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())
    G = Generator(DCGANConfig(image_size=64, channels=3))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 4
    assert sum(isinstance(m, nn.ReLU) for m in G.modules()) == 4


def test_discriminator_without_batch_norm_scores_each_image_on_its_own():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    D = Discriminator(DCGANConfig(d_batchnorm=False))
    torch.testing.assert_close(D(x[:2]), D(x)[:2])        # R1's per-sample gradient needs this
    D_bn = Discriminator(DCGANConfig())
    assert not torch.allclose(D_bn(x[:2]), D_bn(x)[:2])   # batch statistics couple the samples in train mode


def test_dcgan_initialisation_statistics():
    torch.manual_seed(0)
    cfg = DCGANConfig(image_size=64, channels=3)
    for net in (Generator(cfg), Discriminator(cfg)):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() >= 10_000:
                assert m.weight.std().item() == pytest.approx(0.02, rel=0.03)
                assert abs(m.weight.mean().item()) < 1e-3
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                assert torch.count_nonzero(m.bias) == 0
            if isinstance(m, nn.BatchNorm2d):
                assert torch.count_nonzero(m.bias) == 0
                assert (m.weight - 1).abs().max() < 0.1    # N(1, 0.02): 5 sigma
                if m.weight.numel() >= 128:
                    assert m.weight.std().item() == pytest.approx(0.02, rel=0.2)


def test_clear_errors_for_bad_inputs_and_configs():
    cfg = DCGANConfig()
    G, D = Generator(cfg), Discriminator(cfg)
    with pytest.raises(ValueError, match=r"latent z of shape \(B, 64\), got shape \(2, 32\)"):
        G(torch.randn(2, 32))
    with pytest.raises(ValueError, match=r"\(B, 64\), got shape \(2, 64, 1, 1\)"):
        G(torch.randn(2, 64, 1, 1))
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        D(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\), got \(1, 28, 28\)"):
        D(torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match=r"values in \[0, 255\]: map \[0,1\] images with x\*2-1"):
        D(torch.linspace(0, 255, 2 * 784).reshape(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"uint8: map uint8 pixels with x.float\(\) / 127.5 - 1"):
        D(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert D(torch.ones(2, 1, 28, 28)).shape == (2,)       # the edge of the range is fine
    with pytest.raises(ValueError, match=r"image_size must be one of \[28, 32, 64\], got 48"):
        DCGANConfig(image_size=48)
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        DCGANConfig(channels=2)


def test_toy_mlps_shapes_and_errors():
    torch.manual_seed(0)
    G, D = MLPGenerator(z_dim=3, hidden=16), MLPDiscriminator(hidden=16)
    points = G(torch.randn(5, 3))
    assert points.shape == (5, 2) and D(points).shape == (5,)
    torch.testing.assert_close(D(points[:2]), D(points)[:2])   # no batch coupling
    with pytest.raises(ValueError, match=r"MLPGenerator expects a float latent z of shape \(B, 3\)"):
        G(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"MLPDiscriminator expects points of shape \(B, 2\), got \(5, 3\)"):
        D(torch.randn(5, 3))
