"""Procedural faces: a parametric 2-D face world with exact ground truth, our offline stand-in for CelebA-HQ / FFHQ.

What it is for: GAN, StyleGAN and VQ-VAE notebooks train on :func:`faces` (a fixed train/test split) and can check a
model against the truth the world knows: every image comes from a row of named factors (pose, shape, colours,
expression, light) and a per-image *detail seed* (freckles, skin mottling, hair strands, the background pattern's
phase). The detail seed never changes a factor, so it is exactly the "noise" a StyleGAN notebook measures. Later,
the same renderer is the parametric face model of Deep Video Portraits (Kim et al. 2018): a sequence of factor rows
renders a video (:func:`render_sequence`) and other render passes (a flat correspondence colouring, a gaze map) can
be added beside "rgb" and "mask".

Factors (:data:`FACTORS`, columns of a factor matrix in this order; all continuous floats, sampled uniformly):

==============  ======  ======  ==============================================================================
name            low     high    meaning
==============  ======  ======  ==============================================================================
yaw             -1      1       head turn; +1 turns the face to the image right: the features shift right
                                (along the head's cylinder, up to 0.35 rad) and the right side of the face narrows
pitch           -1      1       nod; +1 looks down: the features shift down (up to 0.3 rad)
roll            -0.35   0.35    in-plane tilt in radians about the head centre, + = clockwise on screen
face_width      0.40    0.54    face width as a fraction of the image width
face_height     0.52    0.64    forehead-to-chin height as a fraction of the image height
jaw             0       1       lower-face shape: 0 pointed chin, 0.3 oval, 1 square jaw
skin_tone       0       1       0 dark brown ... 1 pale
hair_hue        0.02    0.12    HSV hue of the hair: 0.02 red/auburn ... 0.12 golden
hair_lightness  0       1       0 black ... 1 blonde
hair_length     0       1       0 short (ends above the ears), 0.3 bob, 1 long (past the bottom of the image)
fringe          0       1       0 high hairline ... 1 fringe down to the eyebrows
eye_hue         0.05    0.65    HSV hue of the iris: 0.07 brown, 0.3 green, 0.6 blue
mouth_open      0       1       0 closed lips ... 1 wide open (dark interior, upper teeth)
smile           -1      1       mouth-corner curvature: -1 frown, +1 smile
gaze_x          -1      1       iris offset in the eye, + = image right (a fraction of the largest offset)
gaze_y          -1      1       iris offset in the eye, + = down
blink           0       1       0 open ... 1 closed (the upper lid covers the eye)
light_x         -1      1       light direction: + = light from the image right (Lambert shading)
bg_hue          0       0.85    HSV hue of the background (the shirt takes the opposite hue); short of 1 = 0, no wrap
bg_texture      0       1       amount of the background stripe pattern (its angle, period and phase: detail)
==============  ======  ======  ==============================================================================

Value conventions: factors are float32 (n, N_FACTORS) in these ranges (:func:`normalize_factors` maps them to
[-1, 1] for a network); images (n, 3, R, R) float32 in [0, 1]; videos (B, T, 3, R, R); detail seeds int64 (n,) >= 0.
Image coordinates: x (columns, right) and y (rows, down) in [-1, 1]; pixel j has its centre at x = (2j + 1) / R - 1.
The face frame (u, v) is the image frame moved to the head centre and turned by ``roll``; all face parts are laid out
in it in units of the image (see :class:`FaceLayout`), so a face looks the same at every resolution.

Rendering: each part is a signed-distance shape (exact for circles, first-order f / |grad f| for ellipses and the
jaw) with a linear coverage ramp one pixel wide, i.e. analytic antialiasing without supersampling; parts are
composited back to front (painter's algorithm). The per-face constants (:class:`FaceParams`: layout, colours,
light) are computed once per call in float64; the pixels are vectorised over the batch and the grid, chunked over
the batch (about 2^18 pixels a chunk), and the small parts are evaluated only inside the box that holds them in every
face of the chunk (:class:`Scene` regions). Pixel maths uses no transcendental functions but the jaw's power, so a
face's image does not depend on its neighbours in the batch (tested bitwise). One thread renders about 2,000 faces
per second at 64 x 64 (benchmarks/bench_faces.py). Gaze and blink are strictly local: they change pixels inside
:func:`eye_boxes` only. The lid moves by blink^2, so most uniformly sampled faces look awake.

Render passes (:data:`RENDER_PASSES`): a pass is a function of a :class:`Scene` (one chunk of faces: the face-frame
coordinates and the coverage of every part, :data:`LAYERS`) that returns (n, C, R, R). "rgb" composites colours,
"mask" composites 1 on the head (face and its parts, ears, neck, hair) and 0 on background and shirt. To add a pass,
register it::

    @render_pass("correspondence", channels=3)
    def correspondence(scene: Scene) -> torch.Tensor:
        '''(u, v, 1) of the face frame on the face, 0 elsewhere: a flat colouring that moves with the face.'''
        uv1 = torch.cat([scene.u, scene.v, torch.ones_like(scene.u)], 1)
        return scene.composite({"face": uv1, "front_hair": 0.0}, initial=torch.zeros_like(uv1))

and ask for it with ``render_passes(factors, passes=("rgb", "correspondence"))``. ``composite`` takes a value per
layer name (a float, per-face (n, C, 1, 1) or a map (n, C, R, R)); layers left out are transparent. A gaze map would
read the iris centres and eye sizes of :class:`FaceLayout` (``scene.params.iris_l``, ...) the same way.

Dataset: :func:`faces` is a fixed split, N_TRAIN = 20,000 train and N_TEST = 5,000 test faces, with factors drawn by
an integer hash of (split stream, index) and detail seed = index (train) or 1,000,000 + index (test): the factors
are bit-identical on every machine, and so are the images, up to the last bit of the platform's float maths (then
rounded to uint8). Note: ``genlab.data`` exports the function :func:`faces`, which hides this module as the
attribute ``genlab.data.faces``; import from it (``from genlab.worlds.faces import Scene``) or use
``importlib.import_module("genlab.data.faces")``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class Factor:
    """One named factor of variation: its column name, its range [low, high] and what it does."""
    name: str
    low: float
    high: float
    doc: str


FACTORS: tuple[Factor, ...] = (
    Factor("yaw", -1.0, 1.0, "head turn; + moves the features to the image right and narrows the right side"),
    Factor("pitch", -1.0, 1.0, "nod; + looks down (features move down)"),
    Factor("roll", -0.35, 0.35, "in-plane tilt in radians, + = clockwise on screen"),
    Factor("face_width", 0.40, 0.54, "face width / image width"),
    Factor("face_height", 0.52, 0.64, "forehead-to-chin height / image height"),
    Factor("jaw", 0.0, 1.0, "0 pointed chin ... 1 square jaw"),
    Factor("skin_tone", 0.0, 1.0, "0 dark brown ... 1 pale"),
    Factor("hair_hue", 0.02, 0.12, "HSV hue of the hair: red/auburn ... golden"),
    Factor("hair_lightness", 0.0, 1.0, "0 black ... 1 blonde"),
    Factor("hair_length", 0.0, 1.0, "0 short ... 1 long (past the bottom of the image)"),
    Factor("fringe", 0.0, 1.0, "0 high hairline ... 1 fringe down to the eyebrows"),
    Factor("eye_hue", 0.05, 0.65, "HSV hue of the iris: brown 0.07, green 0.3, blue 0.6"),
    Factor("mouth_open", 0.0, 1.0, "0 closed ... 1 wide open"),
    Factor("smile", -1.0, 1.0, "-1 frown ... +1 smile"),
    Factor("gaze_x", -1.0, 1.0, "iris offset, + = image right"),
    Factor("gaze_y", -1.0, 1.0, "iris offset, + = down"),
    Factor("blink", 0.0, 1.0, "0 open ... 1 closed"),
    Factor("light_x", -1.0, 1.0, "light from the image left (-1) ... right (+1)"),
    Factor("bg_hue", 0.0, 0.85, "HSV hue of the background (stops short of 1 = 0: a regressor reads it without wrap-around)"),
    Factor("bg_texture", 0.0, 1.0, "amount of the background stripe pattern"),
)
N_FACTORS = len(FACTORS)
FACTOR_NAMES: tuple[str, ...] = tuple(f.name for f in FACTORS)
_COLUMN = {name: j for j, name in enumerate(FACTOR_NAMES)}
_LOW = torch.tensor([f.low for f in FACTORS], dtype=torch.float32)
_HIGH = torch.tensor([f.high for f in FACTORS], dtype=torch.float32)
#: a frontal, open-eyed, mid-coloured face: the start of :func:`neutral_factors`, the face editor and the tests
NEUTRAL = {"yaw": 0.0, "pitch": 0.0, "roll": 0.0, "face_width": 0.47, "face_height": 0.58, "jaw": 0.35,
           "skin_tone": 0.6, "hair_hue": 0.06, "hair_lightness": 0.3, "hair_length": 0.35, "fringe": 0.4,
           "eye_hue": 0.3, "mouth_open": 0.1, "smile": 0.3, "gaze_x": 0.0, "gaze_y": 0.0, "blink": 0.0,
           "light_x": 0.3, "bg_hue": 0.58, "bg_texture": 0.3}

MIN_RESOLUTION = 16
N_TRAIN, N_TEST = 20_000, 5_000
SPLIT_STREAMS = {"train": 1, "test": 2}  # hash streams of the split factors (disjoint by construction)
TEST_DETAIL_OFFSET = 1_000_000  # test face i has detail seed 1,000,000 + i; train face i has detail seed i
_CHUNK_PIXELS = 1 << 18  # faces per chunk = this / R^2: each (n, 1, R, R) intermediate is ~1 MB (measured best)


# ------------------------------------------------------------------------------------------------ factor matrices

def sample_factors(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n faces from the world's true distribution: each factor uniform in its range. Returns (n, N_FACTORS) float32."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0 (how many faces), got {n!r}")
    u = torch.rand(int(n), N_FACTORS, generator=generator)
    return torch.minimum(_LOW + (_HIGH - _LOW) * u, _HIGH)


def neutral_factors(n: int = 1, **overrides: float) -> torch.Tensor:
    """(n, N_FACTORS) float32 copies of :data:`NEUTRAL`, with factors set by name, e.g. ``neutral_factors(yaw=0.5)``."""
    unknown = sorted(set(overrides) - set(FACTOR_NAMES))
    if unknown:
        raise ValueError(f"unknown factor name(s) {unknown}: use names from FACTOR_NAMES {list(FACTOR_NAMES)}")
    row = torch.tensor([float(overrides.get(name, NEUTRAL[name])) for name in FACTOR_NAMES], dtype=torch.float32)
    return check_factors(row.expand(n, -1).clone())


def normalize_factors(factors: torch.Tensor) -> torch.Tensor:
    """Map factors (..., N_FACTORS) from their ranges to [-1, 1]: u = 2 (f - low) / (high - low) - 1."""
    return 2.0 * (torch.as_tensor(factors, dtype=torch.float32) - _LOW) / (_HIGH - _LOW) - 1.0


def denormalize_factors(u: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalize_factors`: (..., N_FACTORS) in [-1, 1] -> f = low + (u + 1) / 2 (high - low)."""
    return _LOW + (torch.as_tensor(u, dtype=torch.float32) + 1.0) * 0.5 * (_HIGH - _LOW)


