"""Zoo recipes of notebook 10: Everybody Dance Now (Chan et al. 2019) on the dancers world (64x64, small-scale).

The pose ruler ``keypoint_regressor`` lives in genlab.zoo.dancers; the motion-transfer networks live here
(genlab.models.everybody_dance).

* ``edn_framewise``: the frame-by-frame baseline, pix2pixHD-lite's global generator x_t = G(s_t) on the stick figure
  alone, against a 2-scale conditional PatchGAN D(s_t, x_t) (both frames of every training pair are scored on their
  own), LSGAN + feature matching (lambda_FM = 10, pix2pixHD's value).
* ``edn_temporal``: Chan et al.'s temporal smoothing, x_t = G(s_t, x_{t-1}), trained on pairs: x_{t-1} = G(s_{t-1}, 0)
  then x_t = G(s_t, x_{t-1}), against the paper's pair discriminator D_T(s_{t-1}, s_t, x_{t-1}, x_t) (12 channels: real
  pairs vs generated pairs), LSGAN + feature matching (lambda_FM = 10).
* ``edn_face``: the face GAN (Sec. 3.2) on top of the shipped ``edn_temporal`` generator (frozen; an untrained
  ci-profile one when none is shipped, so that the ci run works before anything is shipped -- other profiles need
  the shipped one): a residual generator on the face crops (genlab.worlds.dancers.face_boxes) of the body generator's
  output, against its own conditional PatchGAN D_F(s_F, x_F), LSGAN + feature matching + 10 L1 to the real crop (a
  stand-in for the paper's VGG reconstruction term on the face, which pulls the face towards the real one).

The VGG perceptual loss of pix2pixHD and Chan et al. is left out everywhere: its ImageNet weights are a download
(pix2pixHD's "w/o VGG" setting). All GANs: Adam lr 2e-4, betas (0.5, 0.999), an EMA of the generator (what is shipped).

Data: the first TRAIN_FRAMES frames of the TARGET's recording (genlab.worlds.dancers.recording from TRAIN_START), their
exact keypoints drawn as stick figures (genlab.worlds.dancers.stick_figure). Batches are functions of the step (exact
resume). Body recipes: packed pairs (B, 2, 6, H, W) of consecutive frames t - 1, t, each stick figure (3) | real frame
(3) in [-1, 1]; the generator sees only the stick figures (:class:`Paired`). Face recipe: packed crops (B, 9, c, c):
stick crop | the frozen body generator's crop | real crop (:class:`FaceCrops`: the face generator never sees the real
crop).

Evaluation (:func:`evaluate`): self-transfer on the TARGET's held-out recording (EVAL_FRAMES frames from TEST_START,
never trained on): psnr / ssim / l1 against the real frames, face_psnr inside the face boxes, warp_error / flicker with
the real video's Farneback flow (genlab.zoo.portraits.video_scores), and keypoint_error_px: the shipped
keypoint_regressor's reading of the generated frames against the keypoints that drove them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from genlab.checkpoints import shipped_path
from genlab.losses import feature_matching
from genlab.metrics.image_quality import psnr
from genlab.models.everybody_dance import (DanceConfig, FaceConfig, FaceGenerator, TemporalGenerator,
                                           pair_channels)
from genlab.models.keypoint_regressor import keypoint_error
from genlab.models.pix2pix import MultiscaleDiscriminator
from genlab.train import Critic, GANStepConfig, TrainState, fit, gan_state, make_gan_step
from genlab.worlds.dancers import TARGET, TEST_START, TRAIN_START, face_boxes, recording, stick_figure
from genlab.zoo.dancers import predict_keypoints
from genlab.zoo.portraits import video_scores
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob, export_inner_generator
from genlab.zoo.shipping import load_pretrained

TRAIN_FRAMES, EVAL_FRAMES, LAMBDA_FM, LAMBDA_L1_FACE = 600, 100, 10.0, 10.0
SIZE = 64                                            # ci and cpu profiles; gpu: GPU_SIZE
GPU_SIZE = 128
DATA = (f"genlab.worlds.dancers: TARGET's recording at {SIZE}x{SIZE} ({GPU_SIZE}x{GPU_SIZE} in the gpu profile), "
        f"frames {TRAIN_START}..{TRAIN_START + TRAIN_FRAMES - 1}"
        f" (fewer in ci) with exact keypoints as stick figures for training; metrics on frames {TEST_START}.."
        f"{TEST_START + EVAL_FRAMES - 1} (held out)")
STEPS = {"ci": 2, "cpu": 5500, "gpu": 20000}       # cpu: 0.15-0.16 s/step on one core, ~15 min
FACE_STEPS = {"ci": 2, "cpu": 25000, "gpu": 40000}  # cpu: 0.033 s/step on one core, ~14 min


@dataclass(frozen=True)
class DanceTrain:
    """``steps`` of Adam(lr, betas) for the generator and its critic on ``batch_size`` random training samples (pairs
    of consecutive frames, or face crops) of the first ``frames`` frames of the TARGET's recording; feature matching
    weight ``lambda_fm``; L1 weight ``lambda_l1`` (face GAN only; 0: off); the EMA's decay; frame_critic (temporal
    model only): a framewise D_S(s_t, x_t) beside the pair D_T, as vid2vid's image discriminator (not in Chan et
    al.)."""

    steps: int
    frames: int = TRAIN_FRAMES
    batch_size: int = 4
    lambda_fm: float = LAMBDA_FM
    lambda_l1: float = 0.0
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.99
    frame_critic: bool = False

    def to_dict(self) -> dict:
        return {**asdict(self), "betas": list(self.betas)}


def _check_profile(profile: str) -> None:
    if profile not in STEPS:
        raise ValueError(f"unknown profile {profile!r}: one of {sorted(STEPS)}")


def body_config(profile: str, *, temporal: bool, frame_critic: bool = False) -> RecipeConfig:
    """ci: ngf 8, 24 frames, 2 steps; cpu: ngf 16, 600 frames (both 64x64); gpu: ngf 32, batch 8, 128x128 with one
    more down-sampling (the same receptive field relative to the figure)."""
    _check_profile(profile)
    ngf = {"ci": 8, "cpu": 16, "gpu": 32}[profile]
    size, n_down = (GPU_SIZE, 3) if profile == "gpu" else (SIZE, 2)
    return RecipeConfig(DanceConfig(temporal=temporal, ngf=ngf, ndf=ngf, size=size, n_down=n_down),
                        DanceTrain(steps=STEPS[profile], frames=24 if profile == "ci" else TRAIN_FRAMES,
                                   batch_size={"ci": 2, "cpu": 4, "gpu": 8}[profile], frame_critic=frame_critic))


def face_config(profile: str) -> RecipeConfig:
    _check_profile(profile)
    ngf = {"ci": 8, "cpu": 16, "gpu": 32}[profile]
    size = GPU_SIZE if profile == "gpu" else SIZE
    return RecipeConfig(FaceConfig(crop=size // 4, ngf=ngf, ndf=ngf, size=size),
                        DanceTrain(steps=FACE_STEPS[profile], frames=24 if profile == "ci" else TRAIN_FRAMES,
                                   batch_size={"ci": 2, "cpu": 16, "gpu": 32}[profile], lambda_l1=LAMBDA_L1_FACE))


def build_body(cfg: dict) -> TemporalGenerator:
    return TemporalGenerator(DanceConfig(**cfg))


def build_face(cfg: dict) -> FaceGenerator:
    return FaceGenerator(FaceConfig(**cfg))


# ---------------------------------------------------------------------------------------------- data and adapters
def sticks_of(keypoints: torch.Tensor, size: int) -> torch.Tensor:
    """Keypoints (T, 25, 3) -> stick figures (T, 3, size, size) in [-1, 1] (the generators' input)."""
    return stick_figure(keypoints, (size, size)) * 2 - 1


def training_recording(frames: int, size: int = SIZE):
    """The TARGET's training recording (a genlab.worlds.dancers.DanceClip)."""
    return recording(TARGET, frames, TRAIN_START, (size, size))


def test_recording(frames: int = EVAL_FRAMES, size: int = SIZE):
    """The TARGET's held-out recording: what the metrics use."""
    return recording(TARGET, frames, TEST_START, (size, size))


test_recording.__test__ = False  # a data helper, not a pytest test


def pack_frames(sticks: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """sticks, frames (T, 3, H, W) in [-1, 1] -> (T, 6, H, W): stick | frame."""
    return torch.cat([sticks, frames], 1)


def pair_batches(packed: torch.Tensor, batch_size: int, seed: int = 0):
    """data(step) -> (B, 2, 6, H, W): pairs of consecutive packed frames (t - 1, t), t uniform in 1 .. T - 1, drawn by
    a generator seeded by (seed, step) (exact resume). packed (T, 6, H, W), T >= 2."""
    if len(packed) < 2:
        raise ValueError(f"need at least 2 frames to draw pairs, got {len(packed)}")

    def data(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        t = torch.randint(1, len(packed), (batch_size,), generator=g)
        return torch.stack([packed[t - 1], packed[t]], 1)

    return data


class Paired(nn.Module):
    """Packed adapter of a :class:`TemporalGenerator`: (B, 2, 6, H, W) stick | frame pairs -> stick | generated frame.
    The generator sees only the stick figures (the real frames are dropped before it is called)."""

    def __init__(self, generator: TemporalGenerator):
        super().__init__()
        self.inner = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sticks = x[:, :, :3]
        return torch.cat([sticks, self.inner(sticks)], 2)


def frame_view(x: torch.Tensor, batch) -> torch.Tensor:
    """The framewise D's view: every frame with its stick figure, (2B, 6, H, W)."""
    return x.flatten(0, 1)


def pair_view(x: torch.Tensor, batch) -> torch.Tensor:
    """The pair discriminator's view: (B, 12, H, W) = s_{t-1}, s_t, x_{t-1}, x_t."""
    return torch.cat([x[:, 0, :3], x[:, 1, :3], x[:, 0, 3:], x[:, 1, 3:]], 1)


def crops(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """images (T, C, H, W), boxes (T, 4) of equal squares -> (T, C, c, c)."""
    return torch.stack([images[t, :, r0:r1, c0:c1] for t, (r0, c0, r1, c1) in enumerate(boxes.tolist())])


class FaceCrops(nn.Module):
    """Packed adapter of a :class:`FaceGenerator`: (B, 9, c, c) stick crop | generated crop | real crop ->
    stick crop | generated crop | refined crop. The real crop is dropped before the face generator is called."""

    def __init__(self, face: FaceGenerator):
        super().__init__()
        self.inner = face

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :6], self.inner(x[:, :3], x[:, 3:6])], 1)


def face_view(x: torch.Tensor, batch) -> torch.Tensor:
    """The face D's view: (stick crop, face crop), (B, 6, c, c)."""
    return torch.cat([x[:, :3], x[:, 6:9]], 1)


def body_generator(profile: str = "ci", device: torch.device | str = "cpu") -> TemporalGenerator:
    """The frozen body generator under the face GAN: the shipped ``edn_temporal`` when there is one; otherwise, in the
    ci profile only, an untrained ci-profile one (seed 0, the global RNG left as it was); other profiles raise the
    missing-checkpoint error naming the retrain command."""
    if shipped_path("edn_temporal").exists() or profile != "ci":
        G = load_pretrained("edn_temporal", map_location=device).model
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            G = build_body(body_config("ci", temporal=True).as_dict()["model"])
    return G.to(device).eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------- training
def gan_setup(G: nn.Module, critics: dict[str, tuple[nn.Module, Critic]], config: RecipeConfig,
              device: torch.device | str = "cpu", extra_l1: bool = False):
    """-> (state, step): the recipes' GAN on ``device``; critics {name: (its network, its Critic)}, LSGAN with feature
    matching (lambda_fm) on every critic, + lambda_l1 L1 to the real crop (channels 6:9) with ``extra_l1``. Adam on
    G's trainable parameters and on each critic; an EMA of G."""
    t = config.train
    G = G.to(device)
    Ds = {k: D.to(device) for k, (D, _) in critics.items()}
    state = gan_state(G, Ds, torch.optim.Adam([p for p in G.parameters() if p.requires_grad], t.lr, betas=t.betas),
                      {k: torch.optim.Adam(D.parameters(), t.lr, betas=t.betas) for k, D in Ds.items()},
                      ema_decay=t.ema_decay)

    def g_extra(fake: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {}
        for k, (_, critic) in critics.items():
            d = state.model[k]
            terms[f"feature_matching_{k}" if len(critics) > 1 else "feature_matching"] = t.lambda_fm * feature_matching(
                d.features(critic.see(batch, batch)), d.features(critic.see(fake, batch)))
        if extra_l1 and t.lambda_l1:
            terms["l1"] = t.lambda_l1 * (fake[:, 6:9] - batch[:, 6:9]).abs().mean()
        return terms

    step = make_gan_step(GANStepConfig(loss="lsgan"), critics=[c for _, c in critics.values()],
                         g_input=lambda batch, n, device: batch, g_extra=g_extra)
    return state, step


def _fit_gan(name: str, G: nn.Module, critics: dict[str, tuple[nn.Module, Critic]], data, config: RecipeConfig,
             job: TrainJob, extra_l1: bool = False) -> TrainState:
    t = config.train
    state, step = gan_setup(G, critics, config, job.device, extra_l1)
    return fit(state, step, data, t.steps, device=job.device, checkpoint=job.checkpoint,
               checkpoint_every=max(t.steps // 10, 1), resume=job.resume, meta=job.meta(config),
               progress=job.progress, desc=name)


def body_critics(config: RecipeConfig) -> dict[str, tuple[nn.Module, Critic]]:
    """The body recipes' critics: framewise D(s_t, x_t); temporal: the pair D_T (and, with frame_critic, D_S)."""
    m, t = config.model, config.train
    frame_d = (MultiscaleDiscriminator(6, m.ndf, m.d_layers, m.num_scales), Critic("D", view=frame_view, loss="lsgan"))
    if not m.temporal:
        if t.frame_critic:
            raise ValueError("frame_critic adds a frame D to the temporal model; the framewise model has one already")
        return {"D": frame_d}
    pair_d = MultiscaleDiscriminator(pair_channels(), m.ndf, m.d_layers, m.num_scales)
    if t.frame_critic:
        return {"D_T": (pair_d, Critic("D_T", view=pair_view, loss="lsgan")),
                "D_S": (frame_d[0], Critic("D_S", view=frame_view, loss="lsgan"))}
    return {"D": (pair_d, Critic("D", view=pair_view, loss="lsgan"))}


def body_data(config: RecipeConfig, seed: int = 0):
    """data(step) of the body recipes: pairs (B, 2, 6, H, W) of the TARGET's training recording."""
    m, t = config.model, config.train
    clip = training_recording(t.frames, m.size)
    return pair_batches(pack_frames(sticks_of(clip.keypoints, m.size), clip.frames * 2 - 1), t.batch_size, seed)


def train_body(name: str, model: TemporalGenerator, config: RecipeConfig, job: TrainJob) -> TrainState:
    critics = body_critics(config)
    return _fit_gan(name, Paired(model), critics, body_data(config, job.seed), config, job)


def face_batches(packed: torch.Tensor, batch_size: int, seed: int = 0):
    """data(step) -> (B, 9, c, c): random rows of the packed face crops (seeded by (seed, step))."""

    def data(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        return packed[torch.randint(0, len(packed), (batch_size,), generator=g)]

    return data


def train_face(model: FaceGenerator, config: RecipeConfig, job: TrainJob) -> TrainState:
    m, t = config.model, config.train
    clip = training_recording(t.frames, m.size)
    sticks = sticks_of(clip.keypoints, m.size)
    body = body_generator(job.profile, job.device)
    if body.config.size != m.size:
        raise ValueError(f"the face GAN ({m.size}x{m.size}) needs a body generator of its size, but the shipped "
                         f"edn_temporal draws {body.config.size}x{body.config.size}: run `genlab train edn_temporal "
                         f"--profile {job.profile} --ship` first")
    generated = body.generate(sticks)
    boxes = face_boxes(clip.keypoints, (m.size, m.size), m.crop)
    packed = torch.cat([crops(sticks, boxes), crops(generated, boxes), crops(clip.frames * 2 - 1, boxes)], 1)
    D = MultiscaleDiscriminator(6, m.ndf, m.d_layers, m.num_scales)
    return _fit_gan("edn_face", FaceCrops(model), {"D": (D, Critic("D", view=face_view, loss="lsgan"))},
                    face_batches(packed, t.batch_size, job.seed), config, job, extra_l1=True)


# ---------------------------------------------------------------------------------------------- using it
def transfer_video(G: TemporalGenerator, face_G: FaceGenerator | None, keypoints: torch.Tensor,
                   size: int = SIZE) -> torch.Tensor:
    """Keypoints (T, 25, 3) (pixels of a size x size frame, e.g. normalised source poses) -> the generated video
    (T, 3, size, size) in [0, 1]: stick figures through G (autoregressively for the temporal model), then, with a
    face_G, the refined face pasted back into each frame's face box (face_boxes with face_G's crop)."""
    sticks = sticks_of(keypoints, size)
    frames = G.generate(sticks)
    if face_G is not None:
        frames = face_G.enhance(frames, sticks, face_boxes(keypoints, (size, size), face_G.config.crop))
    return (frames.clamp(-1, 1) + 1) / 2


def dance_scores(fake: torch.Tensor, clip, crop: int | None = None, ruler: nn.Module | None = None) -> dict[str, float]:
    """fake (T, 3, H, W) in [0, 1] against the clip it was made from: psnr, ssim, l1, warp_error, flicker
    (genlab.zoo.portraits.video_scores: the real video's Farneback flow), face_psnr (inside the face boxes of side
    ``crop``, default a quarter of the frame's side) and keypoint_error_px (the ruler's reading of the fake frames vs
    the clip's keypoints; default the shipped keypoint_regressor)."""
    real = clip.frames
    out = video_scores(fake, real)
    boxes = face_boxes(clip.keypoints, tuple(real.shape[-2:]), crop or min(real.shape[-2:]) // 4)
    out["face_psnr"] = psnr(crops(fake, boxes), crops(real, boxes))
    ruler = ruler if ruler is not None else load_pretrained("keypoint_regressor").model
    out["keypoint_error_px"] = keypoint_error(predict_keypoints(ruler, fake), clip.keypoints)
    return out


def evaluate_body(model: TemporalGenerator, device: torch.device) -> dict[str, float]:
    clip = test_recording(EVAL_FRAMES, model.config.size)
    return dance_scores(transfer_video(model.to(device), None, clip.keypoints, model.config.size), clip)


def evaluate_face(model: FaceGenerator, device: torch.device) -> dict[str, float]:
    """With the shipped edn_temporal body generator (or, before one is shipped, the untrained ci one)."""
    c = model.config
    clip = test_recording(EVAL_FRAMES, c.size)
    body = body_generator("ci", device)
    return dance_scores(transfer_video(body, model.to(device), clip.keypoints, c.size), clip, c.crop)


METRICS = {"psnr": 0.05, "ssim": 0.003, "l1": 0.002, "warp_error": 0.002, "flicker": 0.002, "face_psnr": 0.1,
           "keypoint_error_px": 0.1}


def _body_recipe(name: str, summary: str, *, temporal: bool, frame_critic: bool = False) -> Recipe:
    return Recipe(name=name, summary=summary, build=build_body,
                  config=lambda p: body_config(p, temporal=temporal, frame_critic=frame_critic),
                  train=lambda m, c, j: train_body(name, m, c, j), evaluate=evaluate_body, metrics=METRICS, data=DATA,
                  export=export_inner_generator)


EDN_FRAMEWISE = _body_recipe(
    "edn_framewise", "Everybody Dance Now-lite baseline: pix2pixHD-lite G(s_t) frame by frame vs D(s, x), LSGAN + FM, "
    "dancers", temporal=False)
EDN_TEMPORAL = _body_recipe(
    "edn_temporal", "Everybody Dance Now-lite: x_t = G(s_t, x_{t-1}) vs the pair D(s_{t-1}, s_t, x_{t-1}, x_t), "
    "LSGAN + FM", temporal=True)
EDN_TEMPORAL_FD = _body_recipe(
    "edn_temporal_fd", "edn_temporal with a framewise D_S(s_t, x_t) beside the pair D_T (vid2vid-style; a diagnosis, "
    "not in Chan et al.)", temporal=True, frame_critic=True)
EDN_FACE = Recipe(
    name="edn_face",
    summary="Everybody Dance Now-lite face GAN: a residual on the face crop of the frozen edn_temporal output, "
            "vs D(s_F, x_F), LSGAN + FM + 10 L1",
    build=build_face, config=face_config, train=train_face, evaluate=evaluate_face, metrics=METRICS,
    data=DATA + "; face crops of the frozen edn_temporal generator's output", export=export_inner_generator,
)
