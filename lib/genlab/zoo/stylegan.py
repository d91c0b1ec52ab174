"""Zoo recipes for StyleGAN configs A-F (Table 1 of Karras et al. 2019) and StyleGAN2 on the faces world at 32x32.

Every recipe trains with the *same budget* (steps, batch, optimizer, loss, R1), so the table of FID-faces across
A-F measures the switches and nothing else:

* Adam, lr 0.002, betas (0, 0.99) for G and D (the StyleGAN/StyleGAN2 settings; the mapping network's lr x 0.01 is
  inside the model); the non-saturating logistic loss; R1 with gamma = 0.1 on real images, lazily every 16 steps
  for every config (the paper's StyleGAN applies R1 every step; lazy R1 is StyleGAN2's saving, Sec. 3.1 of its paper,
  used here for A-F too so that all rows cost the same); the EMA of G is what gets shipped, decay 0.998 per step
  (a half-life of 346 steps = 11k images, the official 10k-image half-life at batch 32).
* A-F grow progressively 8 -> 16 -> 32 (fade-in) in the first half of the steps (:class:`GrowthSchedule`);
  StyleGAN2 trains at 32 from the start, with path-length regularization (weight 2, every 4 steps, decay 0.01)
  except in ``stylegan2_faces32_nopl``.

Small-scale: 32x32, at most 64 channels, minutes of CPU; the paper's numbers are at 1024x1024 with 512 channels,
trained for days on 8 GPUs. Evaluation: FID-faces (the shipped face regressor's features, not Inception) of 2000
samples (seed 0, psi = 1) against the first 2000 test faces.

A recipe's config is typed: the model's ``StyleGANConfig`` (A-F) or ``StyleGAN2Config`` and the training settings
:class:`StyleGANTrain`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
from torch import nn

from genlab.metrics.fid import features, fid
from genlab.models import stylegan, stylegan2
from genlab.nn.inference import generate
from genlab.train import GANStepConfig, StepBatches, fit, gan_state, make_gan_step
from genlab.worlds.faces import faces
from genlab.zoo.registry import Recipe, RecipeConfig

RESOLUTION = 32
N_FID = 2000
_STEPS = {"ci": 4, "cpu": 2000, "gpu": 30000}
_BATCH = {"ci": 8, "cpu": 32, "gpu": 64}


def _size(profile: str) -> dict:
    if profile == "ci":
        return dict(max_channels=16, channel_base=128, mapping_layers=2)
    if profile == "gpu":
        return dict(max_channels=256, channel_base=4096)
    return dict(max_channels=64, channel_base=512)       # 64 channels at 4-8, 32 at 16, 16 at 32


@dataclass(frozen=True)
class StyleGANTrain:
    """The training budget shared by every StyleGAN recipe (A-F and StyleGAN2): ``steps`` of Adam(``lr``, ``betas``)
    on G and D with batches of ``batch_size``, the GAN ``loss``, R1 (``r1_gamma``) every ``r1_every`` steps, the decay
    of the EMA of G (what is shipped), the share of the steps spent growing (A-F), and path-length regularization
    (``pl_weight``, 0 = off, every ``pl_every`` steps; StyleGAN2 only)."""

    steps: int
    batch_size: int
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    loss: str = "nonsaturating"
    r1_gamma: float = 0.1
    r1_every: int = 16
    ema_decay: float = 0.998
    growth_share: float = 0.5
    pl_weight: float = 0.0
    pl_every: int = 4

    def to_dict(self) -> dict:
        """The stored form: ``betas`` a list, as the provenance of the shipped checkpoints has always held it."""
        return {**asdict(self), "betas": list(self.betas)}


def _train_config(profile: str, pl_weight: float) -> StyleGANTrain:
    return StyleGANTrain(steps=_STEPS[profile], batch_size=_BATCH[profile], pl_weight=pl_weight)


def stylegan_config(row: str, profile: str) -> RecipeConfig:
    model = stylegan.StyleGANConfig.of(row, resolution=RESOLUTION, start_resolution=8, **_size(profile))
    return RecipeConfig(model, _train_config(profile, 0.0))


def stylegan2_config(profile: str, pl_weight: float = 2.0) -> RecipeConfig:
    model = stylegan2.StyleGAN2Config(resolution=RESOLUTION, **_size(profile))
    return RecipeConfig(model, _train_config(profile, pl_weight))


def growth_schedule(config: RecipeConfig) -> stylegan.GrowthSchedule:
    """The A-F growth plan: start 8, five equal phases (8 stable, fade 16, 16, fade 32, 32) in growth_share x steps."""
    m, t = config.model, config.train
    phases = 1 + 2 * (m.resolution.bit_length() - m.start_resolution.bit_length())
    return stylegan.GrowthSchedule(m.start_resolution, m.resolution, max(int(t.steps * t.growth_share) // phases, 1))


def real_faces(split: str, n: int | None = None) -> torch.Tensor:
    """Faces world images in [0, 1] at 32x32 (the train split: 20,000; test: the first n)."""
    return faces(split, n=n, resolution=RESOLUTION)[0]


def _train(G: nn.Module, config: RecipeConfig, job, *, progressive: bool, name: str):
    t = config.train
    if progressive:
        c = config.model
        D = stylegan.Discriminator(c).to(job.device)
        schedule = growth_schedule(config)

        def prepare(state, real):                       # the growth stage is a function of the step: exact resume
            res, alpha = schedule.at(state.step)
            state.model["G"].set_growth(res, alpha)
            state.model["D"].set_growth(res, alpha)
            return stylegan.grow_real(real, res, alpha, c.resample)
    else:
        D = stylegan2.Discriminator(config.model).to(job.device)
        prepare = None
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), t.lr, betas=t.betas),
                      torch.optim.Adam(D.parameters(), t.lr, betas=t.betas), ema_decay=t.ema_decay)
    step = make_gan_step(GANStepConfig(loss=t.loss, z_dim=G.config.z_dim, r1_gamma=t.r1_gamma,
                                       r1_every=t.r1_every, pl_weight=t.pl_weight, pl_every=t.pl_every),
                         prepare=prepare)
    real = real_faces("train") * 2 - 1
    state = fit(state, step, StepBatches(real, batch_size=t.batch_size, seed=job.seed), t.steps,
                device=job.device, checkpoint=job.checkpoint, checkpoint_every=max(t.steps // 10, 1),
                resume=job.resume, meta=job.meta(config), progress=job.progress, desc=name)
    for net in (G, state.ema.module if state.ema is not None else None):
        if net is not None and hasattr(net, "set_growth"):
            net.set_growth(config.model.resolution, 1.0)    # the exported G renders at full resolution
    return state


@lru_cache(maxsize=2)
def _test_features(device: str):
    """The held-out faces' FID features, embedded once per process (eight recipes share them)."""
    return features(real_faces("test", N_FID), "faces", device=device)