def check_factors(factors) -> torch.Tensor:
    """Validate a factor matrix and return it as a float32 CPU tensor (n, N_FACTORS).

    Raises ValueError for a wrong shape, a NaN, or a value outside its factor's range (by more than 1e-5 of the
    range), naming the factor, its column, the face (row), the value and the range.
    """
    f = torch.as_tensor(factors).detach().cpu()
    if f.ndim != 2 or f.shape[1] != N_FACTORS:
        raise ValueError(f"factors must have shape (n, {N_FACTORS}): one row per face, columns in FACTOR_NAMES "
                         f"order {list(FACTOR_NAMES)}; got shape {tuple(f.shape)}")
    if not (f.is_floating_point() or f.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"factors must be floating point, got dtype {f.dtype}")
    f = f.to(torch.float32)
    tol = 1e-5 * (_HIGH - _LOW)
    bad = torch.isnan(f) | (f < _LOW - tol) | (f > _HIGH + tol)
    if bad.any():
        i, j = (int(k) for k in bad.nonzero()[0])
        fac = FACTORS[j]
        raise ValueError(f"factor {fac.name!r} (column {j}) of face {i} is {f[i, j].item():.6g}, outside its range "
                         f"[{fac.low:g}, {fac.high:g}] ({int(bad.sum())} bad value(s) in all); see FACTORS")
    return f


def _check_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < MIN_RESOLUTION:
        raise ValueError(f"resolution must be an int >= {MIN_RESOLUTION} (pixels per side), got {resolution!r}")
    return int(resolution)


def _check_seeds(detail_seeds, n: int) -> np.ndarray:
    """(n,) uint64 from None (all 0) or n ints >= 0."""
    if detail_seeds is None:
        return np.zeros(n, dtype=np.uint64)
    s = np.asarray(detail_seeds.detach().cpu() if isinstance(detail_seeds, torch.Tensor) else detail_seeds)
    if s.shape != (n,) or not (np.issubdtype(s.dtype, np.integer) or s.size == 0) or (s < 0).any():
        raise ValueError(f"detail_seeds must be {n} ints >= 0 (one per face), got shape {s.shape} dtype {s.dtype}")
    return s.astype(np.uint64)


# ------------------------------------------------------------------------------------- counter-based random numbers

