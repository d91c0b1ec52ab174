"""Zoo recipes ``dcgan_mnist`` and ``dcgan_faces32``: DCGAN (genlab.models.dcgan) trained as in its paper.

Adam(2e-4, betas 0.5/0.999) as in DCGAN Sec. 4, the non-saturating loss, an EMA of G (what is shipped); scored by FID
in the domain's feature space (FID-digits / FID-faces, never Inception FID). A recipe's config is typed: the model's
:class:`~genlab.models.dcgan.DCGANConfig` and the training settings :class:`DCGANTrain`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from genlab.data.mnist import mnist5k
from genlab.metrics.fid import fid
from genlab.models.dcgan import DCGANConfig, Discriminator, Generator
from genlab.nn.inference import generate
from genlab.train import GANStepConfig, StepBatches, TrainState, fit, gan_state, make_gan_step
from genlab.worlds.faces import faces
from genlab.zoo.registry import Recipe, RecipeConfig

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
            return mnist5k(split)[0]
        return faces(split, n=self.n_fid if split == "test" else None, resolution=self.image_size)[0]


_DOMAINS = {"dcgan_mnist": _Domain("digits", 28, 1, cpu_steps=6000, n_fid=1000),
            "dcgan_faces32": _Domain("faces", 32, 3, cpu_steps=5000, n_fid=2000)}


@dataclass(frozen=True)
class DCGANTrain:
    """The training settings of a DCGAN recipe: ``steps`` of Adam(``lr``, ``betas``) on G and D with batches of
    ``batch_size`` real images, the GAN ``loss`` (a :class:`~genlab.train.GANStepConfig` loss name), the decay of the
    EMA of G (what is shipped)."""

    steps: int
    batch_size: int
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    loss: str = "nonsaturating"
    ema_decay: float = 0.999

    def to_dict(self) -> dict:
        """The stored form: ``betas`` a list, as the provenance of the shipped checkpoints has always held it."""
        return {**asdict(self), "betas": list(self.betas)}


def _config(name: str, profile: str) -> RecipeConfig:
    """cpu: about 10 (digits) / 20 (faces) minutes on one CPU thread; ci: a smoke run of the recipe (notebooks load
    the shipped cpu checkpoints in every profile); gpu: wider networks trained longer."""
    d = _DOMAINS[name]
    width = {"ci": 8, "cpu": 32, "gpu": 64}[profile]
    model = DCGANConfig(image_size=d.image_size, channels=d.channels, z_dim=64, g_width=width, d_width=width)
    steps = {"ci": 4, "cpu": d.cpu_steps, "gpu": 40000}[profile]
    return RecipeConfig(model, DCGANTrain(steps=steps, batch_size=16 if profile == "ci" else 64))


def _train(name: str, G: Generator, config: RecipeConfig, job) -> TrainState:
    """Adam(2e-4, betas 0.5/0.999) as in DCGAN Sec. 4, the non-saturating loss, EMA of G (what is shipped)."""
    t, cfg = config.train, config.model
    D = Discriminator(cfg).to(job.device)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), t.lr, betas=t.betas),
                      torch.optim.Adam(D.parameters(), t.lr, betas=t.betas), ema_decay=t.ema_decay)
    step = make_gan_step(GANStepConfig(loss=t.loss, z_dim=cfg.z_dim))
    real = _DOMAINS[name].real("train") * 2 - 1                                      # [0, 1] -> [-1, 1]
    return fit(state, step, StepBatches(real, batch_size=t.batch_size, seed=job.seed), t.steps,
               device=job.device, checkpoint=job.checkpoint, checkpoint_every=max(t.steps // 10, 1),
               resume=job.resume, meta=job.meta(config), progress=job.progress, desc=name)


def _evaluate(name: str, G: nn.Module, device: torch.device) -> dict[str, float]:
    """FID of n_fid samples (seed 0) against as many held-out real images, in the domain's feature space."""
    d = _DOMAINS[name]
    real = d.real("test")
    return {f"fid_{d.space}": fid(real, generate(G.to(device), len(real), batch_size=500), d.space, device=device)}


def _build(model_config: dict) -> Generator:
    return Generator(DCGANConfig(**model_config))


def _recipe(name: str, summary: str, data: str):
    return Recipe(name=name, summary=summary, build=_build, config=lambda p: _config(name, p),
                  train=lambda m, c, j: _train(name, m, c, j), evaluate=lambda m, d: _evaluate(name, m, d),
                  metrics={f"fid_{_DOMAINS[name].space}": 0.05}, data=data)


DCGAN_MNIST = _recipe("dcgan_mnist", "DCGAN generator (EMA) on MNIST 5k, 28x28 grey",
                      "genlab.data.mnist5k train split (4000 digits) for training; fid_digits: 1000 samples (z seed 0) "
                      "vs the 1000 test digits")
DCGAN_FACES32 = _recipe("dcgan_faces32", "DCGAN generator (EMA) on the procedural faces world, 32x32 RGB",
                        "genlab.data.faces train split at 32x32 for training; fid_faces: 2000 samples (z seed 0) vs the "
                        "first 2000 test faces at 32x32")