def evaluate(G: nn.Module, device: torch.device) -> dict[str, float]:
    return {"fid_faces": fid(_test_features(str(device)), generate(G.to(device), N_FID), "faces", device=device)}


_DATA = (f"genlab.data.faces train split at 32x32 (20,000 faces) for training; fid_faces: {N_FID} samples (seed 0, "
         f"psi 1) vs the first {N_FID} test faces at 32x32, in the face regressor's feature space")


def _recipe(name: str, summary: str, config, build, progressive: bool):
    return Recipe(name=name, summary=summary, build=build, config=config,
                  train=lambda m, c, j: _train(m, c, j, progressive=progressive, name=name), evaluate=evaluate,
                  metrics={"fid_faces": 0.05}, data=_DATA)


def _build_stylegan(model_config: dict) -> stylegan.Generator:
    return stylegan.Generator(stylegan.StyleGANConfig(**model_config))


def _build_stylegan2(model_config: dict) -> stylegan2.Generator:
    return stylegan2.Generator(stylegan2.StyleGAN2Config(**model_config))


STYLEGAN_ROWS = {row: _recipe(f"stylegan_faces32_{row.lower()}",
                              f"StyleGAN Table 1 config {row} ({stylegan.CONFIG_NAMES[row]}), faces world 32x32",
                              lambda p, r=row: stylegan_config(r, p), _build_stylegan, True)
                 for row in stylegan.CONFIGS}
STYLEGAN2 = _recipe("stylegan2_faces32", "StyleGAN2 (demodulation, skip G, residual D, lazy R1, PL reg), faces 32x32",
                    stylegan2_config, _build_stylegan2, False)
STYLEGAN2_NOPL = _recipe("stylegan2_faces32_nopl", "StyleGAN2 without path-length regularization, faces 32x32",
                         lambda p: stylegan2_config(p, pl_weight=0.0), _build_stylegan2, False)
STYLEGAN_A, STYLEGAN_B, STYLEGAN_C, STYLEGAN_D, STYLEGAN_E, STYLEGAN_F = (STYLEGAN_ROWS[r] for r in "ABCDEF")
