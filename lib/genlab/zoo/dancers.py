"""Zoo recipe of notebook 10 (Everybody Dance Now) on the dancers world: ``keypoint_regressor``, the pose ruler.

The keypoint regressor of genlab.models.keypoint_regressor (heatmaps + soft-argmax) reads the 25 OpenPose BODY_25
keypoints back from a frame, so that the pose of *generated* frames can be measured against the pose that drove them
(:func:`predict_keypoints`, then genlab.models.keypoint_regressor.keypoint_error / pck), as Chan et al. 2019 measure
their transfers with OpenPose.

Training data (:func:`training_batch`): fresh frames every step, a function of the step (exact resume). A batch is
``batch_size / frames_per_dancer`` dancers of ``frames_per_dancer`` frames each; a dancer is one of the world's three
(genlab.worlds.dancers.TARGET and SOURCES) or, with probability ``random_share``, a new random person
(:func:`random_dancer`: height, bone proportions, clothes, skin, hair, room and placement drawn at random) so the ruler
reads people it never saw. Every frame's joint angles are a frame of a dance (genlab.worlds.dancers.motion) at a
random absolute frame index in the training segment [TRAIN_START, TEST_START) -- the dancer's own dance or another's
(one of the three dancers' or a random one), as motion transfer shows a person in someone else's pose -- and its root x
and depth are uniform over the dancer's ranges, widened a little (normalized poses land near, not exactly in, them).
A ``blur_share`` of the frames is rendered sharp, then shrunk to half size and enlarged back, and every frame gets
Gaussian pixel noise of a random standard deviation up to ``noise``: generated frames are softer and noisier than the
renders.

Objective: smooth L1 (Huber, ``beta`` in normalized units) on the normalized (u, v) of the keypoints the truth marks
visible, plus ``visibility_weight`` times the binary cross-entropy of the visibility logits against the world's
confidence (1 inside the frame, 0 outside). AdamW with a warm-up then cosine decay, a weight EMA (what is shipped).

Evaluation (:func:`evaluate`): the fixed held-out frames TEST_START ... TEST_START + N_TEST - 1 of each of the three
dancers (their own dances; never trained on), rendered at the model's resolution: mean pixel error, PCK@0.05 and
PCK@0.1 (of the figure's height: the vertical extent of its visible keypoints), per dancer errors and the visibility
accuracy; and N_UNSEEN frames of fixed random people (a seed training never draws) at held-out frame indices
(``unseen_*``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.keypoint_regressor import (KeypointRegressor, KeypointRegressorConfig, build, keypoint_error, pck,
                                              resize, to_normalized, to_pixels)
from genlab.nn.inference import batched
from genlab.train import TrainState, autocast
from genlab.worlds.dancers import (ANKLE_HEIGHT, COL, SOURCES, TARGET, TEST_START, TRAIN_START, Dancer, keypoints,
                                   motion, recording, render)
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob
from genlab.zoo.supervised import fit_supervised

#: the world's named dancers, in the order of the per-dancer metrics
DANCERS: tuple[Dancer, ...] = (TARGET, *SOURCES)
N_TEST = 300                  # held-out frames per named dancer
N_UNSEEN, UNSEEN_PER_DANCER = 300, 4     # held-out frames of random people, frames per person
UNSEEN_SEED = 2**40 + 7       # the unseen people's generator seed (training seeds are seed * 1_000_003 + step)
DATA = (f"genlab.worlds.dancers: training frames rendered afresh each step (TARGET, SOURCES and random people; dances "
        f"at random frames of [{TRAIN_START}, {TEST_START}); step-indexed generator); metrics on frames {TEST_START}.."
        f"{TEST_START + N_TEST - 1} of TARGET and SOURCES and on {N_UNSEEN} frames of unseen random people")


# ---------------------------------------------------------------------------------------------- the data
def _u(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g, dtype=torch.float64))


def _colour(g: torch.Generator) -> tuple[float, float, float]:
    return tuple(float(c) for c in torch.rand(3, generator=g, dtype=torch.float64) * 0.9 + 0.05)


#: ranges of the random people's bone proportions (fractions of the height), around the three dancers'
_PROPORTIONS = {"upper_arm": (0.15, 0.19), "forearm": (0.13, 0.17), "thigh": (0.22, 0.27), "shin": (0.22, 0.27),
                "torso": (0.26, 0.31), "neck": (0.09, 0.11), "shoulder_width": (0.21, 0.27),
                "hip_width": (0.11, 0.15), "head_radius": (0.045, 0.075)}
_PALE, _DARK = (0.96, 0.82, 0.72), (0.35, 0.22, 0.15)          # ends of the skin tones


def random_dancer(g: torch.Generator, name: str = "random") -> Dancer:
    """A new person drawn from ``g``: height in [0.5, 0.85] of the frame at depth 1, bone proportions in
    _PROPORTIONS, rescaled so that ANKLE_HEIGHT + shin + thigh + torso + neck + 1.2 head_radius = 1 (as the world's
    dancers), skin between a pale and a dark tone, random clothes and hair, stripes (none half the time), room and
    hair style (detail seed), dance (motion seed), a near depth in [1, 1.8] with a far one 0.1 ... 0.4 behind, and a
    root x range of half width 0.02 ... 0.12 centred in [-0.3, 0.3] world units."""
    p = {k: _u(g, *r) for k, r in _PROPORTIONS.items()}
    chain = p["shin"] + p["thigh"] + p["torso"] + p["neck"] + 1.2 * p["head_radius"]
    scale = (1 - ANKLE_HEIGHT) / chain
    for k in ("shin", "thigh", "torso", "neck", "head_radius"):
        p[k] *= scale
    tone = _u(g, 0, 1)
    skin = tuple(a + tone * (b - a) for a, b in zip(_PALE, _DARK))
    near = _u(g, 1.0, 1.8)
    centre, half = _u(g, -0.3, 0.3), _u(g, 0.02, 0.12)
    seeds = torch.randint(0, 2**31 - 1, (2,), generator=g).tolist()
    stripes = _u(g, 0, 1)
    return Dancer(name, height=_u(g, 0.5, 0.85), **p, skin=skin, shirt=_colour(g), trousers=_colour(g),
                  shoes=_colour(g), hair=_colour(g), stripes=stripes if stripes > 0.5 else 0.0,
                  detail_seed=seeds[0], depth=(near, near + _u(g, 0.1, 0.4)), x=(centre - half, centre + half),
                  motion_seed=seeds[1])


def _poses(g: torch.Generator, dancer: Dancer, n: int, frames: tuple[int, int]) -> torch.Tensor:
    """n poses (n, N_POSE) for ``dancer``: each the angles of a dance (the dancer's own, one of DANCERS', or a random
    one, equally likely) at a random frame in [frames[0], frames[1]), root x and depth uniform over the dancer's
    ranges widened by 0.1 on each side (x) and to [max(0.95, near - 0.1), far + 0.2] (depth)."""
    rows = []
    for _ in range(n):
        which = int(torch.randint(0, len(DANCERS) + 2, (), generator=g))
        seed = (dancer.motion_seed if which == 0 else DANCERS[which - 1].motion_seed if which <= len(DANCERS)
                else int(torch.randint(0, 2**31 - 1, (), generator=g)))
        t = int(torch.randint(frames[0], frames[1], (), generator=g))
        pose = motion(replace(dancer, motion_seed=seed), 1, t)
        pose[0, COL["x"]] = _u(g, dancer.x[0] - 0.1, dancer.x[1] + 0.1)
        pose[0, COL["depth"]] = _u(g, max(0.95, dancer.depth[0] - 0.1), dancer.depth[1] + 0.2)
        rows.append(pose)
    return torch.cat(rows)


def sample_frames(g: torch.Generator, n: int, size: tuple[int, int], *, frames_per_dancer: int = 4,
                  random_share: float = 0.5, frames: tuple[int, int] = (TRAIN_START, TEST_START)):
    """n frames of ceil(n / frames_per_dancer) dancers (a random person with probability ``random_share``, else one of
    DANCERS), poses as :func:`_poses`, rendered at ``size``: frames (n, 3, H, W) in [0, 1], keypoints (n, 25, 3) in
    pixels (the world's exact ones)."""
    xs, kps = [], []
    left = n
    while left > 0:
        k = min(frames_per_dancer, left)
        if _u(g, 0, 1) < random_share:
            dancer = random_dancer(g)
        else:
            dancer = DANCERS[int(torch.randint(0, len(DANCERS), (), generator=g))]
        pose = _poses(g, dancer, k, frames)
        xs.append(render(dancer, pose, size))
        kps.append(keypoints(dancer, pose, size))
        left -= k
    return torch.cat(xs), torch.cat(kps)


def training_batch(step: int, batch_size: int, size: tuple[int, int], seed: int = 0, *, frames_per_dancer: int = 4,
                   random_share: float = 0.5, blur_share: float = 0.25, noise: float = 0.03):
    """The batch of ``step``: fresh dancers, poses and noise from a generator seeded by (seed, step), so a resumed run
    sees exactly the batches of an uninterrupted one. The first round(blur_share * B) frames are shrunk to half size
    and enlarged back; every frame gets N(0, s^2) pixel noise with s ~ U(0, noise), then clamped to [0, 1]. Returns
    frames (B, 3, H, W) in [0, 1] and their keypoints (B, 25, 3) (pixels, confidence)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    x, kp = sample_frames(g, batch_size, size, frames_per_dancer=frames_per_dancer, random_share=random_share)
    n_blur = int(round(blur_share * batch_size))
    if n_blur:
        half = (max(size[0] // 2, 8), max(size[1] // 2, 8))
        x[:n_blur] = resize(resize(x[:n_blur], half), size)
    if noise:
        s = torch.rand(batch_size, 1, 1, 1, generator=g) * noise
        x = (x + s * torch.randn(x.shape, generator=g)).clamp_(0, 1)
    return x, kp


# ---------------------------------------------------------------------------------------------- the recipe
@dataclass(frozen=True)
class KeypointRegressorTrain:
    """The training settings of ``keypoint_regressor``: ``steps`` of AdamW(``lr``, ``weight_decay``) with a warm-up
    over the first ``warmup`` share of the steps then cosine decay, batches of ``batch_size`` fresh frames
    (:func:`training_batch`: ``frames_per_dancer``, ``random_share``, ``blur_share``, ``noise``), the loss's Huber
    ``beta`` (normalized units: 2 / W is one pixel) and ``visibility_weight``, the weight EMA's decay."""

    steps: int
    batch_size: int
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.02
    ema_decay: float = 0.995
    beta: float = 0.02
    visibility_weight: float = 0.1
    frames_per_dancer: int = 4
    random_share: float = 0.5
    blur_share: float = 0.25
    noise: float = 0.03


def config(profile: str) -> RecipeConfig:
    """ci: a narrow net at 32x32 for 2 steps (a smoke run; notebooks load the shipped cpu checkpoint in every
    profile); cpu: 64x64, widths (16, 32, 64, 96) (339k parameters), 3000 steps of 32 frames; gpu: 128x128, twice as
    wide, 10000 steps of 128 frames (rendering the batches on the CPU is the bottleneck there).

    Measured for the cpu profile (torch.set_num_threads(1), on the 2-core machine while four other training jobs kept
    both cores busy; not a full run): 0.18 ... 0.21 s a step, 0.06 ... 0.08 s of it rendering the batch, so the 3000
    steps take ~10 minutes of one core (plus ~2 s for the evaluation); an idle core is faster."""
    if profile not in ("ci", "cpu", "gpu"):
        raise ValueError(f"unknown profile {profile!r}: one of ['ci', 'cpu', 'gpu']")
    model = {"ci": KeypointRegressorConfig(resolution=(32, 32), channels=(4, 8, 8, 16)),
             "cpu": KeypointRegressorConfig(resolution=(64, 64), channels=(16, 32, 64, 96)),
             "gpu": KeypointRegressorConfig(resolution=(128, 128), channels=(32, 64, 128, 192))}[profile]
    steps = {"ci": 2, "cpu": 3000, "gpu": 10000}[profile]
    return RecipeConfig(model, KeypointRegressorTrain(steps=steps,
                                                      batch_size={"ci": 8, "cpu": 32, "gpu": 128}[profile]))


def keypoint_loss(out: torch.Tensor, kp: torch.Tensor, size: tuple[int, int], beta: float,
                  visibility_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training objective of net outputs (B, K, 3) against keypoints (B, K, 3) in pixels of frames of ``size``:
    total = smooth_l1_beta(u, v | visible) + visibility_weight BCE(logit, visible), the smooth L1 averaged over the
    visible keypoints' 2 coordinates (0 if none is), the BCE over all keypoints. Returns (total, smooth L1, BCE)."""
    seen = kp[..., 2] > 0
    target = to_normalized(kp[..., :2], size)
    per = F.smooth_l1_loss(out[..., :2], target, beta=beta, reduction="none").sum(-1)      # (B, K)
    coord = (per * seen).sum() / (2 * seen.sum().clamp(min=1))
    vis = F.binary_cross_entropy_with_logits(out[..., 2], seen.float())
    return coord + visibility_weight * vis, coord, vis


def train(model: KeypointRegressor, config: RecipeConfig, job: TrainJob) -> TrainState:
    """AdamW with warm-up + cosine decay on :func:`keypoint_loss`, weight EMA; fresh frames every step."""
    t, size = config.train, config.model.resolution

    def loss_fn(state: TrainState, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, kp = batch
        with autocast(job.device):
            out = state.model(x).float()
        loss, coord, vis = keypoint_loss(out, kp, size, t.beta, t.visibility_weight)
        return loss, {"loss": loss, "coord": coord.detach(), "bce": vis.detach()}

    def data(step: int):
        return training_batch(step, t.batch_size, size, job.seed, frames_per_dancer=t.frames_per_dancer,
                              random_share=t.random_share, blur_share=t.blur_share, noise=t.noise)

    return fit_supervised(model, config, job, loss_fn, data, desc="keypoint_regressor")


# ---------------------------------------------------------------------------------------------- using it
@torch.no_grad()
def predict_keypoints(model: nn.Module, frames: torch.Tensor, *, batch_size: int = 100) -> torch.Tensor:
    """Keypoints (B, K, 3) read from frames (B, 3, H, W) in [0, 1] (any size >= 16; the model resizes): x, y in pixels
    of these frames (x = (u + 1) W / 2, y = (v + 1) H / 2) and confidence = sigmoid(visibility logit), in (0, 1).
    Runs in eval mode, a batch at a time, on the model's device; the result is on the CPU, float32."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        got = f"shape {tuple(frames.shape)}" if isinstance(frames, torch.Tensor) else type(frames).__name__
        hint = " (a video is (B, T, 3, H, W): fold time into the batch with frames.flatten(0, 1))" \
            if isinstance(frames, torch.Tensor) and frames.dim() == 5 else ""
        raise ValueError(f"predict_keypoints expects frames of shape (B, 3, H, W) in [0, 1], got {got}{hint}")
    out = batched(model, frames, batch_size=batch_size).float()
    return torch.cat([to_pixels(out[..., :2], tuple(frames.shape[-2:])), torch.sigmoid(out[..., 2:3])], -1)


@functools.lru_cache(maxsize=2)
def test_set(size: tuple[int, int]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The fixed evaluation frames at ``size`` (cached; do not modify them): name -> (frames (N, 3, H, W), keypoints
    (N, 25, 3)) for each of DANCERS (frames TEST_START ... + N_TEST - 1 of its recording) and "unseen" (N_UNSEEN
    frames of random people from UNSEEN_SEED, at frames in [TEST_START, 2 TEST_START))."""
    out = {}
    for d in DANCERS:
        clip = recording(d, N_TEST, TEST_START, size)
        out[d.name] = (clip.frames, clip.keypoints)
    g = torch.Generator().manual_seed(UNSEEN_SEED)
    out["unseen"] = sample_frames(g, N_UNSEEN, size, frames_per_dancer=UNSEEN_PER_DANCER, random_share=1.0,
                                  frames=(TEST_START, 2 * TEST_START))
    return out


test_set.__test__ = False  # a data helper, not a pytest test


def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    """On the held-out frames of :func:`test_set` at the model's resolution: over the three dancers together
    ``test_error_px`` (mean pixel error of the visible true keypoints), ``test_pck05`` / ``test_pck10`` (PCK at 0.05 /
    0.1 of the figure's height) and ``test_visibility_acc`` (share of keypoints whose predicted confidence > 1/2
    agrees with the truth's visibility); per dancer ``test_error_px_<name>``; and on unseen people ``unseen_error_px``,
    ``unseen_pck05``, ``unseen_pck10``. Pixels are those of the model's resolution."""
    model = model.to(device)
    sets = test_set(tuple(model.config.resolution))
    pred = {name: predict_keypoints(model, x) for name, (x, _) in sets.items()}
    names = [d.name for d in DANCERS]
    p_all, t_all = torch.cat([pred[n] for n in names]), torch.cat([sets[n][1] for n in names])
    out = {"test_error_px": keypoint_error(p_all, t_all), "test_pck05": pck(p_all, t_all, 0.05),
           "test_pck10": pck(p_all, t_all, 0.1),
           "test_visibility_acc": float(((p_all[..., 2] > 0.5) == (t_all[..., 2] > 0)).double().mean())}
    for n in names:
        out[f"test_error_px_{n}"] = keypoint_error(pred[n], sets[n][1])
    p, t = pred["unseen"], sets["unseen"][1]
    out.update({"unseen_error_px": keypoint_error(p, t), "unseen_pck05": pck(p, t, 0.05),
                "unseen_pck10": pck(p, t, 0.1)})
    return out


#: tolerance of each stored metric under `genlab eval` (float16 shipping, another machine's float maths)
METRICS = {"test_error_px": 0.05, "test_pck05": 0.005, "test_pck10": 0.005, "test_visibility_acc": 0.005,
           **{f"test_error_px_{d.name}": 0.05 for d in DANCERS},
           "unseen_error_px": 0.05, "unseen_pck05": 0.005, "unseen_pck10": 0.005}

KEYPOINT_REGRESSOR = Recipe(
    name="keypoint_regressor",
    summary="heatmap + soft-argmax CNN reading the 25 BODY_25 keypoints of a dancer's frame; notebook 10's pose ruler",
    build=build, config=config, train=train, evaluate=evaluate, metrics=METRICS, data=DATA, seed=0,
    ship_dtype=torch.float16,
)
