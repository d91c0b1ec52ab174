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

from dataclasses import asdict, dataclass

import torch
from torch import nn

from genlab.nn.eval_mode import evaluating

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


def check_latent(z: torch.Tensor, z_dim: int, model: str) -> None:
    """Raise a ValueError naming the expected shape unless ``z`` is a float tensor (B, z_dim)."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != z_dim or not z.is_floating_point():
        got = f"shape {tuple(z.shape)} {z.dtype}" if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"{model} expects a float latent z of shape (B, {z_dim}), got {got} "
                         f"(draw it with torch.randn(B, {z_dim}))")


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


# ------------------------------------------------------------------------------------------------------ recipes
@dataclass(frozen=True)
class _Domain:
    """What a DCGAN recipe trains on and how it is scored: the feature space of its FID, the image shape, the cpu
    training steps, and the number of samples per side of its FID."""

    space: str
    image_size: int
    channels: int
    cpu_steps: int
    n_fid: int

    def real(self, split: str) -> torch.Tensor:
        """Real images in [0, 1]: MNIST 5k ("train" 4000 / "test" 1000) or faces at 32x32 (all of "train" / the first
        n_fid of "test")."""
        if self.space == "digits":
            from genlab.data.mnist import mnist5k
            return mnist5k(split)[0]
        from genlab.worlds.faces import faces
        return faces(split, n=self.n_fid if split == "test" else None, resolution=self.image_size)[0]


_DOMAINS = {"dcgan_mnist": _Domain("digits", 28, 1, cpu_steps=6000, n_fid=1000),
            "dcgan_faces32": _Domain("faces", 32, 3, cpu_steps=5000, n_fid=2000)}


@torch.no_grad()
def generate(G: nn.Module, n: int, *, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """n images from G in [0, 1] (n, C, S, S), z ~ N(0, I) from a generator seeded with ``seed`` (repeatable)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.config.z_dim, generator=g)
    device = next(G.parameters()).device
    with evaluating(G):
        out = torch.cat([G(z[i:i + batch_size].to(device)).float().cpu() for i in range(0, n, batch_size)])
    return (out.clamp(-1, 1) + 1) / 2


def _config(name: str, profile: str) -> dict:
    """cpu: about 10 (digits) / 20 (faces) minutes on one CPU thread; ci: a smoke run of the recipe (notebooks load
    the shipped cpu checkpoints in every profile); gpu: wider networks trained longer."""
    d = _DOMAINS[name]
    width = {"ci": 8, "cpu": 32, "gpu": 64}[profile]
    model = DCGANConfig(image_size=d.image_size, channels=d.channels, z_dim=64, g_width=width, d_width=width)
    steps = {"ci": 4, "cpu": d.cpu_steps, "gpu": 40000}[profile]
    return {"model": asdict(model),
            "train": {"steps": steps, "batch_size": 16 if profile == "ci" else 64, "lr": 2e-4, "betas": [0.5, 0.999],
                      "loss": "nonsaturating", "ema_decay": 0.999}}


def _train(name: str, G: Generator, config: dict, job) -> "TrainState":
    """Adam(2e-4, betas 0.5/0.999) as in DCGAN Sec. 4, the non-saturating loss, EMA of G (what is shipped)."""
    from genlab.gan import GANStepConfig, gan_state, make_gan_step
    from genlab.train import StepBatches, fit

    t, cfg = config["train"], DCGANConfig(**config["model"])
    D = Discriminator(cfg).to(job.device)
    betas = tuple(t["betas"])
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), t["lr"], betas=betas),
                      torch.optim.Adam(D.parameters(), t["lr"], betas=betas), ema_decay=t["ema_decay"])
    step = make_gan_step(GANStepConfig(loss=t["loss"], z_dim=cfg.z_dim))
    real = _DOMAINS[name].real("train") * 2 - 1                                      # [0, 1] -> [-1, 1]
    return fit(state, step, StepBatches(real, batch_size=t["batch_size"], seed=job.seed), t["steps"],
               device=job.device, checkpoint=job.checkpoint, checkpoint_every=max(t["steps"] // 10, 1),
               resume=job.resume, meta=job.meta(config), progress=job.progress, desc=name)


def _evaluate(name: str, G: nn.Module, device: torch.device) -> dict[str, float]:
    """FID of n_fid samples (seed 0) against as many held-out real images, in the domain's feature space."""
    from genlab.metrics.fid import fid

    d = _DOMAINS[name]
    real = d.real("test")
    return {f"fid_{d.space}": fid(real, generate(G.to(device), len(real)), d.space, device=device)}


def _build(model_config: dict) -> Generator:
    return Generator(DCGANConfig(**model_config))


def _recipe(name: str, summary: str, data: str):
    from genlab.zoo import Recipe

    return Recipe(name=name, summary=summary, build=_build, config=lambda p: _config(name, p),
                  train=lambda m, c, j: _train(name, m, c, j), evaluate=lambda m, d: _evaluate(name, m, d),
                  metrics={f"fid_{_DOMAINS[name].space}": 0.05}, data=data)


DCGAN_MNIST = _recipe("dcgan_mnist", "DCGAN generator (EMA) on MNIST 5k, 28x28 grey",
                      "genlab.data.mnist5k train split (4000 digits) for training; fid_digits: 1000 samples (z seed 0) "
                      "vs the 1000 test digits")
DCGAN_FACES32 = _recipe("dcgan_faces32", "DCGAN generator (EMA) on the procedural faces world, 32x32 RGB",
                        "genlab.data.faces train split at 32x32 for training; fid_faces: 2000 samples (z seed 0) vs the "
                        "first 2000 test faces at 32x32")