def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijective mix of uint64 (numpy's uint64 wraps mod 2^64)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniforms(keys: np.ndarray, count: int, domain: int) -> np.ndarray:
    """(n, count) float64 in [0, 1): the top 53 bits of hash(hash(domain, key) + counter). Integer maths only, so the
    numbers are the same on every machine; ``domain`` separates the streams (detail vs split factors)."""
    with np.errstate(over="ignore"):
        base = _splitmix64(_splitmix64(np.uint64(domain) << np.uint64(40)) ^ keys.astype(np.uint64))
        z = _splitmix64(base[:, None] + np.arange(count, dtype=np.uint64)[None, :])
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


# -------------------------------------------------------------------------------------------------------- layout

CENTRE = (0.0, -0.06)  # head centre (x, y) in image units; roll turns the face frame about it
YAW_MAX, PITCH_MAX = 0.35, 0.30  # radians at yaw = +-1, pitch = +-1
EYE_U, EYE_V, EYE_W, EYE_H = 0.40, -0.08, 0.24, 0.13  # eye centre (u/a, v/b), half width / a, half height / a
IRIS, PUPIL = 0.56, 0.45  # iris radius / eye half width; pupil radius / iris radius
GAZE_U, GAZE_V = 0.42, 0.35  # largest iris offset / eye half width, / eye half height
BROW_U, BROW_V = 0.42, -0.30
NOSE_V, MOUTH_V = 0.20, 0.48
FRECKLE_U, FRECKLE_V, FRECKLE_DV = 0.62, 0.13, 0.19  # the freckle band: |u/a| < 0.62, |v/b - 0.13| < 0.19
NECK_TOP = CENTRE[1] + 0.2  # y where the neck starts (hidden under the chin)
SHIRT = (1.25, 1.05, 0.5)  # shirt ellipse (image frame): centre y, half axes


def _turn(k, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A point at k = u0 / a on a cylinder of radius a, turned by ``angle`` (float64 tensors): its new position
    sin(asin k + angle) in units of a, and the foreshortening cos(asin k + angle) / cos(asin k) of a part there."""
    k0 = torch.asin(torch.as_tensor(k, dtype=torch.float64))
    return torch.sin(k0 + angle), torch.cos(k0 + angle) / torch.cos(k0)


def _rows(record, sl: slice):
    """The same dataclass record for faces ``sl`` only (every field has the face as its first axis; views)."""
    return type(record)(**{f.name: getattr(record, f.name)[sl] for f in fields(record)})


@dataclass
class FaceLayout:
    """Where every part of each face sits: per-face (n, 1, 1, 1) float32, face-frame units (image units, see the
    module docstring); suffixes _l / _r = the image-left / image-right part. Computed in float64 from the factors
    (so a face's layout does not depend on its neighbours in the batch), then stored as float32."""
    cos_r: torch.Tensor  # roll: u = cos dx + sin dy, v = -sin dx + cos dy with (dx, dy) = (x, y) - CENTRE
    sin_r: torch.Tensor
    yaw: torch.Tensor  # head turn and nod in radians
    pitch: torch.Tensor
    a: torch.Tensor  # face half width, and the half widths left / right of u = 0 (yaw narrows one side)
    a_l: torch.Tensor
    a_r: torch.Tensor
    b: torch.Tensor  # face half height
    jaw_p: torch.Tensor  # lower half of the face: |u / a|^p + (v / b)^2 = 1, p from 1.25 (pointed) to 4.5 (square)
    hair_u: torch.Tensor  # hair cap ellipse: centre (hair_u, hair_v), half axes (hair_a, hair_b)
    hair_v: torch.Tensor
    hair_a: torch.Tensor
    hair_b: torch.Tensor
    hair_end: torch.Tensor  # v where the hair ends
    curtain_w: torch.Tensor  # long hair below the cap: half width curtain_w + 0.3 hair_a v / b
    fringe_v: torch.Tensor  # hairline: v = fringe_v + fringe_curve (u / hair_a)^2 (+ strands)
    fringe_curve: torch.Tensor
    ear_l: torch.Tensor  # ear centres (u), shared v and half axes
    ear_r: torch.Tensor
    ear_v: torch.Tensor
    ear_a: torch.Tensor
    ear_b: torch.Tensor
    neck_x: torch.Tensor  # neck (image frame): |x - neck_x| < neck_w, y > NECK_TOP
    neck_w: torch.Tensor
    eye_l: torch.Tensor  # eye centres (u), shared v, half widths (foreshortened by yaw) and half height
    eye_r: torch.Tensor
    eye_v: torch.Tensor
    eye_w_l: torch.Tensor
    eye_w_r: torch.Tensor
    eye_h: torch.Tensor
    eye_mid: torch.Tensor  # u between the eyes: pixels right of it belong to the right eye / brow
    iris_l: torch.Tensor  # iris centres (u) after gaze, shared v; iris half axes (horizontal per eye, vertical)
    iris_r: torch.Tensor
    iris_v: torch.Tensor
    iris_a_l: torch.Tensor
    iris_a_r: torch.Tensor
    iris_b: torch.Tensor
    lid_v: torch.Tensor  # upper-lid edge: the lid covers the eye opening above it (blink moves it down)
    brow_l: torch.Tensor
    brow_r: torch.Tensor
    brow_v: torch.Tensor
    brow_w_l: torch.Tensor
    brow_w_r: torch.Tensor
    brow_t: torch.Tensor  # brow half thickness
    nose_u: torch.Tensor  # nose tip
    nose_v: torch.Tensor
    nose_w: torch.Tensor  # half width of the shadow under the nose
    mouth_u: torch.Tensor
    mouth_v: torch.Tensor
    mouth_w: torch.Tensor  # half width
    mouth_in: torch.Tensor  # largest half height of the open interior
    lip_t: torch.Tensor  # lip thickness
    smile_amp: torch.Tensor  # the lip line rises by 0.7 smile_amp at the corners (negative: frown)

    @classmethod
    def from_factors(cls, factors: torch.Tensor) -> FaceLayout:
        """factors: (n, N_FACTORS) float32, already checked."""
        f = {name: factors[:, j].double().view(-1, 1, 1, 1) for j, name in enumerate(FACTOR_NAMES)}
        a, b = f["face_width"], f["face_height"]
        yaw, pitch = YAW_MAX * f["yaw"], PITCH_MAX * f["pitch"]
        out = {"cos_r": torch.cos(f["roll"]), "sin_r": torch.sin(f["roll"]), "yaw": yaw, "pitch": pitch, "a": a,
               "b": b, "jaw_p": 1.25 + 3.25 * f["jaw"],
               # a turned head shows less face on the side it turns to
               "a_l": a * (1 - 0.12 * torch.relu(-f["yaw"])), "a_r": a * (1 - 0.12 * torch.relu(f["yaw"]))}
        # hair: a cap around the head (moving against the features when the head turns), cut at hair_end
        out.update(hair_u=-0.2 * a * torch.sin(yaw), hair_v=-0.12 * b, hair_a=1.15 * a, hair_b=1.16 * b,
                   hair_end=b * (-0.3 + 2.4 * f["hair_length"]), curtain_w=1.06 * a,
                   fringe_v=b * (-0.82 + 0.42 * f["fringe"]), fringe_curve=0.32 * b * (1 - f["fringe"]))
        ear_shift = 0.3 * a * torch.sin(yaw)  # the ears sit behind the face and move against the features
        out.update(ear_l=-0.97 * out["a_l"] - ear_shift, ear_r=0.97 * out["a_r"] - ear_shift,
                   ear_v=b * (0.02 - 0.2 * torch.sin(pitch)), ear_a=0.14 * a, ear_b=0.21 * b)
        # the neck stays upright below the chin; the chin moves by -sin(roll) b when the head tilts
        out.update(neck_x=CENTRE[0] - 0.6 * torch.sin(f["roll"]) * b, neck_w=0.42 * a)
        # eyes on the cylinder of the head (_turn): position and foreshortening per eye
        (pl, fl), (pr, fr) = _turn(-EYE_U, yaw), _turn(EYE_U, yaw)
        pv, fv = _turn(EYE_V, pitch)
        eye_w_l, eye_w_r, eye_h = EYE_W * a * fl, EYE_W * a * fr, EYE_H * a * fv
        out.update(eye_l=a * pl, eye_r=a * pr, eye_v=b * pv, eye_w_l=eye_w_l, eye_w_r=eye_w_r, eye_h=eye_h,
                   eye_mid=a * (pl + pr) / 2)
        # iris: round in the unturned eye (radius IRIS * EYE_W * a), foreshortened like its eye, moved by gaze;
        # the lid edge moves by blink^2, so that most uniformly sampled faces look awake
        r_iris = IRIS * EYE_W * a
        out.update(iris_l=a * pl + f["gaze_x"] * GAZE_U * eye_w_l, iris_r=a * pr + f["gaze_x"] * GAZE_U * eye_w_r,
                   iris_v=b * pv + f["gaze_y"] * GAZE_V * eye_h, iris_a_l=r_iris * fl, iris_a_r=r_iris * fr,
                   iris_b=r_iris * fv, lid_v=b * pv - 1.1 * eye_h + 1.9 * eye_h * f["blink"] ** 2)
        (bl, gl), (br, gr) = _turn(-BROW_U, yaw), _turn(BROW_U, yaw)
        out.update(brow_l=a * bl, brow_r=a * br, brow_v=b * _turn(BROW_V, pitch)[0], brow_w_l=0.24 * a * gl,
                   brow_w_r=0.24 * a * gr, brow_t=0.032 * b)
        # the nose tip stands out of the face, so it moves more than the face surface when the head turns
        out.update(nose_u=1.2 * a * torch.sin(yaw), nose_v=b * _turn(NOSE_V, pitch)[0] + 0.06 * b * torch.sin(pitch),
                   nose_w=0.13 * a * torch.cos(yaw))
        mv, fm = _turn(MOUTH_V, pitch)
        out.update(mouth_u=a * torch.sin(yaw), mouth_v=b * mv, mouth_w=0.34 * a * torch.cos(yaw),
                   mouth_in=b * fm * (0.015 + 0.10 * f["mouth_open"]), lip_t=0.055 * b * fm,
                   smile_amp=0.11 * b * fm * f["smile"])
        return cls(**{k: t.to(torch.float32) for k, t in out.items()})

    def head_extent(self) -> tuple[torch.Tensor, ...]:
        """Face-frame rectangle (u_lo, u_hi, v_lo, v_hi), each (n, 1, 1, 1), that holds the face and the ears."""
        return (torch.minimum(-self.a_l, self.ear_l - self.ear_a), torch.maximum(self.a_r, self.ear_r + self.ear_a),
                -self.b, torch.maximum(self.b, self.ear_v + self.ear_b))

    def feature_extent(self) -> tuple[torch.Tensor, ...]:
        """Face-frame rectangle that holds the eyes, brows, nose and mouth."""
        u_lo = torch.minimum(self.eye_l - self.eye_w_l, self.brow_l - self.brow_w_l)
        u_hi = torch.maximum(self.eye_r + self.eye_w_r, self.brow_r + self.brow_w_r)
        v_lo = self.brow_v - 2.5 * self.brow_t - 0.04 * self.b
        v_hi = self.mouth_v + 0.3 * self.smile_amp.abs() + self.mouth_in + self.lip_t
        return u_lo, u_hi, v_lo, v_hi

    def freckle_extent(self) -> tuple[torch.Tensor, ...]:
        """Face-frame rectangle that holds the freckle band (moved with the head like the features)."""
        du, dv = self.freckle_shift()
        return (du - FRECKLE_U * self.a, du + FRECKLE_U * self.a, dv + (FRECKLE_V - FRECKLE_DV) * self.b,
                dv + (FRECKLE_V + FRECKLE_DV) * self.b)

    def freckle_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """How far the freckle grid moves with the turned head: (a sin yaw, b sin(pitch) / 2), in float64 maths."""
        return ((self.a.double() * torch.sin(self.yaw.double())).float(),
                (0.5 * self.b.double() * torch.sin(self.pitch.double())).float())

    def eye_extents(self) -> list[tuple[torch.Tensor, ...]]:
        """Face-frame rectangles of the left and right eye (the opening and its outline)."""
        pad = 0.3 * self.eye_h  # the eye outline reaches this far past the opening
        return [(centre - w - pad, centre + w + pad, self.eye_v - self.eye_h - pad, self.eye_v + self.eye_h + pad)
                for centre, w in ((self.eye_l, self.eye_w_l), (self.eye_r, self.eye_w_r))]


def _pixel_index(z, resolution: int):
    """Fractional pixel index of image coordinate z: pixel j has its centre at z = (2j + 1) / R - 1."""
    return (z + 1) * resolution / 2 - 0.5


def pixel_boxes(layout: FaceLayout, u_lo, u_hi, v_lo, v_hi, resolution: int, margin: int = 2) -> torch.Tensor:
    """Pixel boxes (r0, c0, r1, c1), end-exclusive, clipped to the image, that hold face-frame rectangles.

    u_lo ... v_hi: (n, 1, 1, 1) rectangle edges in the face frame. The rectangle turned by roll has half extents
    (|cos| hu + |sin| hv, |sin| hu + |cos| hv) around CENTRE + R(roll) (its centre). ``margin`` pixels are added on
    every side (antialiasing reaches half a pixel past an edge). Returns (n, 4) int64.
    """
    c, s = layout.cos_r.double(), layout.sin_r.double()
    uc, vc = (u_lo.double() + u_hi.double()) / 2, (v_lo.double() + v_hi.double()) / 2
    hu, hv = (u_hi.double() - u_lo.double()) / 2, (v_hi.double() - v_lo.double()) / 2
    xc, yc = CENTRE[0] + c * uc - s * vc, CENTRE[1] + s * uc + c * vc  # (x, y) = CENTRE + R(roll) (u, v)
    hx, hy = c.abs() * hu + s.abs() * hv, s.abs() * hu + c.abs() * hv
    box = torch.cat([torch.floor(_pixel_index(yc - hy, resolution)) - margin,
                     torch.floor(_pixel_index(xc - hx, resolution)) - margin,
                     torch.ceil(_pixel_index(yc + hy, resolution)) + margin + 1,
                     torch.ceil(_pixel_index(xc + hx, resolution)) + margin + 1], dim=1)
    return box.view(-1, 4).clamp(0, resolution).to(torch.int64)


def eye_boxes(factors, resolution: int = 64) -> torch.Tensor:
    """Pixel boxes around the two eyes: (n, 2, 4) int64 (r0, c0, r1, c1), rows r0 <= r < r1, columns c0 <= c < c1;
    eye 0 is the image-left eye. gaze_x, gaze_y and blink change no pixel outside these boxes."""
    lay = FaceLayout.from_factors(check_factors(factors))
    res = _check_resolution(resolution)
    return torch.stack([pixel_boxes(lay, *extent, res, margin=1) for extent in lay.eye_extents()], dim=1)


# ------------------------------------------------------------------------------------------------ detail (noise)

N_DETAIL = 17  # uniforms per detail seed: background 4, strands 5, mottling 4, freckles 4
FRECKLE_CELL = 0.05  # freckles: at most one per cell of this size (image units), radius 0.011


@dataclass
class Details:
    """The stochastic fine detail of each face, drawn from its detail seed alone (never from the factors); every
    field is (n, 1, 1, 1) float32.

    Hair strands and skin mottling are triangle waves tri(k . p + phase) with random wave numbers and phases (the
    phases carry an offset of 64 so that every argument stays positive); freckles sit on a jittered grid of cells
    in the face frame, one where the cell's hash falls below the face's freckle density."""
    bg_cos: torch.Tensor  # background stripes: direction, period (image units), phase, wobble
    bg_sin: torch.Tensor
    bg_period: torch.Tensor
    bg_phase: torch.Tensor
    bg_wobble: torch.Tensor
    strand_k1: torch.Tensor  # hair strands along u: two waves (1 / wavelength, phase) mixed by strand_w
    strand_k2: torch.Tensor
    strand_phase1: torch.Tensor
    strand_phase2: torch.Tensor
    strand_w: torch.Tensor
    mottle_ku1: torch.Tensor  # skin mottling: the product of two waves in the face frame
    mottle_kv1: torch.Tensor
    mottle_ku2: torch.Tensor
    mottle_kv2: torch.Tensor
    mottle_phase1: torch.Tensor
    mottle_phase2: torch.Tensor
    freckle_density: torch.Tensor  # fraction of cells with a freckle (0 for a third of the faces)
    freckle_dark: torch.Tensor  # how much a freckle darkens the skin
    freckle_off_u: torch.Tensor  # offset of the cell grid, in cells: which cells a face has
    freckle_off_v: torch.Tensor

    @classmethod
    def from_seeds(cls, seeds: np.ndarray) -> Details:
        r = torch.from_numpy(_uniforms(seeds, N_DETAIL, domain=0)).T.reshape(N_DETAIL, -1, 1, 1, 1)
        angle, wave1, wave2 = math.pi * r[0], 2 * math.pi * r[9], 2 * math.pi * r[10]
        out = dict(bg_cos=torch.cos(angle), bg_sin=torch.sin(angle), bg_period=0.12 + 0.25 * r[1],
                   bg_phase=64 + r[2], bg_wobble=0.6 * r[3],
                   strand_k1=1 / (0.04 + 0.02 * r[4]), strand_k2=1 / (0.09 + 0.06 * r[5]), strand_phase1=64 + r[6],
                   strand_phase2=64 + r[7], strand_w=0.3 + 0.4 * r[8],
                   mottle_ku1=torch.cos(wave1) / 0.3, mottle_kv1=torch.sin(wave1) / 0.3,
                   mottle_ku2=torch.cos(wave2) / 0.2, mottle_kv2=torch.sin(wave2) / 0.2,
                   mottle_phase1=64 + r[11], mottle_phase2=64 + r[12],
                   freckle_density=0.35 * (1.5 * r[13] - 0.5).clamp(min=0.0), freckle_dark=0.2 + 0.2 * r[14],
                   freckle_off_u=16 + 500 * r[15], freckle_off_v=16 + 500 * r[16])
        return cls(**{k: t.to(torch.float32) for k, t in out.items()})


# ------------------------------------------------------------------------------------------ per-face constants

def _hsv(h: torch.Tensor, s: float | torch.Tensor, v: float | torch.Tensor) -> torch.Tensor:
    """HSV -> RGB, (n, 1, 1, 1) -> (n, 3, 1, 1): c = v - v s clamp(min(k, 4 - k), 0, 1), k = (m + 6h) mod 6 with
    m = 5, 3, 1 for R, G, B."""
    k = (torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1) + 6 * h) % 6
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0.0, 1.0)


def _rgb(*c: float) -> torch.Tensor:
    return torch.tensor(c, dtype=torch.float32).view(1, 3, 1, 1)


SKIN = torch.tensor([[0.33, 0.20, 0.13], [0.72, 0.50, 0.36], [0.97, 0.82, 0.70]])  # skin_tone 0, 0.5, 1
EYE_WHITE, PUPIL_RGB, LASH_RGB = _rgb(0.94, 0.93, 0.90), _rgb(0.04, 0.03, 0.03), _rgb(0.10, 0.07, 0.06)
MOUTH_RGB, TEETH_RGB, GLINT_RGB = _rgb(0.30, 0.06, 0.08), _rgb(0.93, 0.91, 0.86), _rgb(1.0, 1.0, 1.0)


@dataclass
class FaceParams:
    """Everything per face that the renderer reads, computed once per call for the whole batch (the per-chunk work
    is then pixel work only): the :class:`FaceLayout`, values derived from it, colours and light.

    Fields are (n, 1, 1, 1) float32, colours (n, 3, 1, 1). ``*_avg`` / ``*_dev``: the mean and half difference of
    a left / right pair, so that a pixel picks its side as avg + sign * dev (cheaper than torch.where).
    """
    layout: FaceLayout
    derived: dict[str, torch.Tensor]

    def __getattr__(self, name: str) -> torch.Tensor:
        if name in ("layout", "derived"):  # not yet set (copy / unpickle)
            raise AttributeError(name)
        d = self.derived
        return d[name] if name in d else getattr(self.layout, name)

    def rows(self, sl: slice) -> FaceParams:
        return FaceParams(_rows(self.layout, sl), {k: t[sl] for k, t in self.derived.items()})

    @classmethod
    def from_factors(cls, factors: torch.Tensor) -> FaceParams:
        lay = FaceLayout.from_factors(factors)
        fac = {name: factors[:, j].view(-1, 1, 1, 1) for j, name in enumerate(FACTOR_NAMES)}
        a, b, d = lay.a, lay.b, {}
        for name in ("a", "ear", "eye", "eye_w", "iris", "iris_a", "brow", "brow_w"):
            left, right = getattr(lay, name + "_l"), getattr(lay, name + "_r")
            d[name + "_avg"], d[name + "_dev"] = (left + right) / 2, (right - left) / 2
        d.update(p_avg=(lay.jaw_p + 2) / 2, p_dev=(lay.jaw_p - 2) / 2, two_over_b=2 / b, inv_b=1 / b,
                 hair_ia=1 / lay.hair_a, hair_ib=1 / lay.hair_b, hair_r=torch.sqrt(lay.hair_a * lay.hair_b),
                 curtain_slope=0.3 * lay.hair_a / b, curtain_top=-0.2 * b, wiggle=0.06 * b, shirt_x=0.5 * lay.neck_x,
                 brow_top=lay.brow_v - 0.05 * b, brow_arch=0.05 * b, brow_t1=1.2 * lay.brow_t,
                 brow_t2=0.6 * lay.brow_t, mouth_line=lay.mouth_v + 0.3 * lay.smile_amp,
                 mouth_w_in=0.92 * lay.mouth_w, lips_h=lay.mouth_in + lay.lip_t, glint_v=0.4 * lay.iris_b,
                 glint_r=0.22 * lay.iris_b, lash_t=0.25 * lay.eye_h, outline_t=0.12 * lay.eye_h,
                 outline_v=lay.eye_v + 0.3 * lay.eye_h)
        # skin detail: the freckle grid moves with the head; the freckle band; the nose shadows (the side shadow
        # falls away from the light)
        light_x = fac["light_x"]
        freckle_du, freckle_dv = lay.freckle_shift()
        d.update(freckle_du=freckle_du, freckle_dv=freckle_dv, band_v=FRECKLE_V * b, band_iv=1 / (FRECKLE_DV * b),
                 band_iu=1 / (FRECKLE_U * a), nose_under_v=lay.nose_v + 0.03 * b,
                 nose_under_b=0.045 * b, ridge_u=lay.nose_u - 0.12 * a * light_x, ridge_v=lay.nose_v - 0.13 * b,
                 ridge_a=0.04 * a, ridge_b=0.14 * b, ridge_dark=0.3 * light_x.abs())
        # light: direction (0.8 light_x, -0.35, 0.8) normalised, in the image frame, turned into the face frame;
        # the face is an ellipsoid with normal (u', v', sqrt(1 - u'^2 - v'^2)), u' = u / 1.1a, v' = (v + 0.05b) / 1.15b
        lx = 0.8 * light_x
        norm = torch.sqrt(lx * lx + (0.35 ** 2 + 0.8 ** 2))
        lx, ly, lz = lx / norm, -0.35 / norm, 0.8 / norm
        d.update(light_u=lay.cos_r * lx + lay.sin_r * ly, light_v=lay.cos_r * ly - lay.sin_r * lx, light_z=lz,
                 normal_iu=1 / (1.1 * a), normal_v=0.05 * b, normal_iv=1 / (1.15 * b))
        # colours: skin (piecewise linear palette), hair and brows, iris, background and shirt (opposite hue), lips
        t = fac["skin_tone"]
        skin = torch.where(t < 0.5, SKIN[0].view(1, 3, 1, 1) + 2 * t * (SKIN[1] - SKIN[0]).view(1, 3, 1, 1),
                           SKIN[1].view(1, 3, 1, 1) + (2 * t - 1) * (SKIN[2] - SKIN[1]).view(1, 3, 1, 1))
        hair_l = fac["hair_lightness"]
        hair = _hsv(fac["hair_hue"], 0.75 - 0.3 * hair_l, 0.10 + 0.8 * hair_l)
        d.update(skin=skin, hair=hair, brows=hair * 0.6 + 0.03, iris=_hsv(fac["eye_hue"], 0.6, 0.55),
                 bg=_hsv(fac["bg_hue"], 0.3, 0.8), shirt=_hsv((fac["bg_hue"] + 0.5) % 1.0, 0.45, 0.45),
                 lips=skin * _rgb(0.85, 0.55, 0.55) + _rgb(0.10, 0.0, 0.02), neck=0.72 * skin,
                 neck_slope=skin * (0.08 * light_x / lay.neck_w), bg_texture=0.25 * fac["bg_texture"])
        return cls(lay, d)


# -------------------------------------------------------------------------------------------------- the scene

def coverage(d: torch.Tensor, inv_px: float) -> torch.Tensor:
    """Antialiased coverage of a shape from its signed distance d (image units, < 0 inside): a linear ramp one pixel
    wide, clamp(1/2 - d / pixel, 0, 1); exactly 0 more than half a pixel outside."""
    return (0.5 - d * inv_px).clamp_(0.0, 1.0)


def _sq(t: torch.Tensor) -> torch.Tensor:
    return t * t


def _fract(t: torch.Tensor) -> torch.Tensor:
    """t - floor(t) in [0, 1) (torch.frac truncates towards 0, and is slower)."""
    return t - torch.floor(t)


def _tri(t: torch.Tensor) -> torch.Tensor:
    """Triangle wave in [0, 1] with period 1: 2 |fract(t) - 1/2|."""
    return (_fract(t) - 0.5).abs_().mul_(2.0)


def _hash2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A pseudo-random number in [0, 1) per integer cell (x, y) >= 0: Dave Hoskins' "hash without sine" (hash12),
    p3 = fract((x, y, x) 0.1031), p3 += p3 . (p3.yzx + 33.33), fract((p3.x + p3.y) p3.z); IEEE float ops only."""
    a, b = _fract(x * 0.1031), _fract(y * 0.1031)
    d = a * (b + 33.33) + b * (a + 33.33) + a * (a + 33.33)
    return _fract((a + b + 2 * d) * (a + d))


def ellipse_terms(du: torch.Tensor, dv: torch.Tensor, ra: torch.Tensor, rb: torch.Tensor):
    """(k0, k1) = (|(du/ra, dv/rb)|, |(du/ra^2, dv/rb^2)|) for the ellipse SDF of :func:`ellipse_sdf`."""
    x, y = du / ra, dv / rb
    return torch.sqrt(x * x + y * y), torch.sqrt(_sq(x / ra) + _sq(y / rb)) + 1e-9


def ellipse_sdf(du, dv, ra, rb) -> torch.Tensor:
    """Signed distance to the ellipse (du/ra)^2 + (dv/rb)^2 = 1, first order: d = k0 (k0 - 1) / k1 (exact on the
    axes and for circles; Quilez's approximation). For the small parts, whose edges must be sharp everywhere."""
    k0, k1 = ellipse_terms(du, dv, ra, rb)
    return k0 * (k0 - 1) / k1


def ellipse_sdf_coarse(du, dv, inv_ra, inv_rb, r) -> torch.Tensor:
    """Zeroth-order ellipse distance (|(du / ra, dv / rb)| - 1) r (takes 1 / ra, 1 / rb): exact where the boundary
    is r from the centre, softer or sharper elsewhere by the axis ratio. For the big round shapes and soft blobs."""
    x, y = du * inv_ra, dv * inv_rb
    return (torch.sqrt(x * x + y * y) - 1) * r


@dataclass(frozen=True)
class Layer:
    """A part of the face: its coverage (n, 1, h, w) in [0, 1] over ``region`` (rows, cols) of the image."""
    alpha: torch.Tensor
    region: tuple[slice, slice]


#: the layers of a :class:`Scene`, back to front (the background is the ``initial`` value of a composite)
LAYERS: tuple[str, ...] = ("hair_back", "neck", "shirt", "ears", "face", "brows", "lips", "mouth", "teeth",
                           "eye_white", "iris", "pupil", "glint", "eyelid", "lashes", "eye_outline", "front_hair")
_FULL = (slice(None), slice(None))


@dataclass
class Scene:
    """One chunk of n faces laid out on the R x R pixel grid: what a render pass reads.

    params: the per-face :class:`FaceParams` (layout fields such as ``params.eye_l``, colours, light). u, v:
    (n, 1, R, R) face-frame coordinates of every pixel centre; x: (1, 1, 1, R), y: (1, 1, R, 1) image coordinates.
    regions: name -> (rows, cols) slices of the image that hold every face's part ("full"; "head": face and ears;
    "features": eyes, brows, nose, mouth; "freckles"; "neck" and "shirt": rows), so that small parts are computed
    only where they can be; cut a map to one with :meth:`crop`. layers: name -> :class:`Layer`, in :data:`LAYERS`
    order. maps: intermediate maps a pass may reuse ("strand": (n, 1, R, R) hair brightness in [0, 1]; "iris_k":
    the normalised iris radius over the "features" region; "light": (n, 1, R, R) Lambert brightness).
    """
    factors: torch.Tensor
    params: FaceParams
    details: Details
    resolution: int
    x: torch.Tensor
    y: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    regions: dict[str, tuple[slice, slice]]
    layers: dict[str, Layer] = field(default_factory=dict)
    maps: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def inv_px(self) -> float:
        """Pixels per image unit (the image spans 2 units)."""
        return self.resolution / 2.0

    def factor(self, name: str) -> torch.Tensor:
        """One factor of every face as (n, 1, 1, 1)."""
        return self.factors[:, _COLUMN[name]].view(-1, 1, 1, 1)

    def crop(self, t: torch.Tensor, region: str | tuple[slice, slice]) -> torch.Tensor:
        """Cut a map (..., H, W) to a region (a view): the rows if H = R, the columns if W = R (so a (..., 1, R) row,
        a (..., R, 1) column, a constant or a map already cut to the region pass through)."""
        if t.ndim < 2:
            return t
        rows, cols = self.regions[region] if isinstance(region, str) else region
        r = self.resolution
        return t[..., rows if t.shape[-2] == r else slice(None), cols if t.shape[-1] == r else slice(None)]

    def composite(self, values: Mapping[str, torch.Tensor | float], initial: torch.Tensor) -> torch.Tensor:
        """Painter's algorithm: out = initial, then for each layer in order out = lerp(out, value, alpha).

        values: layer name -> float, (n, C, 1, 1), or a map (n, C, R, R) (cut to the layer's region here, see
        :meth:`crop`; a map already cut to the region works too); layers not named are transparent.
        initial: (n, C, R, R), composited into in place and returned.
        """
        unknown = set(values) - set(self.layers)
        if unknown:
            raise ValueError(f"unknown layer(s) {sorted(unknown)}: layers are {list(self.layers)}")
        out = initial
        for name, layer in self.layers.items():
            if name in values:
                value = self.crop(torch.as_tensor(values[name], dtype=out.dtype), layer.region)
                out[..., layer.region[0], layer.region[1]].lerp_(value, layer.alpha)
        return out


def _union(boxes: np.ndarray) -> tuple[slice, slice]:
    """The (rows, cols) slices of the smallest box holding all boxes (n, 4) (r0, c0, r1, c1)."""
    return slice(int(boxes[:, 0].min()), int(boxes[:, 2].max())), slice(int(boxes[:, 1].min()), int(boxes[:, 3].max()))


def region_boxes(params: FaceParams, resolution: int) -> dict[str, np.ndarray]:
    """Per-face pixel boxes (n, 4) of the "head", "features" and "freckles" regions (see :class:`Scene`)."""
    lay = params.layout
    features = pixel_boxes(lay, *lay.feature_extent(), resolution).numpy()
    head = pixel_boxes(lay, *lay.head_extent(), resolution).numpy()
    head = np.concatenate([np.minimum(head[:, :2], features[:, :2]), np.maximum(head[:, 2:], features[:, 2:])], 1)
    return {"head": head, "features": features, "freckles": pixel_boxes(lay, *lay.freckle_extent(), resolution).numpy()}


def build_scene(factors: torch.Tensor, params: FaceParams, details: Details, boxes: Mapping[str, np.ndarray],
                resolution: int) -> Scene:
    """Lay n checked faces out on the pixel grid and compute every layer's coverage (see :class:`Scene`).

    params, details: those of these n faces; boxes: their :func:`region_boxes`."""
    P, det, R = params, details, resolution
    grid = (torch.arange(R, dtype=torch.float32) * 2 + 1) / R - 1  # pixel centres
    x, y = grid.view(1, 1, 1, R), grid.view(1, 1, R, 1)
    dx, dy = x - CENTRE[0], y - CENTRE[1]
    u = P.cos_r * dx + P.sin_r * dy  # the face frame: (u, v) = R(-roll) ((x, y) - CENTRE)
    v = P.cos_r * dy - P.sin_r * dx
    regions = {"full": _FULL, **{name: _union(box) for name, box in boxes.items()}}
    for name, top in (("neck", NECK_TOP), ("shirt", SHIRT[0] - SHIRT[2])):
        regions[name] = (slice(max(0, math.floor(_pixel_index(top, R)) - 2), R), slice(None))
    scene = Scene(factors, P, det, R, x, y, u, v, regions)
    ip = scene.inv_px

    def put(name, d, region="full"):
        scene.layers[name] = Layer(coverage(d, ip), regions[region])

    # hair strands: brightness along u, a mix of two triangle waves; they also make the hair's edges wavy
    strand = (det.strand_w * _tri(u * det.strand_k1 + det.strand_phase1)
              + (1 - det.strand_w) * _tri(u * det.strand_k2 + det.strand_phase2))
    scene.maps["strand"] = strand
    wiggle = (strand - 0.5) * P.wiggle
    # hair behind the head: the cap ellipse, and for long hair a curtain widening downwards, cut at hair_end
    hu = u - P.hair_u
    d_cap = ellipse_sdf_coarse(hu, v - P.hair_v, P.hair_ia, P.hair_ib, P.hair_r)
    d_curtain = torch.maximum(hu.abs() - P.curtain_w - P.curtain_slope * torch.relu(v), P.curtain_top - v)
    put("hair_back", torch.maximum(torch.minimum(d_cap, d_curtain), v - P.hair_end - wiggle))
    yn, ys = scene.crop(y, "neck"), scene.crop(y, "shirt")
    put("neck", torch.maximum((x - P.neck_x).abs() - P.neck_w, NECK_TOP - yn), "neck")
    put("shirt", ellipse_sdf_coarse(x - P.shirt_x, ys - SHIRT[0], 1 / SHIRT[1], 1 / SHIRT[2], SHIRT[2]), "shirt")
    # ears and face, over the head region; sign(u) picks the left or right half's values
    uh, vh = scene.crop(u, "head"), scene.crop(v, "head")
    side = torch.sign(uh)
    put("ears", ellipse_sdf_coarse(uh - (P.ear_avg + side * P.ear_dev), vh - P.ear_v, 1 / P.ear_a, 1 / P.ear_b,
                                   P.ear_a), "head")
    # face: upper half an ellipse, lower half |u/a|^p + (v/b)^2 = 1 (the jaw); distance ~ f / |grad f|
    a = P.a_avg + side * P.a_dev
    p = P.p_avg + torch.sign(vh) * P.p_dev  # 2 above the centre line, jaw_p below
    ua = (uh.abs() / a).clamp_(min=1e-6)
    up = torch.exp(p * torch.log(ua))  # |u/a|^p
    vb = vh * P.inv_b
    grad = torch.sqrt(_sq(p * up / (ua * a)) + _sq(vb * P.two_over_b)) + 1e-9
    put("face", (up + vb * vb - 1) / grad, "head")
    _feature_layers(scene, put)
    # front hair: the cap above the (wavy) hairline, over the forehead; the same colour as the hair behind
    put("front_hair", torch.maximum(d_cap, v - P.fringe_v - P.fringe_curve * _sq(hu * P.hair_ia) - wiggle))
    return scene


def _feature_layers(scene: Scene, put: Callable) -> None:
    """Brows, mouth and eyes, over the "features" region. Every eye layer but the outline is clipped to the eye
    opening, so gaze and blink reach no pixel outside it."""
    P = scene.params
    u, v = scene.crop(scene.u, "features"), scene.crop(scene.v, "features")
    side = torch.sign(u - P.eye_mid)  # -1: the left eye / brow, +1: the right one
    # brows: an arched band v = brow_v - arch (1 - q), thinning towards the ends, q = (du / w)^2
    w = P.brow_w_avg + side * P.brow_w_dev
    du = u - (P.brow_avg + side * P.brow_dev)
    q = _sq(du / w)
    arch = v - P.brow_top - P.brow_arch * q
    put("brows", torch.maximum(arch.abs() - (P.brow_t1 - P.brow_t2 * q), du.abs() - w), "features")
    # mouth: lip line v = mouth_v + smile_amp (0.3 - q); the interior's half height mouth_in sqrt(1 - q); lips
    du = u - P.mouth_u
    q = _sq(du / P.mouth_w)
    lens = torch.sqrt((1 - q).clamp_(min=0.0))
    line = v - P.mouth_line + P.smile_amp * q
    h_in = P.mouth_in * lens
    off, across = line.abs(), du.abs()
    d_in = torch.maximum(off - h_in, across - P.mouth_w_in)
    put("lips", torch.maximum(off - P.lips_h * lens, across - P.mouth_w), "features")
    put("mouth", d_in, "features")
    put("teeth", torch.maximum(d_in, line + 0.3 * h_in), "features")
    # eyes: opening (ellipse) > iris > pupil > glint > upper lid > lash line at the lid edge > outline
    dv = v - P.eye_v
    d_open = ellipse_sdf(u - (P.eye_avg + side * P.eye_dev), dv, P.eye_w_avg + side * P.eye_w_dev, P.eye_h)
    iu, iv = u - (P.iris_avg + side * P.iris_dev), v - P.iris_v
    ia = P.iris_a_avg + side * P.iris_a_dev
    k0, k1 = ellipse_terms(iu, iv, ia, P.iris_b)
    scene.maps["iris_k"] = k0
    put("eye_white", d_open, "features")
    put("iris", torch.maximum(k0 * (k0 - 1) / k1, d_open), "features")  # concentric ellipses: k0 (k0 - s) / k1
    put("pupil", torch.maximum(k0 * (k0 - PUPIL) / k1, d_open), "features")
    glint = torch.sqrt(_sq(iu + 0.35 * ia) + _sq(iv + P.glint_v)) - P.glint_r
    put("glint", torch.maximum(glint, d_open), "features")
    lid = v - P.lid_v
    put("eyelid", torch.maximum(d_open, lid), "features")
    put("lashes", torch.maximum(lid.abs() - P.lash_t, d_open), "features")
    put("eye_outline", torch.maximum(d_open.abs() - P.outline_t, v - P.outline_v), "features")


# ------------------------------------------------------------------------------------------------ render passes

@dataclass(frozen=True)
class RenderPass:
    """A registered pass: ``render(scene) -> (n, channels, R, R)``."""
    name: str
    channels: int
    render: Callable[[Scene], torch.Tensor]


RENDER_PASSES: dict[str, RenderPass] = {}


def render_pass(name: str, channels: int):
    """Decorator: register ``fn(scene: Scene) -> (n, channels, R, R)`` as the pass ``name`` (see the module doc)."""
    def register(fn):
        RENDER_PASSES[name] = RenderPass(name, channels, fn)
        return fn
    return register


def _soft(d: torch.Tensor, width: float) -> torch.Tensor:
    """A soft blob from a signed distance: 0 outside, rising to 1 at ``width`` inside."""
    return (d * (-1 / width)).clamp_(0.0, 1.0)


def _skin_shading(scene: Scene, light: torch.Tensor) -> torch.Tensor:
    """(n, 1, R, R) skin brightness: light x mottling x freckles x nose shadows, over the head region (0 outside)."""
    P, det = scene.params, scene.details
    mod = torch.zeros_like(light)
    head, freckles, features = scene.regions["head"], scene.regions["freckles"], scene.regions["features"]
    uh, vh = scene.crop(scene.u, "head"), scene.crop(scene.v, "head")
    mottle = (_tri(uh * det.mottle_ku1 + vh * det.mottle_kv1 + det.mottle_phase1)
              * _tri(uh * det.mottle_ku2 + vh * det.mottle_kv2 + det.mottle_phase2))
    mod[..., head[0], head[1]] = scene.crop(light, "head") * (0.97 + 0.06 * mottle)
    # freckles: cells of the face frame moved with the turned head; a cell whose hash h is below the density holds
    # a dot of radius 0.011 at a jittered place; on a band over the cheeks and nose
    ug = scene.crop(scene.u, "freckles") - P.freckle_du
    vg = scene.crop(scene.v, "freckles") - P.freckle_dv
    cu, cv = ug * (1 / FRECKLE_CELL) + det.freckle_off_u, vg * (1 / FRECKLE_CELL) + det.freckle_off_v
    iu, iv = torch.floor(cu), torch.floor(cv)
    h = _hash2(iu, iv)
    spot = torch.sqrt(_sq(cu - iu - 0.3 - 0.4 * _fract(h * 31.17)) + _sq(cv - iv - 0.3 - 0.4 * _fract(h * 57.31)))
    present = ((det.freckle_density - h) * 1e6).clamp_(0.0, 1.0)
    band = (1 - _sq((vg - P.band_v) * P.band_iv)).clamp_(min=0.0) * (1 - _sq(ug * P.band_iu)).clamp_(min=0.0)
    dots = coverage(spot * FRECKLE_CELL - 0.011, scene.inv_px) * present * band
    mod[..., freckles[0], freckles[1]] *= 1 - det.freckle_dark * dots
    # nose: a soft shadow under the tip, and one along the side away from the light
    uf, vf = scene.crop(scene.u, "features"), scene.crop(scene.v, "features")
    under = ellipse_sdf_coarse(uf - P.nose_u, vf - P.nose_under_v, 1 / P.nose_w, 1 / P.nose_under_b, P.nose_under_b)
    ridge = ellipse_sdf_coarse(uf - P.ridge_u, vf - P.ridge_v, 1 / P.ridge_a, 1 / P.ridge_b, P.ridge_a)
    mod[..., features[0], features[1]] *= (1 - 0.35 * _soft(under, 0.03)) * (1 - P.ridge_dark * _soft(ridge, 0.03))
    return mod


@render_pass("rgb", channels=3)
def rgb_pass(scene: Scene) -> torch.Tensor:
    """Colour: background pattern, Lambert-lit skin and hair (with freckles, mottling, strands), eyes and mouth.
    (n, 3, R, R) float32 in [0, 1]."""
    P, det, u, v = scene.params, scene.details, scene.u, scene.v
    # Lambert: light = 0.52 + 0.58 max(n . l, 0), n the ellipsoid normal (FaceParams), clamped for hair and ears
    nu = (u * P.normal_iu).clamp_(-1.0, 1.0)
    nv = ((v + P.normal_v) * P.normal_iv).clamp_(-1.0, 1.0)
    nz = torch.sqrt((1 - nu * nu - nv * nv).clamp_(min=0.0))
    light = 0.52 + 0.58 * (nu * P.light_u + nv * P.light_v + nz * P.light_z).clamp_(min=0.0)
    scene.maps["light"] = light
    mod = _skin_shading(scene, light)
    face, lid = P.skin * scene.crop(mod, "head"), P.skin * scene.crop(mod, "features")
    # hair: strands, and darker below ear level (behind the neck, in shadow)
    hair = P.hair * (light * (0.78 + 0.44 * scene.maps["strand"]) * (1 - 0.35 * (v * P.inv_b).clamp_(0.0, 1.0)))
    # background: a slight vertical gradient, and wavy stripes: s = (x, y) . d / period + phase + wobble
    x, y, reg = scene.x, scene.y, scene.regions["features"]
    along = (x * det.bg_cos + y * det.bg_sin) / det.bg_period + det.bg_phase
    tri = _tri(along + det.bg_wobble * _tri((y * det.bg_cos - x * det.bg_sin) * (1 / 0.6) + 64))
    stripes = tri * tri * (3 - 2 * tri)  # smoothstep of a triangle wave
    bg = P.bg * ((1.04 - 0.04 * (y + 1)) * (1 - P.bg_texture * stripes))
    iris = P.iris * (1 - 0.4 * _sq(scene.maps["iris_k"]))
    out = scene.composite({"hair_back": hair, "neck": P.neck + P.neck_slope * (x - P.neck_x), "shirt": P.shirt,
                           "ears": face, "face": face, "brows": P.brows, "lips": P.lips * scene.crop(light, reg),
                           "mouth": MOUTH_RGB, "teeth": TEETH_RGB, "eye_white": EYE_WHITE, "iris": iris,
                           "pupil": PUPIL_RGB, "glint": GLINT_RGB, "eyelid": lid, "lashes": LASH_RGB,
                           "eye_outline": LASH_RGB, "front_hair": hair}, initial=bg)
    return out.clamp_(0.0, 1.0)


@render_pass("mask", channels=1)
def mask_pass(scene: Scene) -> torch.Tensor:
    """The head: face (with all its parts), ears, neck and hair = 1; background and shirt = 0; antialiased edges in
    between. (n, 1, R, R) float32 in [0, 1]."""
    zeros = torch.zeros(len(scene.factors), 1, scene.resolution, scene.resolution)
    return scene.composite({name: 0.0 if name == "shirt" else 1.0 for name in scene.layers}, initial=zeros)


# ------------------------------------------------------------------------------------------------------ render

def render_passes(factors, resolution: int = 64, *, passes: Sequence[str] = ("rgb", "mask"),
                  detail_seeds=None) -> dict[str, torch.Tensor]:
    """Render n faces into several passes at once.

    factors: (n, N_FACTORS) in the ranges of :data:`FACTORS` (checked). resolution: int >= 16 (pixels per side).
    passes: names from :data:`RENDER_PASSES` ("rgb": (n, 3, R, R), "mask": (n, 1, R, R)). detail_seeds: (n,) ints
    >= 0, or None for seed 0 on every face (then the factors alone decide the image).
    Returns {pass: (n, C, R, R) float32}. The per-face constants are computed once, then the pixels in chunks of
    about 2^18; the same inputs give bitwise identical outputs.
    """
    f = check_factors(factors)
    res = _check_resolution(resolution)
    seeds = _check_seeds(detail_seeds, len(f))
    passes = tuple(passes)
    unknown = [p for p in passes if p not in RENDER_PASSES]
    if unknown or not passes:
        raise ValueError(f"unknown render pass(es) {unknown or '(none asked)'}: registered passes are "
                         f"{list(RENDER_PASSES)} (add one with @render_pass)")
    out = {p: torch.empty(len(f), RENDER_PASSES[p].channels, res, res) for p in passes}
    params, details = FaceParams.from_factors(f), Details.from_seeds(seeds)
    boxes = region_boxes(params, res)
    step = max(1, _CHUNK_PIXELS // (res * res))
    for i in range(0, len(f), step):
        sl = slice(i, i + step)
        scene = build_scene(f[sl], params.rows(sl), _rows(details, sl), {k: b[sl] for k, b in boxes.items()}, res)
        for p in passes:
            out[p][sl] = RENDER_PASSES[p].render(scene)
    return out


def render_faces(factors, resolution: int = 64, *, detail_seeds=None) -> torch.Tensor:
    """RGB images of n faces: (n, 3, R, R) float32 in [0, 1]. Arguments as in :func:`render_passes`."""
    return render_passes(factors, resolution, passes=("rgb",), detail_seeds=detail_seeds)["rgb"]


def render_sequence(factor_seq, resolution: int = 64, *, detail_seeds=None) -> torch.Tensor:
    """Render videos: factor_seq (B, T, N_FACTORS), or (T, N_FACTORS) for one video, one factor row per frame.

    detail_seeds: (B,) ints (None: 0): the detail is fixed per video, so only the factors animate.
    Returns (B, T, 3, R, R) float32 in [0, 1] (B = 1 for a (T, N_FACTORS) input).
    """
    seq = torch.as_tensor(factor_seq)
    if seq.ndim == 2:
        seq = seq[None]
    if seq.ndim != 3 or seq.shape[-1] != N_FACTORS:
        raise ValueError(f"factor_seq must have shape (B, T, {N_FACTORS}) or (T, {N_FACTORS}), got "
                         f"{tuple(torch.as_tensor(factor_seq).shape)}")
    bsz, t = seq.shape[:2]
    seeds = _check_seeds(detail_seeds, bsz).repeat(t)  # (B * T,) in (b, t) order: each video's seed on its frames
    frames = render_faces(seq.reshape(bsz * t, N_FACTORS), resolution, detail_seeds=seeds)
    return frames.view(bsz, t, 3, frames.shape[-2], frames.shape[-1])


# ------------------------------------------------------------------------------------------------------ dataset

def _split_size(split: str) -> int:
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be 'train' ({N_TRAIN} faces) or 'test' ({N_TEST} faces), got {split!r}")
    return N_TRAIN if split == "train" else N_TEST


def split_factors(split: str) -> tuple[torch.Tensor, np.ndarray]:
    """The factors (N, N_FACTORS) float32 and detail seeds (N,) int64 of a split, from the integer hash (identical
    on every machine): factor j of face i = low_j + (high_j - low_j) hash_uniform(stream, i, j)."""
    n = _split_size(split)
    u = torch.from_numpy(_uniforms(np.arange(n, dtype=np.uint64), N_FACTORS, domain=SPLIT_STREAMS[split]))
    f = (_LOW.double() + (_HIGH - _LOW).double() * u).to(torch.float32)
    seeds = np.arange(n, dtype=np.int64) + (0 if split == "train" else TEST_DETAIL_OFFSET)
    return torch.minimum(f, _HIGH), seeds


@lru_cache(maxsize=4)
def _split_uint8(split: str, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split rendered once per process: (N, 3, R, R) uint8 and its factors. Never handed out directly."""
    f, seeds = split_factors(split)
    images = torch.empty(len(f), 3, resolution, resolution, dtype=torch.uint8)
    step = 1024
    for i in range(0, len(f), step):  # bounded float memory: 1024 faces at a time
        images[i:i + step] = render_faces(f[i:i + step], resolution, detail_seeds=seeds[i:i + step]).mul_(255).round_()
    return images, f


def faces(split: str = "train", n: int | None = None, resolution: int = 64, *,
          as_uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed faces dataset: split "train" (N_TRAIN = 20,000) or "test" (N_TEST = 5,000), disjoint by seed.

    n: the first n faces (None: all). resolution: int >= 16. Returns images (N, 3, R, R) float32 in [0, 1]
    (uint8 in [0, 255] if ``as_uint8``; the float images are exactly uint8 / 255, the renderer's output rounded as
    a PNG dataset would be) and factors (N, N_FACTORS) float32. Test face i is ``render_faces(factors[i:i+1],
    detail_seeds=[1_000_000 + i])`` rounded (train: seed i). The full split is rendered once per process and
    resolution (train at 64 x 64: about 10 s on one thread, 0.25 GB of uint8), kept in memory (the last 4 splits
    asked for), and callers get copies: as float32 the whole train split at 64 x 64 is 1 GB, so pass ``n`` or
    ``as_uint8=True`` (and convert per batch) where memory is short.
    """
    size = _split_size(split)
    res = _check_resolution(resolution)
    n = size if n is None else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= size:
        raise ValueError(f"n must be an int between 1 and {size} (the size of the {split} split), or None; "
                         f"got {n!r}")
    images, factors = _split_uint8(split, res)
    x = images[:n].clone()
    return (x if as_uint8 else x.float() / 255.0), factors[:n].clone()
