"""DCGAN (Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep Convolutional GANs", Sec. 3).

The architecture guidelines of Sec. 3: strided convolutions instead of pooling (fractionally strided, i.e. transposed,
ones in G), batch norm in both networks except G's output and D's input layer, ReLU in G with tanh at the output,
leaky ReLU (slope 0.2) in D, no fully connected hidden layers. Weights are drawn from N(0, 0.02) (Sec. 4), batch-norm
scales from N(1, 0.02).

* :class:`Generator`: z (B, z_dim) is projected to a base x base map (7x7 for 28x28 images, else 4x4) by a
  transposed convolution with a base x base kernel, then each ConvTranspose2d(4, 2, 1) doubles the size and halves
  the width: 7 -> 14 -> 28, 4 -> 8 -> 16 -> 32, 4 -> 8 -> 16 -> 32 -> 64.
* :class:`Discriminator`: the mirror image, Conv2d(4, 2, 1) halving the size down to the base map, then a
  base x base convolution to one logit. ``d_batchnorm=False`` drops batch norm from D altogether: a per-sample D,
  which the R1 penalty and the hinge loss assume (StyleGAN2 and SN-GAN have no batch norm in D).

Images are (B, C, S, S) in [-1, 1]; genlab.viz draws them with ``value_range=(-1, 1)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.tensors import check_latent

IMAGE_SIZES = {28: 7, 32: 4, 64: 4}  # image size -> size of the smallest feature map
_RANGE_SLACK = 0.5                   # D rejects inputs beyond [-1 - slack, 1 + slack]: surely not tanh-range images


@dataclass
class DCGANConfig:
    """image_size in {28, 32, 64}; channels in {1, 3}; g_width / d_width: channels of G's last hidden layer and of
    D's first layer (doubled at each halving of the size); d_batchnorm: batch norm in D's hidden layers (never the
    first)."""

    image_size: int = 28
    channels: int = 1
    z_dim: int = 64
    g_width: int = 32
    d_width: int = 32
    d_batchnorm: bool = True

    def __post_init__(self):
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"DCGAN image_size must be one of {sorted(IMAGE_SIZES)}, got {self.image_size!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"DCGAN channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        for name in ("z_dim", "g_width", "d_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DCGAN {name} must be a positive int, got {getattr(self, name)!r}")

    @property
    def base(self) -> int:
        """Side of the smallest feature map (7 for 28x28 images, else 4)."""
        return IMAGE_SIZES[self.image_size]

    @property
    def n_stages(self) -> int:
        """Number of size doublings between the base map and the image: 2 (28), 3 (32), 4 (64)."""
        return (self.image_size // self.base).bit_length() - 1


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016, Sec. 4): conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02),
    biases 0. Use as ``net.apply(dcgan_init)``."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """DCGAN generator: z (B, z_dim) -> images (B, C, S, S) in [-1, 1] (tanh)."""

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = c = config or DCGANConfig()
        width = c.g_width * 2 ** (c.n_stages - 1)        # channels of the base map
        layers = [nn.ConvTranspose2d(c.z_dim, width, c.base, 1, 0, bias=False),   # 1x1 -> base x base (projection)
                  nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        for _ in range(c.n_stages - 1):                   # each doubles the size and halves the width
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                       nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, c.channels, 4, 2, 1), nn.Tanh()]   # no batch norm at the output
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_latent(z, self.config.z_dim, "DCGAN Generator")
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """DCGAN discriminator: images x (B, C, S, S) in [-1, 1] -> logits (B,) (real > 0 > fake; no sigmoid)."""

    def __init__(self, config: DCGANConfig | None = None):
        super().__init__()
        self.config = c = config or DCGANConfig()
        width = c.d_width
        layers = [nn.Conv2d(c.channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]  # no batch norm on the input
        for _ in range(c.n_stages - 1):                   # each halves the size and doubles the width
            norm = [nn.BatchNorm2d(2 * width)] if c.d_batchnorm else []
            layers += [nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not c.d_batchnorm), *norm,
                       nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        layers += [nn.Conv2d(width, 1, c.base, 1, 0)]     # base x base -> 1x1: one logit
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        shape = (c.channels, c.image_size, c.image_size)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DCGAN Discriminator expects images of shape (B, {', '.join(map(str, shape))}), "
                             f"got {got}")
        if not x.is_floating_point():
            raise ValueError(f"DCGAN Discriminator expects float images in [-1, 1], got {x.dtype}: map uint8 pixels "
                             "with x.float() / 127.5 - 1")
        lo, hi = torch.aminmax(x.detach())
        lo, hi = float(lo), float(hi)
        if lo < -1 - _RANGE_SLACK or hi > 1 + _RANGE_SLACK:
            raise ValueError(f"DCGAN Discriminator expects images in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]: "
                             "map [0,1] images with x*2-1 (and uint8 pixels with x / 127.5 - 1)")
        return self.net(x).flatten()                       # (B, 1, 1, 1) -> (B,)
