"""Portraits: the faces world as video, with a parametric face *tracker* -- the world of Deep Video Portraits
(Kim et al. 2018, "Deep Video Portraits", SIGGRAPH).

Deep Video Portraits tracks a parametric face model through a video of one *target* actor (identity, reflectance,
illumination, and per frame head pose, expression, eye gaze and blinks), renders synthetic *conditioning images* of the
model (a shaded colour render, a correspondence image, an eye-gaze map), and trains a network to turn them back into
the target's real frames. To reenact, a *source* actor is tracked, its motion is transferred onto the target's model,
the conditioning images are rendered and fed through the network.

Here the parametric model is the faces world's own (:mod:`genlab.worlds.faces`): every frame of a video is a factor
row, so the "tracker" is exact (its parameters are known per frame; :func:`track` adds tracking noise of a stated
scale), the "real" video is the detailed render (:func:`render_target`: hair strands, freckles, mottling, background
stripes, a fixed detail seed per actor), and the conditioning images are the three render passes of
:mod:`genlab.worlds.faces.conditioning`, which see none of that detail.

Actors (:class:`Actor`, :data:`TARGET`, :data:`SOURCE`): an identity (the 11 identity factors: shape, colours, hair,
background) and an illumination (``light_x``), fixed over the video; a rest pose (the *neutral* frame of relative
transfer); and a motion style: for each animated factor (:data:`ANIMATED`: yaw, pitch, roll, mouth_open, smile,
gaze_x, gaze_y; plus blink) the interval it moves in. A trajectory (:func:`motion`) is smooth: each animated factor is
the interval's midpoint plus its half width times s(t) = sum_k w_k sin(2 pi f_k t + phi_k) / sum_k w_k (three
sinusoids, frequencies 1/80 ... 1/20 cycles per frame, i.e. 0.3 ... 1.25 Hz at 25 frames/s, weights and phases drawn
once per actor and factor); blinks are short pulses, one in every 50 frames, sin(pi t' / 6) for 0 <= t' <= 6 frames
from a hashed start. Frame t of an actor's video is the same wherever it is asked for, so a training segment
(frames [0, n), :data:`TRAIN_START`) and a held-out test segment (:data:`TEST_START` onwards) of the same "recording"
never share a frame. ``scale`` > 1 widens every motion interval about its midpoint: motions outside the training
range, whose distance from it :func:`range_distance` measures.

Conditioning (Kim et al. Sec. 4, 5): :func:`conditioning` renders the 3 x 3 = 9 channels of a frame;
:func:`space_time_volume` stacks those of the last N_w frames, oldest first and the current frame last, into
9 N_w channels (the paper: N_w = 11); frames before the first repeat the first. :func:`transfer` is the relative
motion transfer: target animated factors = target's neutral + (source - source's neutral); identity and illumination
stay the target's; values are clipped to the factor ranges.

Value conventions: factor rows (T, N_FACTORS) float32 (the faces world's columns); frames and conditioning images
(T, C, R, R) float32 in [0, 1] (a network maps them to [-1, 1]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genlab.worlds.faces import (CONDITIONING_CHANNELS, CONDITIONING_PASSES, FACTOR_NAMES, FACTORS, N_FACTORS,
                                 check_factors, render_passes, render_sequence)
from genlab.worlds.faces.hashing import _uniforms

#: factors the tracker follows per frame: head pose, expression, eye gaze, then blink
POSE: tuple[str, ...] = ("yaw", "pitch", "roll")
EXPRESSION: tuple[str, ...] = ("mouth_open", "smile")
GAZE: tuple[str, ...] = ("gaze_x", "gaze_y")
ANIMATED: tuple[str, ...] = POSE + EXPRESSION + GAZE + ("blink",)
ILLUMINATION: tuple[str, ...] = ("light_x",)
#: fixed per actor: face shape, colours, hair, background (everything neither animated nor illumination)
IDENTITY: tuple[str, ...] = tuple(n for n in FACTOR_NAMES if n not in ANIMATED + ILLUMINATION)

TRAIN_START, TEST_START = 0, 50_000        # first frame of the training / held-out segment of an actor's recording
BLINK_PERIOD, BLINK_FRAMES = 50, 6         # one blink per BLINK_PERIOD frames, lasting BLINK_FRAMES
_COL = {n: j for j, n in enumerate(FACTOR_NAMES)}
_LOW = torch.tensor([f.low for f in FACTORS])
_HIGH = torch.tensor([f.high for f in FACTORS])


@dataclass(frozen=True)
class Actor:
    """One person of the world: ``identity`` (IDENTITY + ILLUMINATION factors, fixed), ``rest`` (the neutral value of
    every animated factor but blink), ``motion`` (the (low, high) interval of every animated factor but blink),
    ``detail_seed`` (the fine detail of the real video), ``seed`` (its trajectories)."""
    name: str
    identity: dict[str, float]
    rest: dict[str, float]
    motion: dict[str, tuple[float, float]]
    detail_seed: int
    seed: int
    blinks: bool = field(default=True)

    def neutral(self) -> torch.Tensor:
        """The actor's neutral frame: (N_FACTORS,) identity and illumination, animated factors at rest, eyes open."""
        row = torch.zeros(N_FACTORS)
        for n, v in {**self.identity, **self.rest, "blink": 0.0}.items():
            row[_COL[n]] = v
        return check_factors(row[None])[0]

    def training_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) (N_FACTORS,) of the motion at scale 1: the motion intervals; blink [0, 1]; fixed factors at
        their value."""
        lo, hi = self.neutral(), self.neutral().clone()
        lo = lo.clone()
        for n, (a, b) in self.motion.items():
            lo[_COL[n]], hi[_COL[n]] = a, b
        lo[_COL["blink"]], hi[_COL["blink"]] = 0.0, 1.0
        return lo, hi


#: the actor whose video trains the network (auburn long hair, pale, blue eyes, light from the right)
TARGET = Actor(
    "target",
    identity={"face_width": 0.46, "face_height": 0.60, "jaw": 0.3, "skin_tone": 0.75, "hair_hue": 0.03,
              "hair_lightness": 0.35, "hair_length": 0.8, "fringe": 0.6, "eye_hue": 0.6, "bg_hue": 0.55,
              "bg_texture": 0.7, "light_x": 0.4},
    rest={"yaw": 0.0, "pitch": 0.0, "roll": 0.0, "mouth_open": 0.1, "smile": 0.2, "gaze_x": 0.0, "gaze_y": 0.0},
    motion={"yaw": (-0.5, 0.5), "pitch": (-0.4, 0.4), "roll": (-0.12, 0.12), "mouth_open": (0.0, 0.6),
            "smile": (-0.3, 0.7), "gaze_x": (-0.6, 0.6), "gaze_y": (-0.5, 0.5)},
    detail_seed=7, seed=1)

#: the actor who drives the reenactment (short black hair, dark, brown eyes, light from the left; its own motion
#: style: rests turned and nodding slightly, talks more, frowns more)
SOURCE = Actor(
    "source",
    identity={"face_width": 0.52, "face_height": 0.55, "jaw": 0.9, "skin_tone": 0.2, "hair_hue": 0.1,
              "hair_lightness": 0.05, "hair_length": 0.1, "fringe": 0.1, "eye_hue": 0.08, "bg_hue": 0.15,
              "bg_texture": 0.1, "light_x": -0.5},
    rest={"yaw": 0.15, "pitch": 0.15, "roll": 0.05, "mouth_open": 0.05, "smile": -0.1, "gaze_x": -0.15, "gaze_y": 0.1},
    motion={"yaw": (-0.25, 0.55), "pitch": (-0.15, 0.5), "roll": (-0.03, 0.15), "mouth_open": (0.0, 0.65),
            "smile": (-0.5, 0.4), "gaze_x": (-0.65, 0.35), "gaze_y": (-0.3, 0.55)},
    detail_seed=11, seed=2)


def _waves(actor: Actor) -> np.ndarray:
    """(len(motion), 3, 3) per animated factor and sinusoid: frequency (cycles/frame), phase, weight."""
    u = _uniforms(np.arange(len(actor.motion) * 3, dtype=np.uint64) + np.uint64(1000 * actor.seed), 3, domain=77)
    u = u.reshape(len(actor.motion), 3, 3)
    return np.stack([1 / 80 + (1 / 20 - 1 / 80) * u[..., 0], 2 * math.pi * u[..., 1], 0.3 + 0.7 * u[..., 2]], -1)


def _check_frames(frames, start) -> tuple[int, int]:
    for name, v, low in (("frames", frames, 1), ("start", start, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    return int(frames), int(start)


def motion(actor: Actor, frames: int, start: int = 0, *, scale: float = 1.0) -> torch.Tensor:
    """The actor's tracked parameters for frames start, ..., start + frames - 1: (T, N_FACTORS) float32.

    scale: widen (> 1) or narrow (< 1) every motion interval about its midpoint (blinks unchanged); values are
    clipped to the factor ranges. scale = 1 is the actor's own motion (the training range, for the target)."""
    frames, start = _check_frames(frames, start)
    if not (isinstance(scale, (int, float)) and scale >= 0):
        raise ValueError(f"scale must be a number >= 0 (1: the actor's own motion range), got {scale!r}")
    t = np.arange(start, start + frames, dtype=np.float64)
    out = actor.neutral().expand(frames, -1).clone()
    for i, (name, (lo, hi)) in enumerate(actor.motion.items()):
        f, ph, w = (_waves(actor)[i, :, k] for k in range(3))
        s = (w[:, None] * np.sin(2 * math.pi * f[:, None] * t[None] + ph[:, None])).sum(0) / w.sum()
        out[:, _COL[name]] = torch.from_numpy((lo + hi) / 2 + scale * (hi - lo) / 2 * s).float()
    if actor.blinks:
        period = (t // BLINK_PERIOD).astype(np.uint64)
        onset = np.floor(_uniforms(period + np.uint64(7919 * actor.seed), 1, domain=78)[:, 0]
                         * (BLINK_PERIOD - BLINK_FRAMES - 1))
        tp = t - period * BLINK_PERIOD - onset
        blink = np.where((tp >= 0) & (tp < BLINK_FRAMES), np.sin(math.pi * tp / BLINK_FRAMES), 0.0)
        out[:, _COL["blink"]] = torch.from_numpy(np.clip(blink, 0.0, 1.0)).float()
    return torch.minimum(torch.maximum(out, _LOW), _HIGH)


def range_distance(params: torch.Tensor, actor: Actor = TARGET) -> torch.Tensor:
    """How far each frame's animated factors (blink excepted) lie outside the actor's training range: (T,), the
    largest over factors of max(0, below low or above high) / (factor range width); 0 inside the range."""
    p = check_factors(params)
    lo, hi = actor.training_range()
    cols = [_COL[n] for n in actor.motion]
    over = torch.maximum(lo[cols] - p[:, cols], p[:, cols] - hi[cols]).clamp(min=0) / (_HIGH - _LOW)[cols]
    return over.max(1).values


def track(params: torch.Tensor, jitter: float = 0.0, bias: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A noisy tracker: the animated factors (blink included) plus Gaussian jitter (independent per frame and factor)
    of standard deviation ``jitter`` and a constant ``bias``, both in units of each factor's half range (so
    jitter = 0.05 is 5 % of yaw's +-1, i.e. 1 degree); identity and illumination untouched; clipped to the ranges.
    (T, N_FACTORS) -> (T, N_FACTORS), seeded."""
    p = check_factors(params)
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0 (a standard deviation in half ranges), got {jitter!r}")
    g = torch.Generator().manual_seed(int(seed))
    cols = [_COL[n] for n in ANIMATED]
    half = (_HIGH - _LOW)[cols] / 2
    out = p.clone()
    out[:, cols] += (jitter * torch.randn(len(p), len(cols), generator=g) + bias) * half
    return torch.minimum(torch.maximum(out, _LOW), _HIGH)


def transfer(source: torch.Tensor, source_neutral: torch.Tensor, target_neutral: torch.Tensor) -> torch.Tensor:
    """Relative motion transfer (Deep Video Portraits' reenactment): each animated factor of the result is the
    target's neutral value plus the source's change from its own neutral, x_t = n_t + (x_s - n_s); identity and
    illumination are the target's. source (T, N_FACTORS), neutrals (N_FACTORS,). Returns (T, N_FACTORS), clipped to
    the factor ranges; the source's neutral maps exactly to the target's neutral."""
    s = check_factors(source)
    ns, nt = check_factors(source_neutral[None])[0], check_factors(target_neutral[None])[0]
    out = nt.expand(len(s), -1).clone()
    cols = [_COL[n] for n in ANIMATED]
    out[:, cols] = nt[cols] + (s[:, cols] - ns[cols])
    return torch.minimum(torch.maximum(out, _LOW), _HIGH)


def conditioning(params: torch.Tensor, resolution: int = 64) -> torch.Tensor:
    """The conditioning images of every frame: (T, 9, R, R) in [0, 1], channels shaded | correspondence | gaze
    (genlab.worlds.faces.conditioning). Functions of the parameters alone (no detail seed)."""
    out = render_passes(params, resolution, passes=CONDITIONING_PASSES)
    return torch.cat([out[p] for p in CONDITIONING_PASSES], 1)


def space_time_volume(cond: torch.Tensor, window: int) -> torch.Tensor:
    """Stack the conditioning images of the last ``window`` frames (N_w): cond (T, C, H, W) or (B, T, C, H, W) ->
    (..., T, window * C, H, W); frame t holds frames t - window + 1, ..., t in that order (the current frame's C
    channels last); frames before the first repeat frame 0."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window (N_w) must be an int >= 1, got {window!r}")
    if not isinstance(cond, torch.Tensor) or cond.ndim not in (4, 5):
        raise ValueError(f"cond must be (T, C, H, W) or (B, T, C, H, W), got "
                         f"{tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__}")
    t_axis = cond.ndim - 4
    t = cond.shape[t_axis]
    idx = (torch.arange(t)[:, None] + torch.arange(-window + 1, 1)[None]).clamp(min=0)   # (T, window)
    vol = cond.index_select(t_axis, idx.flatten()).unflatten(t_axis, (t, window))     # (..., T, window, C, H, W)
    return vol.flatten(t_axis + 1, t_axis + 2)


def render_target(params: torch.Tensor, actor: Actor = TARGET, resolution: int = 64) -> torch.Tensor:
    """The actor's "real" video for these parameters: the detailed render with the actor's detail seed, (T, 3, R, R)
    in [0, 1]."""
    return render_sequence(check_factors(params), resolution, detail_seeds=[actor.detail_seed])[0]


@dataclass
class PortraitClip:
    """A segment of an actor's recording: params (T, N_FACTORS) (the tracker's), frames (T, 3, R, R) (the real
    video), cond (T, 9, R, R) (the conditioning images of ``params``); all in [0, 1] but params."""
    params: torch.Tensor
    frames: torch.Tensor
    cond: torch.Tensor


def recording(actor: Actor = TARGET, frames: int = 100, start: int = TRAIN_START, resolution: int = 64, *,
              scale: float = 1.0) -> PortraitClip:
    """Frames start ... start + frames - 1 of the actor's recording, with their real frames and conditioning."""
    p = motion(actor, frames, start, scale=scale)
    return PortraitClip(p, render_target(p, actor, resolution), conditioning(p, resolution))


__all__ = ["Actor", "TARGET", "SOURCE", "ANIMATED", "POSE", "EXPRESSION", "GAZE", "IDENTITY", "ILLUMINATION",
           "TRAIN_START", "TEST_START", "CONDITIONING_CHANNELS", "motion", "range_distance", "track", "transfer",
           "conditioning", "space_time_volume", "render_target", "PortraitClip", "recording"]
