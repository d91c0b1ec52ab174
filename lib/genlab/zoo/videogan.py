"""Zoo recipes of notebook 07: video GANs on moving digits (1 digit, 16 frames, 32x32), one budget for every row.

* ``videogan_single_z``: one z decoded to the whole clip by 3-D transposed convolutions, against a 3-D conv critic.
* ``videogan_per_frame``: MoCoGAN's content code + GRU motion codes, one frame generator, the same critic.
* ``dvdgan_digits``: DVD-GAN-lite's ConvGRU generator against D_S (k = 4 random full-resolution frames) + D_T (the
  whole clip pooled 2x2); ``dvdgan_digits_ds`` / ``dvdgan_digits_dt``: the same generator and budget with only one of
  the two critics (the ablation of notebook 07).

One budget: the hinge loss (Lim & Ye 2017; DVD-GAN Sec. 3), spectral norm in every critic, Adam with lr 5e-4 and
betas (0.5, 0.999) for G and the critics (DVD-GAN uses beta1 = 0 and a larger critic rate; in short CPU runs these
settings learnt fastest: measured on 800-step trials, the others stayed at noise or flicker), batch 16 of fresh clips
every step, 2500 steps, an EMA of G (decay 0.995; what is shipped). Evaluation: FVD-digits (the Frechet distance in the shipped video feature net's features, not
FVD) of N_EVAL samples (seed 0) against the first N_EVAL test clips. Small-scale: 32x32 grey clips, minutes of CPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from genlab.metrics.fid import features, fid
from genlab.models.dvdgan import RecurrentGenerator, SpatialDiscriminator, pool_clip, random_frames
from genlab.models.videogan import MotionContentGenerator, SingleZGenerator, VideoDiscriminator, VideoGANConfig
from genlab.config import setup
from genlab.data.videos import video_folder
from genlab.nn.inference import generate
from genlab.train import Critic, GANStepConfig, StepBatches, fit, gan_state, make_gan_step, prepare_model
from genlab.worlds.moving_digits import moving_digits
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob

FRAMES, SIZE, N_EVAL, K_FRAMES = 16, 32, 500, 4
GENERATORS = {"single_z": SingleZGenerator, "per_frame": MotionContentGenerator, "recurrent": RecurrentGenerator}
CRITICS = {"video": ("D",), "dual": ("D_S", "D_T"), "spatial": ("D_S",), "temporal": ("D_T",)}
DATA = (f"genlab.worlds.moving_digits: fresh 1-digit train-split clips every step ({FRAMES} frames, {SIZE}x{SIZE}; "
        f"clip index = step * batch + i) for training; fvd_digits: {N_EVAL} samples (seed 0) vs the first {N_EVAL} test clips, in the video feature "
        f"net's space")


def real_clips(split: str, n: int) -> torch.Tensor:
    """(n, 16, 1, 32, 32) 1-digit clips in [0, 1]: the first n of a split."""
    return moving_digits(split, n, frames=FRAMES, size=SIZE, digits=1).videos


@dataclass
class VideoGANSpec(VideoGANConfig):
    """The model part of a video GAN recipe: the generators' shared config plus which ``generator`` (a key of
    GENERATORS) the recipe trains."""

    generator: str = "recurrent"


@dataclass(frozen=True)
class VideoGANTrain:
    """``steps`` of Adam (``lr_g`` for G, ``lr_d`` for every critic, ``betas``) on batches of ``batch_size`` fresh
    clips with the GAN ``loss``; ``critics``: a key of CRITICS (which discriminators, each with its view); ``k_frames``:
    the frames D_S sees per clip; ``ema_decay``: the EMA of G (what is shipped)."""

    steps: int
    batch_size: int
    critics: str
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    loss: str = "hinge"
    ema_decay: float = 0.995
    k_frames: int = K_FRAMES

    def to_dict(self) -> dict:
        """The stored form (``betas`` a list, as JSON has it)."""
        return {**asdict(self), "betas": list(self.betas)}


def config(generator: str, critics: str, profile: str) -> RecipeConfig:
    """cpu: 7 (per-frame) to 20 (DVD-GAN) minutes on one CPU thread per row (generators of width 8, critics of width 16); ci: a smoke run
    (notebooks load the shipped cpu checkpoints in every profile); gpu: wider networks trained 10x longer."""
    width, d_width = {"ci": (4, 4), "cpu": (8, 16), "gpu": (32, 64)}[profile]
    model = VideoGANSpec(frames=FRAMES, size=SIZE, width=width, d_width=d_width, generator=generator)
    return RecipeConfig(model, VideoGANTrain(steps={"ci": 4, "cpu": 2500, "gpu": 25000}[profile],
                                             batch_size=4 if profile == "ci" else 16, critics=critics))


def build(model_config: dict) -> nn.Module:
    cfg = dict(model_config)
    return GENERATORS[cfg.pop("generator")](VideoGANConfig(**cfg))


def make_critics(names: tuple[str, ...], cfg: VideoGANConfig, k: int) -> tuple[dict[str, nn.Module], list[Critic]]:
    """The critic networks by name and what each sees: D (whole clip), D_S (k random frames), D_T (pooled clip)."""
    nets, critics = {}, []
    for name in names:
        if name == "D":
            nets[name] = VideoDiscriminator(cfg.channels, cfg.d_width, cfg.size, cfg.frames)
            critics.append(Critic(name, loss="hinge"))
        elif name == "D_S":
            nets[name] = SpatialDiscriminator(cfg.channels, cfg.d_width, cfg.size)
            critics.append(Critic(name, view=lambda x, batch: random_frames(x, k), loss="hinge"))
        elif name == "D_T":
            nets[name] = VideoDiscriminator(cfg.channels, cfg.d_width, cfg.size // 2, cfg.frames)
            critics.append(Critic(name, view=lambda x, batch: pool_clip(x, 2), loss="hinge"))
        else:
            raise ValueError(f"unknown critic {name!r}: D, D_S or D_T")
    return nets, critics


def _train(name: str, G: nn.Module, config: RecipeConfig, job, clips: torch.Tensor | None = None):
    """Fit G against the recipe's critics on fresh moving-digits clips, or on ``clips`` (N, T, C, S, S) in [0, 1]."""
    t = config.train
    cfg = G.config
    nets, critics = make_critics(CRITICS[t.critics], cfg, t.k_frames)
    nets = {k: v.to(job.device) for k, v in nets.items()}
    opts = {k: torch.optim.Adam(v.parameters(), t.lr_d, betas=t.betas) for k, v in nets.items()}
    state = gan_state(G, nets, torch.optim.Adam(G.parameters(), t.lr_g, betas=t.betas), opts, ema_decay=t.ema_decay)
    step = make_gan_step(GANStepConfig(loss=t.loss, z_dim=cfg.z_dim), critics=critics)

    def data(i: int) -> torch.Tensor:                # step i's fresh clips, in [-1, 1] (exact resume)
        b = t.batch_size
        return moving_digits("train", b, start=i * b, frames=FRAMES, size=SIZE, digits=1, seed=job.seed).videos * 2 - 1

    if clips is not None:
        data = StepBatches(clips * 2 - 1, batch_size=t.batch_size, seed=job.seed)

    return fit(state, step, data, t.steps, device=job.device, checkpoint=job.checkpoint,
               checkpoint_every=max(t.steps // 10, 1), resume=job.resume, meta=job.meta(config),
               progress=job.progress, desc=name)


@lru_cache(maxsize=2)
def _test_features(device: str):
    """The held-out clips' FVD-digits features, embedded once per process (five recipes share them)."""
    return features(real_clips("test", N_EVAL), "video_digits", device=device)


def evaluate(G: nn.Module, device: torch.device) -> dict[str, float]:
    fake = generate(G.to(device), N_EVAL, batch_size=100)
    return {"fvd_digits": fid(_test_features(str(device)), fake, "video_digits", device=device)}


def _recipe(name: str, summary: str, generator: str, critics: str) -> Recipe:
    return Recipe(name=name, summary=summary, build=build, config=lambda p: config(generator, critics, p),
                  train=lambda m, c, j: _train(name, m, c, j), evaluate=evaluate, metrics={"fvd_digits": 0.5},
                  data=DATA)


SINGLE_Z = _recipe("videogan_single_z", "one z -> the whole clip (3-D transposed convs) vs a 3-D critic, moving digits",
                   "single_z", "video")
PER_FRAME = _recipe("videogan_per_frame", "MoCoGAN-style content code + GRU motion codes vs a 3-D critic, moving digits",
                    "per_frame", "video")
DVDGAN = _recipe("dvdgan_digits", "DVD-GAN-lite: ConvGRU generator vs D_S (4 random frames) + D_T (pooled clip)",
                 "recurrent", "dual")
DVDGAN_DS = _recipe("dvdgan_digits_ds", "DVD-GAN-lite generator vs D_S only (4 random frames)", "recurrent", "spatial")
DVDGAN_DT = _recipe("dvdgan_digits_dt", "DVD-GAN-lite generator vs D_T only (the clip pooled 2x2)", "recurrent",
                    "temporal")


def train_on_video_folder(folder, run=None, *, size: int | None = None, out="runs", resume: bool = True,
                          progress: bool = True) -> nn.Module:
    """Train DVD-GAN-lite (ConvGRU generator, D_S + D_T) of ``run``'s profile on your videos and return its EMA
    generator in eval mode: every non-overlapping 16-frame clip of every video under ``folder``
    (:func:`genlab.data.video_folder`, RGB), at ``size`` x ``size`` (default 64 in the gpu profile, else 32).
    Checkpoints go to ``out/dvdgan_folder{size}/PROFILE/last.pt`` (an interrupted run resumes); nothing is shipped."""
    run = run if run is not None else setup("auto", 0)
    size = size or (64 if run.profile == "gpu" else 32)
    if size not in (32, 64):
        raise ValueError(f"size must be 32 or 64, got {size!r}")
    clips = video_folder(folder, frames=FRAMES, size=size)        # fails early and clearly on a bad folder
    base = config("recurrent", "dual", run.profile)
    config_ = RecipeConfig(replace(base.model, size=size, channels=3), base.train)
    name = f"dvdgan_folder{size}"
    job = TrainJob(profile=run.profile, device=run.device, seed=run.seed,
                   command=f"train_on_video_folder({str(folder)!r}, size={size})",
                   data=f"{len(clips)} clips of {FRAMES} frames from the videos under {Path(folder).expanduser()}",
                   checkpoint=Path(out) / name / run.profile / "last.pt", resume=resume, progress=progress)
    G = prepare_model(build(config_.as_dict()["model"]), job.device)
    state = _train(name, G, config_, job, clips)
    return (state.ema.module if state.ema is not None else G).eval()
