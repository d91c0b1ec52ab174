"""Zoo recipes of notebook 09: Deep Video Portraits (Kim et al. 2018) on the portraits world (small-scale).

* ``dvp_portraits``: the rendering-to-video network (genlab.models.rendering_to_video) trained on ONE target video,
  the first TRAIN_FRAMES frames of the target actor's recording (genlab.worlds.portraits.TARGET), N_w = 5 frames of
  conditioning images (the paper: N_w = 11; the gpu profile uses 11 at 128x128), 4000 steps in the cpu profile.
* ``dvp_portraits_nw1``: the same with N_w = 1 (a single frame of conditioning images: no space-time volume).
* ``dvp_portraits_f25`` / ``dvp_portraits_f100``: the same network trained on only the first 25 / 100 frames of the
  target video (the same number of steps): how much of one video it takes.
* ``dvp_portraits_jit`` / ``dvp_portraits_nw1_jit``: N_w = 5 / 1 with a noisy tracker on the training video (JITTER
  half ranges of Gaussian jitter per frame and factor, genlab.worlds.portraits.track), scored with the same noise on
  the held-out frames: can a space-time volume average out a tracker's jitter?

Objective (Kim et al. Sec. 5, after pix2pix): min_T max_D E_cGAN(T, D) + lambda E_l1(T) with lambda = 100, the
conditional GAN loss on D(volume, frame) (non-saturating form for T) and the L1 distance of the output to the real
frame. Adam lr 2e-4, betas (0.5, 0.999), batches of ``batch_size`` frames drawn at random from the training video;
an EMA of the network is what is shipped. Batches are packed (B, 9 N_w + 3, H, W): the space-time volume | the real
frame, both in [-1, 1], so that one :func:`genlab.train.make_gan_step` drives it (the network sees only the volume:
:class:`Conditioned`).

Evaluation: self-reenactment on the held-out segment of the target's recording (EVAL_FRAMES frames from
genlab.worlds.portraits.TEST_START, motions of the training range, frames never trained on): PSNR and SSIM against
the real frames, and warping error / flicker with the real video's Farneback flow (genlab.metrics.temporal).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from genlab.metrics.image_quality import psnr, ssim
from genlab.metrics.temporal import farneback_flow, flicker, warp_error
from genlab.models.rendering_to_video import RenderingToVideo, RenderingToVideoConfig, make_discriminator
from genlab.nn.inference import batched
from genlab.train import Critic, GANStepConfig, TrainState, fit, gan_state, make_gan_step
from genlab.worlds.faces import eye_boxes, mouth_boxes
from genlab.worlds.portraits import (TARGET, TEST_START, TRAIN_START, conditioning, recording, space_time_volume,
                                     track)
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob, export_inner_generator

TRAIN_FRAMES, EVAL_FRAMES, LAMBDA_L1 = 600, 100, 100.0
TRACK_SEED, EVAL_TRACK_SEED = 1, 2                # the noisy tracker's seeds on the training and held-out frames
JITTER = 0.1                                      # the ``_jit`` recipes' tracker noise (half ranges; 0.035 rad of yaw)
DATA = (f"genlab.worlds.portraits: the target actor's recording, frames {TRAIN_START}..{TRAIN_START + TRAIN_FRAMES - 1}"
        f" (or fewer, see train.frames) for training; metrics on frames {TEST_START}..{TEST_START + EVAL_FRAMES - 1} "
        f"(held out, same motion range)")


@dataclass(frozen=True)
class PortraitsTrain:
    """``steps`` of Adam(lr, betas) for the network and D on ``batch_size`` random frames of the first ``frames``
    frames of the target video; the L1 weight ``lambda_l1``; the EMA's decay; ``jitter``: the tracker's noise on the
    training video (genlab.worlds.portraits.track, one fixed noisy track as a real tracker gives; 0: exact)."""

    steps: int
    frames: int = TRAIN_FRAMES
    jitter: float = 0.0
    batch_size: int = 8
    lambda_l1: float = LAMBDA_L1
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.995

    def to_dict(self) -> dict:
        return {**asdict(self), "betas": list(self.betas)}


def portraits_config(profile: str, *, window: int | None = None, frames: int = TRAIN_FRAMES,
                     jitter: float = 0.0) -> RecipeConfig:
    """ci: a narrow net for 2 steps at 32x32; cpu: 64x64, N_w = 5, 4000 steps; gpu: 128x128, N_w = 11 (the paper's).
    window: N_w (None: the profile's)."""
    steps = {"ci": 2, "cpu": 4000, "gpu": 30000}
    if profile not in steps:
        raise ValueError(f"unknown profile {profile!r}: one of {sorted(steps)}")
    if profile == "ci":
        model = RenderingToVideoConfig(window=2, ngf=8, n_down=3, ndf=8, resolution=32, stem=4)
    elif profile == "gpu":
        model = RenderingToVideoConfig(window=11, ngf=64, n_down=5, ndf=64, resolution=128, stem=32)
    else:
        model = RenderingToVideoConfig(window=5, ngf=32, n_down=4, ndf=32, resolution=64, stem=16)
    if window is not None:
        model = replace(model, window=window)
    return RecipeConfig(model, PortraitsTrain(steps=steps[profile], frames=frames, jitter=jitter,
                                              batch_size=4 if profile == "ci" else 8))


def build(cfg: dict) -> RenderingToVideo:
    return RenderingToVideo(RenderingToVideoConfig(**cfg))


class Conditioned(nn.Module):
    """Packed adapter: (B, 9 N_w + 3, H, W) volume | frame -> volume | the network's frame. The network sees only the
    volume (the frame part of the input is dropped before it is called)."""

    def __init__(self, network: RenderingToVideo):
        super().__init__()
        self.inner = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        volume = x[:, :-3]
        return torch.cat([volume, self.inner(volume)], 1)


def training_batches(cond: torch.Tensor, frames: torch.Tensor, window: int, batch_size: int, seed: int = 0):
    """data(step) -> packed batch (B, 9 N_w + 3, H, W) in [-1, 1]: frames drawn uniformly from the training video by a
    generator seeded by (seed, step) (exact resume), each with the volume of its last N_w conditioning frames (frames
    before the first repeat it). cond (N, 9, H, W), frames (N, 3, H, W), both in [0, 1]."""
    c, f = cond * 2 - 1, frames * 2 - 1

    def data(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, len(f), (batch_size,), generator=g)
        past = (idx[:, None] + torch.arange(-window + 1, 1)[None]).clamp(min=0)         # (B, N_w), oldest first
        return torch.cat([c[past].flatten(1, 2), f[idx]], 1)

    return data


def train(model: RenderingToVideo, config: RecipeConfig, job: TrainJob) -> TrainState:
    t, m = config.train, config.model
    clip = recording(TARGET, t.frames, TRAIN_START, m.resolution)
    if t.jitter:                                          # a noisy tracker: conditioning from its estimates
        clip.cond = conditioning(track(clip.params, jitter=t.jitter, seed=TRACK_SEED), m.resolution)
    G = Conditioned(model).to(job.device)
    D = make_discriminator(m).to(job.device)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), t.lr, betas=t.betas),
                      torch.optim.Adam(D.parameters(), t.lr, betas=t.betas), ema_decay=t.ema_decay)

    def g_extra(fake: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"l1": t.lambda_l1 * (fake[:, -3:] - batch[:, -3:]).abs().mean()}     # lambda E_l1

    step = make_gan_step(GANStepConfig(loss="nonsaturating"), critics=[Critic("D", loss="nonsaturating")],
                         g_input=lambda batch, n, device: batch, g_extra=g_extra)
    data = training_batches(clip.cond, clip.frames, m.window, t.batch_size, job.seed)
    return fit(state, step, data, t.steps, device=job.device, checkpoint=job.checkpoint,
               checkpoint_every=max(t.steps // 10, 1), resume=job.resume, meta=job.meta(config),
               progress=job.progress, desc="dvp_portraits")


def render_video(network: RenderingToVideo, cond: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Conditioning images (T, 9, H, W) in [0, 1] -> the network's video (T, 3, H, W) in [0, 1] (eval mode, no
    gradient): each frame from the space-time volume of its last N_w conditioning frames, built ``batch_size`` frames
    at a time (the whole volume of a long video would be N_w times the conditioning's size)."""
    window, x = network.config.window, cond * 2 - 1
    out = []
    for start in range(0, len(x), batch_size):          # one slice of volumes at a time: memory ~ batch_size, not T
        lo = max(0, start - window + 1)                  # the slice's first volume needs window - 1 earlier frames
        volume = space_time_volume(x[lo:start + batch_size], window)[start - lo:]
        out.append(batched(network, volume, batch_size=batch_size))
    return (torch.cat(out).clamp(-1, 1) + 1) / 2


def video_scores(fake: torch.Tensor, real: torch.Tensor, flow: torch.Tensor | None = None) -> dict[str, float]:
    """fake, real (T, 3, H, W) in [0, 1]: psnr, ssim, l1 against the real frames; warp_error and flicker of the fake
    video with the real video's Farneback flow (no occlusion mask; pass ``flow`` (1, T, 2, H, W) to reuse one)."""
    flow = farneback_flow(real[None]) if flow is None else flow
    occ = torch.zeros_like(flow[:, :, :1])
    return {"psnr": psnr(fake, real), "ssim": ssim(fake, real), "l1": float((fake - real).abs().mean()),
            "warp_error": warp_error(fake[None], flow, occ), "flicker": flicker(fake[None], flow, occ)}


def region_errors(fake: torch.Tensor, real: torch.Tensor, params: torch.Tensor) -> dict[str, float]:
    """Mean |fake - real| (T, 3, H, W) in [0, 1] over the whole frame and inside each frame's mouth box and eye boxes
    (genlab.worlds.faces.mouth_boxes / eye_boxes of the true parameters (T, N_FACTORS)): whether the small, expressive
    parts are right, which a whole-frame average hides."""
    res = real.shape[-1]
    err = (fake - real).abs().mean(1)                                          # (T, H, W)
    mouth, eyes = torch.zeros_like(err, dtype=torch.bool), torch.zeros_like(err, dtype=torch.bool)
    for t, ((r0, c0, r1, c1), pair) in enumerate(zip(mouth_boxes(params, res).tolist(), eye_boxes(params, res).tolist())):
        mouth[t, r0:r1, c0:c1] = True
        for q0, d0, q1, d1 in pair:
            eyes[t, q0:q1, d0:d1] = True
    return {"frame": float(err.mean()), "mouth": float(err[mouth].mean()), "eyes": float(err[eyes].mean())}


def test_recording(resolution: int = 64, frames: int = EVAL_FRAMES, scale: float = 1.0):
    """The held-out segment of the target's recording (a :class:`genlab.worlds.portraits.PortraitClip`)."""
    return recording(TARGET, frames, TEST_START, resolution, scale=scale)


test_recording.__test__ = False  # a data helper, not a pytest test


def evaluate(model: nn.Module, device: torch.device, jitter: float = 0.0) -> dict[str, float]:
    """Self-reenactment scores on the held-out frames, the conditioning from an exact tracker (or one with
    ``jitter``), against the real frames."""
    clip = test_recording(model.config.resolution)
    cond = clip.cond if not jitter else conditioning(track(clip.params, jitter=jitter, seed=EVAL_TRACK_SEED),
                                                     model.config.resolution)
    return video_scores(render_video(model.to(device), cond), clip.frames)


METRICS = {"psnr": 0.05, "ssim": 0.003, "l1": 0.002, "warp_error": 0.002, "flicker": 0.002}


def _recipe(name: str, summary: str, **kw) -> Recipe:
    jitter = kw.get("jitter", 0.0)
    return Recipe(name=name, summary=summary, build=build, config=lambda p: portraits_config(p, **kw), train=train,
                  evaluate=lambda m, d: evaluate(m, d, jitter), metrics=METRICS, data=DATA, export=export_inner_generator)


DVP = _recipe("dvp_portraits", "Deep Video Portraits-lite: U-Net on a space-time volume of N_w = 5 conditioning "
                               "frames, cGAN + 100 L1, one target video of 600 frames")
DVP_NW1 = _recipe("dvp_portraits_nw1", "Deep Video Portraits-lite ablation: N_w = 1 (no space-time volume)", window=1)
DVP_F25 = _recipe("dvp_portraits_f25", "Deep Video Portraits-lite trained on only 25 frames of the target video",
                  frames=25)
DVP_JIT = _recipe("dvp_portraits_jit", f"Deep Video Portraits-lite, N_w = 5, trained and evaluated with a noisy "
                                       f"tracker (jitter {JITTER} half ranges)", jitter=JITTER)
DVP_NW1_JIT = _recipe("dvp_portraits_nw1_jit", f"Deep Video Portraits-lite, N_w = 1, trained and evaluated with a "
                                               f"noisy tracker (jitter {JITTER} half ranges)", window=1, jitter=JITTER)
DVP_F100 = _recipe("dvp_portraits_f100", "Deep Video Portraits-lite trained on only 100 frames of the target video",
                   frames=100)
