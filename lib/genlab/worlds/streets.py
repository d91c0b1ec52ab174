"""Streets: a tiny procedural city street filmed from a driving car, with exact labels, depth, optical flow and
occlusion for every frame -- our offline stand-in for Cityscapes video sequences (Cordts et al. 2016), for vid2vid
(Wang et al. 2018: label-map video -> photo video).

The world (one fixed, endless street per clip; metres; x to the right of the street, y up, z along the street):

- the ground y = 0: a road |x| < r (asphalt, a dashed centre line, dashed lane lines, solid edge lines), a kerb,
  then a sidewalk of paving slabs up to the facades;
- buildings: boxes beyond the sidewalk, blocks of random length, set-back, height and colour, with window grids;
  the sky (at infinity) above;
- trees on the kerb (a box trunk, an ellipsoid crown); cars (a body box and a cabin box) driving along z, every lane
  at its own speed, in both directions; pedestrians (a body box and a head box) walking along the sidewalks.

Objects only translate, at constant velocities v (metres per frame): X_t = X_0 + t v. The camera (height ~1.5 m)
drives along z in a right-hand lane at a per-clip speed, with a slow lateral drift and a swinging yaw (turning):

    C_t = (x_lane + a sin(w t + phi), h, s t),   yaw_t = yaw_0 + b sin(w' t + phi'),   pitch constant (looking down)

Camera (pinhole, OpenCV axes x right, y down, z forward; pixel (row i, col j) has its centre at (x, y) = (j, i)):

    p = (f X_c / Z_c + c_x,  f Y_c / Z_c + c_y),   X_c = R_t^T (X - C_t),   (c_x, c_y) = ((W - 1) / 2, (H - 1) / 2),
    f = max(H, W) / 2 / tan(HFOV / 2)                (the longer image side spans HFOV = 75 degrees; focal_length())

Rendering: one ray per pixel centre, X = C_t + tau R_t K^-1 (j, i, 1) (so tau is the z-depth), cast against the
ground plane, the boxes (slab test) and the crowns (ray-ellipsoid); the nearest hit wins; no anti-aliasing of the
geometry. Vectorised over (frame, object, pixel) candidates: each object is only tested on the pixels of its
screen-space bounding rectangle, and only while its near end is within VIEW_DISTANCE (300 m) along the street --
the haze reaches the horizon colour before that, so nothing visibly pops in. Geometry in float64, outputs float32.

Photo frames: each surface's albedo is a function of the hit point in the surface's own (moving) coordinates --
asphalt value noise (streaked along the road), paint, kerb, paving slabs, per-block facade colour and noise with a
window grid, per-car body colour with dark glass, wheels and lamps, per-pedestrian clothes and skin, trunk and crown
noise -- lit per clip (Lambert for a sun direction, colour and intensity, plus ambient) and hazed towards the
horizon colour with the distance d from the camera:

    rgb = lerp(albedo (ambient + sun max(0, n . s)),  horizon,  max(1 - exp(-(d / L)^2),  smoothstep(150, 300, dz)))

The sky's colour depends on the ray direction only (horizon-to-zenith gradient, soft clouds). So the label does not
determine the colour (car paint, facades, sun and haze change from clip to clip), while a surface point keeps its
colour from frame to frame -- which is what makes warping by the exact flow reproduce the next frame. Two small,
deliberate exceptions: the haze (Gaussian in d: negligible nearby) and the band limit of the textures. Each noise
octave fades out as its period nears 4 pixels along a surface axis (its footprint d / (f sqrt(1 - (e . ray)^2)),
as mip-mapping), and stripes and edges inside a texture (paint, windows, joints, lamps, clothes) are box-filtered
over 2 pixels; without that, the frames would carry 1-pixel aliasing that no flow could warp. The labels stay
hard-edged (one sample per pixel).

Ground truth, exact from the renderer:

- flow (backward; genlab.nn.warp's convention): for pixel p of frame t hitting the point X of an object with velocity
  v, p' = project_{t-1}(X - v) and flow_t(p) = p' - p in pixels (dx along columns, dy along rows); for the sky
  p' = K R_{t-1}^T R_t K^-1 p (rotation only). flow[:, 0] = 0; where X is behind camera t-1 the flow is 0.
- occlusion_t(p) = 1 where p' falls outside the image ([0, W-1] x [0, H-1], as genlab.nn.warp.outside_mask), where
  X is behind camera t-1, or where frame t-1 does not show X's surface at all four pixels around p' (floor and ceil
  of p'_x, p'_y: the pixels the bilinear warp reads). "The same surface" is the same planar face of the same object
  (the ground plane, a box face, the sky; a crown within 5 % depth), so the mask is exact for hidden points and
  generous by up to a pixel along the edges of objects and faces (there the warp would mix in another surface).
  occlusion[:, 0] = 1.
- depth: z-depth in metres (along the optical axis); the sky (and any hit farther away) has SKY_DEPTH = 1000 m.

Classes (CLASSES, in this order) and their PALETTE colours are Cityscapes' (lane marking: CARLA's road line).

Randomness: the clip's look, lanes and camera path come from np.random.default_rng([seed, SPLIT_STREAMS[split], i]);
the street in each 50-m chunk k along z from default_rng([seed, stream, i, k + 2]). So clip i is a function of
(seed, split, i), for every n and start, and frame t is the same for every clip length (a 12-frame clip is the start
of the 48-frame one). Train and test use different streams: different streets, nothing shared.

Measured (2-core CPU, one process): streets("train", 64, frames=12, size=(64, 64)) renders in ~3 s uncached (about
50 ms a clip); 8 clips of 12 frames at (128, 256) in ~2.5 s; a 48-frame (128, 256) clip in ~1.3 s, in bounded
memory (frames are cast in chunks of 2^18 rays). On the first 64 train clips at 64x64 (frames 1..11): 10.8 % of the
pixels are occluded (mostly 1-px bands along edges); warping frame t-1 by the flow reproduces frame t with a mean
absolute error of 0.008 on visible pixels ([-1, 1] scale; 0.13 on occluded ones) against 0.027 for zero flow, and
nearest-warped labels agree with the next labels on 98.8 % of the visible pixels. At (128, 256): 5.9 % occluded,
0.0065 against 0.069, 99.4 %.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

CLASSES: tuple[str, ...] = ("road", "sidewalk", "building", "sky", "tree", "car", "pedestrian", "lane marking")
NUM_CLASSES = len(CLASSES)
ROAD, SIDEWALK, BUILDING, SKY, TREE, CAR, PEDESTRIAN, LANE_MARKING = range(NUM_CLASSES)
PALETTE = torch.tensor([(128, 64, 128), (244, 35, 232), (70, 70, 70), (70, 130, 180), (107, 142, 35), (0, 0, 142),
                        (220, 20, 60), (157, 234, 50)], dtype=torch.float32) / 255
SPLIT_STREAMS = {"train": 1, "test": 2}      # disjoint seed streams per split

HFOV_DEG = 75.0            # field of view across the longer image side
SKY_DEPTH = 1000.0         # metres: the depth of sky pixels; hits farther than this count as sky
VIEW_DISTANCE = 300.0      # metres along z: farther objects are not cast (fully hazed by then)
CHUNK = 50.0               # metres of street drawn from one generator
_NEAR = 1e-3               # near plane (z-depth, metres)
_MAX_SPEED = 1.6           # metres per frame: no object is faster (bounds how far ahead the street is built)

# primitive kinds: every object part is a box, but crowns are ellipsoids (given by their bounding box)
_BUILDING, _CAR_BODY, _CAR_CABIN, _PED_BODY, _PED_HEAD, _TRUNK, _CROWN = range(7)
_KIND_CLASS = np.array([BUILDING, CAR, CAR, PEDESTRIAN, PEDESTRIAN, TREE, TREE])
_GROUND, _SKY = -1, -2     # surface ids of the ground plane and the sky (object parts are >= 0)


# ---------------------------------------------------------------------------------------------- the dataset type
@dataclass
class StreetClips:
    """A batch of street clips and their ground truth.

    labels (B, T, H, W) int64 class ids in [0, K); frames (B, T, 3, H, W) float32 in [-1, 1]; flow (B, T, 2, H, W)
    float32 backward flow in pixels (dx, dy), genlab.nn.warp's convention, flow[:, 0] = 0; occlusion (B, T, 1, H, W)
    float32 in {0, 1}, 1 = not visible in frame t - 1, occlusion[:, 0] = 1; depth (B, T, 1, H, W) float32 z-depth in
    metres, sky = SKY_DEPTH.
    """

    labels: torch.Tensor
    frames: torch.Tensor
    flow: torch.Tensor
    occlusion: torch.Tensor
    depth: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> StreetClips:
        return StreetClips(*(getattr(self, k).to(device) for k in _FIELDS))

    def __getitem__(self, idx) -> StreetClips:
        """Clips along B: an int keeps the batch axis (B = 1); slices, lists and index tensors as in torch."""
        if isinstance(idx, (int, np.integer)):
            i = range(len(self))[idx]
            idx = slice(i, i + 1)
        return StreetClips(*(getattr(self, k)[idx] for k in _FIELDS))

    def one_hot(self) -> torch.Tensor:
        """(B, T, K, H, W) float32 one-hot labels (the generator's input in vid2vid)."""
        return torch.nn.functional.one_hot(self.labels, NUM_CLASSES).permute(0, 1, 4, 2, 3).float()


_FIELDS = ("labels", "frames", "flow", "occlusion", "depth")


# ---------------------------------------------------------------------------------------------- checks and colours
def _bad_ids(labels: torch.Tensor, num_classes: int) -> list[int]:
    bad = labels[(labels < 0) | (labels >= num_classes)]
    return bad.unique().tolist() if bad.numel() else []


def _is_int(x) -> bool:
    return isinstance(x, torch.Tensor) and not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


def colorize(labels: torch.Tensor) -> torch.Tensor:
    """Class ids (..., H, W) -> colours (..., 3, H, W) float in [0, 1] (PALETTE), e.g. to show a label video."""
    if not _is_int(labels) or labels.dim() < 2:
        got = f"shape {tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels)
        raise ValueError(f"colorize expects integer class ids (..., H, W), got {got} (one-hot maps: use .argmax(-3))")
    bad = _bad_ids(labels, NUM_CLASSES)
    if bad:
        raise ValueError(f"colorize: class ids {bad[:8]} are outside [0, {NUM_CLASSES}) "
                         f"(the streets world has {NUM_CLASSES} classes: {', '.join(CLASSES)})")
    return PALETTE.to(labels.device)[labels].movedim(-1, -3)


def check_label_video(labels: torch.Tensor, frames: torch.Tensor | None = None,
                      num_classes: int = NUM_CLASSES) -> None:
    """Raise a one-line ValueError that names the fix unless ``labels`` is an integer label video (B, T, H, W) with
    ids in [0, num_classes) and ``frames`` (if given) is a video (B, T, 3, H, W) of the same B, T, H, W."""
    if not _is_int(labels) or labels.dim() != 4:
        got = f"shape {tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor) else \
            type(labels).__name__
        hint = ""
        if isinstance(labels, torch.Tensor) and labels.dim() == 5:
            hint = " (one-hot (B, T, K, H, W)? take labels.argmax(2))"
        elif isinstance(labels, torch.Tensor) and labels.dim() == 3:
            hint = " (a single clip (T, H, W)? add the batch axis with labels[None])"
        elif isinstance(labels, torch.Tensor) and labels.dim() == 4:
            hint = " (convert with labels.long())"
        raise ValueError(f"labels must be an integer tensor (B, T, H, W) of class ids, got {got}{hint}")
    bad = _bad_ids(labels, num_classes)
    if bad:
        raise ValueError(f"labels hold class ids {bad[:8]} outside [0, {num_classes}) (the class list has "
                         f"{num_classes} classes); remap them or pass num_classes")
    if frames is not None:
        ok = isinstance(frames, torch.Tensor) and frames.dim() == 5 and frames.shape[2] == 3 and \
            frames.shape[:2] == labels.shape[:2] and frames.shape[3:] == labels.shape[2:]
        if not ok:
            got = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames must be (B, T, 3, H, W) matching labels (B, T, H, W) in B, T, H, W; got frames "
                             f"{got} and labels {tuple(labels.shape)}")


# ---------------------------------------------------------------------------------------------- value noise
_PERM = np.tile(np.random.default_rng(1234).permutation(256), 2)                    # Perlin's hash table, doubled
_VALUES = np.random.default_rng(4321).random(256)                                    # lattice values


def _hash01(a, b, c, d=0) -> np.ndarray:
    """Integer lattice coordinates (int64 arrays, broadcast) -> a value in [0, 1), the same on every machine:
    Perlin's nested permutation hash perm[perm[perm[perm[a] + b] + c] + d] (period 256 in each coordinate)."""
    h = _PERM[_PERM[_PERM[np.bitwise_and(a, 255)] + np.bitwise_and(b, 255)] + np.bitwise_and(c, 255)]
    return _VALUES[_PERM[h + np.bitwise_and(d, 255)]]


def _smooth(f: np.ndarray) -> np.ndarray:
    return f * f * (3 - 2 * f)


def _noise2(u: np.ndarray, v: np.ndarray, salt) -> np.ndarray:
    """2-D value noise in [0, 1): hashed values at integer points, smoothstep-interpolated (C1)."""
    fu, fv = np.floor(u), np.floor(v)
    iu, iv = fu.astype(np.int64), fv.astype(np.int64)
    su, sv = _smooth(u - fu), _smooth(v - fv)
    a, b = _hash01(iu, iv, salt), _hash01(iu + 1, iv, salt)
    c, d = _hash01(iu, iv + 1, salt), _hash01(iu + 1, iv + 1, salt)
    return a + (b - a) * su + (c - a) * sv + (a - b - c + d) * su * sv


def _noise3(x: np.ndarray, y: np.ndarray, z: np.ndarray, salt) -> np.ndarray:
    fx, fy, fz = np.floor(x), np.floor(y), np.floor(z)
    ix, iy, iz = fx.astype(np.int64), fy.astype(np.int64), fz.astype(np.int64)
    sx, sy, sz = _smooth(x - fx), _smooth(y - fy), _smooth(z - fz)
    out = 0.0
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (sx if dx else 1 - sx) * (sy if dy else 1 - sy) * (sz if dz else 1 - sz)
                out = out + w * _hash01(ix + dx, iy + dy, iz + dz, salt)
    return out


def _band(wavelength, footprint: np.ndarray) -> np.ndarray:
    """Weight of a pattern of this wavelength (metres) where a pixel covers ``footprint`` metres: 0 below 4 pixels a
    period, 1 above 8 (the band limit that keeps fine detail -- which no flow could warp -- out of the frames)."""
    return np.clip(wavelength / footprint / 4.0 - 1.0, 0.0, 1.0)


def _fbm2(u, v, salt, fp_u, fp_v, lam_u: float, lam_v: float, octaves: int = 3) -> np.ndarray:
    """Band-limited fractal value noise, zero mean, |.| <= 1/2: sum_o 2^-o (noise(u / lam_u 2^-o, v / lam_v 2^-o)
    - 1/2) / sum_o 2^-o; an octave fades out as its period nears 4 pixels along u or v (footprints fp_u, fp_v)."""
    out = np.zeros(np.shape(u))
    for o in range(octaves):
        s = 0.5 ** o
        w = s * np.minimum(_band(lam_u * s, fp_u), _band(lam_v * s, fp_v))
        if not np.any(w):
            break
        out += w * (_noise2(u / (lam_u * s), v / (lam_v * s), salt + 7919 * o) - 0.5)
    return out / (2 - 0.5 ** (octaves - 1))


def _fbm3(x, y, z, salt, fp, lam: float, octaves: int = 2) -> np.ndarray:
    out = np.zeros(np.shape(x))
    for o in range(octaves):
        s = 0.5 ** o
        w = s * _band(lam * s, fp)
        if not np.any(w):
            break
        out += w * (_noise3(x / (lam * s), y / (lam * s), z / (lam * s), salt + 7919 * o) - 0.5)
    return out / (2 - 0.5 ** (octaves - 1))


def _stripes(x, period, width, fp) -> np.ndarray:
    """Stripes [k period - width/2, k period + width/2] along x, prefiltered: the share of a 2-pixel box
    [x - fp, x + fp] they cover (edges become 2-pixel ramps), faded to the mean width / period as the period nears
    4 pixels (as :func:`_band`). Texture-space antialiasing, as mip-mapping; the labels stay hard-edged."""
    def integral(t):                                            # int_0^t of the stripe indicator
        t = t + width / 2
        k = np.floor(t / period)
        return k * width + np.minimum(t - k * period, width)
    fp = np.maximum(fp, 1e-6)
    cover = np.clip((integral(x + fp) - integral(x - fp)) / (2 * fp), 0.0, 1.0)
    mean = width / period
    return mean + _band(period, fp) * (cover - mean)


def _step(x, edge, fp) -> np.ndarray:
    """Share of a 2-pixel box around x beyond ``edge`` (a prefiltered step)."""
    return np.clip((x - edge) / np.maximum(2 * fp, 1e-6) + 0.5, 0.0, 1.0)


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    return _smooth(np.clip((x - a) / (b - a), 0.0, 1.0))


# ---------------------------------------------------------------------------------------------- the scene
@dataclass
class _Look:
    """Per-clip street layout and lighting (metres, linear colours in [0, 1])."""

    road_half: float
    sidewalk: float
    lane_width: float
    lanes: int                 # lanes per direction
    asphalt: np.ndarray        # (3,)
    paving: np.ndarray
    kerb: np.ndarray
    marking: np.ndarray
    slab: float                # paving slab side
    horizon: np.ndarray        # sky colour at the horizon = haze colour
    zenith: np.ndarray
    cloud: np.ndarray
    cloud_cover: float
    sun: np.ndarray            # unit vector towards the sun
    sun_color: np.ndarray
    ambient: np.ndarray
    haze: float                # haze length L (metres)
    salt: int


@dataclass
class _Scene:
    """A clip's world at frame 0 and its camera path: primitives i are boxes [lo_i, hi_i] (crowns: the ellipsoid
    inscribed in the box) translating at vel_i metres per frame."""

    look: _Look
    cam_pos: np.ndarray        # (T, 3) camera centre
    yaw: np.ndarray            # (T,) radians, + turns to the right (+x)
    pitch: np.ndarray          # (T,) radians, + looks down
    lo: np.ndarray             # (N, 3)
    hi: np.ndarray             # (N, 3)
    vel: np.ndarray            # (N, 3)
    kind: np.ndarray           # (N,) primitive kind
    color: np.ndarray          # (N, 3, 3): up to three albedos per primitive
    aux: np.ndarray            # (N, 4): per-kind parameters (windows, heading, ...)
    salt: np.ndarray           # (N,) int64 texture salt


_FACADES = np.array([(0.72, 0.66, 0.56), (0.60, 0.60, 0.60), (0.62, 0.34, 0.26), (0.82, 0.80, 0.74),
                     (0.48, 0.45, 0.42), (0.75, 0.62, 0.45), (0.55, 0.60, 0.66), (0.80, 0.72, 0.60)])
_CAR_COLORS = np.array([(0.85, 0.85, 0.85), (0.06, 0.06, 0.07), (0.55, 0.56, 0.58), (0.30, 0.31, 0.33),
                        (0.70, 0.08, 0.07), (0.10, 0.20, 0.55), (0.08, 0.30, 0.15), (0.85, 0.70, 0.10),
                        (0.45, 0.15, 0.40), (0.20, 0.50, 0.70)])


def _draw_look(rng: np.random.Generator) -> tuple[_Look, dict]:
    road_half = rng.uniform(3.5, 7.5)
    lanes = 1 if road_half < 6.0 else 2
    grey = rng.uniform(0.22, 0.38)
    sun_el, sun_az = rng.uniform(0.25, 1.1), rng.uniform(0, 2 * math.pi)
    warm = rng.uniform(0, 1) * (1.1 - sun_el) / 0.85          # low sun: warmer light and horizon
    horizon = np.clip(np.array([0.72, 0.80, 0.88]) + rng.uniform(-0.08, 0.08, 3) + warm * np.array([0.12, 0.0, -0.12]),
                      0, 1)
    look = _Look(
        road_half=road_half, sidewalk=rng.uniform(2.5, 5.0), lane_width=road_half / lanes, lanes=lanes,
        asphalt=grey * (1 + rng.uniform(-0.06, 0.06, 3)),
        paving=rng.uniform(0.5, 0.72) * (1 + rng.uniform(-0.07, 0.07, 3)),
        kerb=np.full(3, rng.uniform(0.6, 0.8)), marking=np.array([0.9, 0.9, 0.88]) * rng.uniform(0.55, 0.85),
        slab=rng.uniform(0.9, 1.5), horizon=horizon,
        zenith=np.clip(np.array([0.25, 0.45, 0.80]) + rng.uniform(-0.1, 0.1, 3), 0, 1),
        cloud=np.full(3, rng.uniform(0.85, 1.0)), cloud_cover=rng.uniform(0.15, 0.75),
        sun=np.array([math.cos(sun_el) * math.sin(sun_az), math.sin(sun_el), math.cos(sun_el) * math.cos(sun_az)]),
        sun_color=rng.uniform(0.55, 0.9) * np.array([1.0, 0.97 - 0.08 * warm, 0.9 - 0.2 * warm]),
        ambient=rng.uniform(0.35, 0.55) * np.array([0.92, 0.96, 1.05]), haze=rng.uniform(150.0, 300.0),
        salt=int(rng.integers(1 << 30)))
    cam = {"speed": rng.uniform(0.4, 1.2), "height": rng.uniform(1.3, 1.7), "pitch": rng.uniform(0.0, 0.08),
           "lane": int(rng.integers(lanes)), "drift": rng.uniform(0.0, 0.35), "drift_w": rng.uniform(0.03, 0.12),
           "drift_phi": rng.uniform(0, 2 * math.pi), "yaw0": rng.uniform(-0.06, 0.06),
           "yaw_amp": rng.uniform(0.05, 0.2), "yaw_w": rng.uniform(0.08, 0.25), "yaw_phi": rng.uniform(0, 2 * math.pi)}
    # lane speeds (metres per frame): the camera's lane is never slower than the camera (no car comes at it)
    cam["lane_speed"] = {}
    for side in (1, -1):
        for j in range(lanes):
            if side == 1 and j == cam["lane"]:
                speed = cam["speed"] + rng.uniform(0.05, 0.4)
            else:
                speed = side * rng.uniform(0.3, 1.5)
            cam["lane_speed"][side, j] = speed
    return look, cam


class _Parts:
    """Accumulates primitives (boxes, crowns) while a chunk of street is drawn."""

    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, kind, lo, hi, vel=(0.0, 0.0, 0.0), colors=(), aux=(), salt=0):
        col = np.zeros((3, 3))
        col[:len(colors)] = colors
        a = np.zeros(4)
        a[:len(aux)] = aux
        self.rows.append((kind, np.asarray(lo, float), np.asarray(hi, float), np.asarray(vel, float), col, a, salt))


def _jitter(rng, color, amount: float) -> np.ndarray:
    return np.clip(np.asarray(color) * (1 + rng.uniform(-amount, amount, 3)), 0, 1)


def _draw_chunk(parts: _Parts, rng: np.random.Generator, k: int, look: _Look, cam: dict) -> None:
    """Street chunk k (z in [50 k, 50 k + 50)): for each side buildings, trees, pedestrians; then cars per lane."""
    z0 = k * CHUNK
    r, sw = look.road_half, look.sidewalk
    for side in (-1, 1):
        # building blocks: contiguous along z, 25 m deep
        cuts = np.sort(rng.uniform(0, CHUNK, int(rng.integers(0, 3))))
        edges = np.concatenate([[0.0], cuts, [CHUNK]]) + z0
        for a, b in itertools.pairwise(edges):
            setback = rng.uniform(0, 3) * (rng.random() < 0.6)
            height = rng.uniform(6, 28)
            x_in = r + sw + setback
            lo = (x_in, 0.0, a) if side == 1 else (-x_in - 25, 0.0, a)
            hi = (x_in + 25, height, b) if side == 1 else (-x_in, height, b)
            wall = _jitter(rng, _FACADES[rng.integers(len(_FACADES))], 0.08)
            glass = np.clip(np.array([0.16, 0.2, 0.26]) + rng.uniform(-0.06, 0.08, 3), 0, 1)
            # aux: floor height, window spacing, window width and height fractions
            aux = (rng.uniform(2.9, 3.6), rng.uniform(2.0, 3.2), rng.uniform(0.35, 0.6), rng.uniform(0.4, 0.6))
            parts.add(_BUILDING, lo, hi, colors=(wall, glass, wall * 0.8), aux=aux, salt=rng.integers(1 << 30))
        # trees on the kerb
        for _ in range(int(rng.integers(0, 4))):
            z = z0 + rng.uniform(0, CHUNK)
            x = side * (r + 0.7)
            trunk_h = rng.uniform(2.2, 3.4)
            rx, ry = rng.uniform(1.1, 1.8), rng.uniform(1.2, 2.2)
            cy = max(trunk_h + 0.5 * ry, 2.1 + ry)
            bark = _jitter(rng, (0.32, 0.22, 0.14), 0.2)
            leaves = _jitter(rng, (0.22, 0.42, 0.12), 0.25)
            salt = rng.integers(1 << 30)
            parts.add(_TRUNK, (x - 0.13, 0.0, z - 0.13), (x + 0.13, cy, z + 0.13), colors=(bark,), salt=salt)
            parts.add(_CROWN, (x - rx, cy - ry, z - rx), (x + rx, cy + ry, z + rx), colors=(leaves, leaves * 0.6),
                      salt=salt)
        # pedestrians walking along the sidewalk, either way
        for _ in range(int(rng.integers(0, 4))):
            z = z0 + rng.uniform(0, CHUNK)
            x = side * (r + rng.uniform(1.4, sw - 0.4))
            v = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.15)
            h = rng.uniform(1.55, 1.9)
            shirt = np.clip(rng.uniform(0.05, 0.9, 3), 0, 1)
            trousers = _jitter(rng, [(0.12, 0.14, 0.25), (0.1, 0.1, 0.1), (0.45, 0.4, 0.35)][rng.integers(3)], 0.2)
            skin = _jitter(rng, [(0.85, 0.68, 0.55), (0.55, 0.38, 0.26), (0.32, 0.22, 0.16)][rng.integers(3)], 0.1)
            hair = _jitter(rng, (0.12, 0.09, 0.06), 0.5)
            salt = rng.integers(1 << 30)
            parts.add(_PED_BODY, (x - 0.22, 0.0, z - 0.15), (x + 0.22, 0.87 * h, z + 0.15), (0, 0, v),
                      colors=(shirt, trousers, (0.08, 0.08, 0.08)), aux=(h,), salt=salt)
            parts.add(_PED_HEAD, (x - 0.1, 0.87 * h, z - 0.11), (x + 0.1, h, z + 0.11), (0, 0, v),
                      colors=(skin, hair), aux=(h,), salt=salt)
    # cars: two 25-m slots per lane, each holds a car or not; every car of a lane has the lane's speed
    for side in (1, -1):
        for j in range(look.lanes):
            speed = cam["lane_speed"][side, j]
            x = side * (j + 0.5) * look.lane_width
            for slot in range(2):
                present = rng.random() < 0.55
                length, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.65, 1.9), rng.uniform(1.35, 1.65)
                z = z0 + slot * CHUNK / 2 + rng.uniform(0, CHUNK / 2 - length - 1)
                body = _jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 0.1)
                glass = np.clip(np.array([0.08, 0.1, 0.13]) + rng.uniform(0, 0.08), 0, 1)
                salt = rng.integers(1 << 30)
                if not present or (side == 1 and j == cam["lane"] and z < 12.0):
                    continue      # nothing in front of the camera in its lane, nothing behind it
                heading = 1.0 if speed > 0 else -1.0
                top = 0.15 + 0.55 * height
                parts.add(_CAR_BODY, (x - width / 2, 0.12, z), (x + width / 2, top, z + length), (0, 0, speed),
                          colors=(body, glass, (0.04, 0.04, 0.04)), aux=(heading, length, width), salt=salt)
                c0 = z + (0.22 if heading > 0 else 0.3) * length
                parts.add(_CAR_CABIN, (x - width / 2 + 0.1, top, c0), (x + width / 2 - 0.1, height, c0 + 0.48 * length),
                          (0, 0, speed), colors=(body, glass), aux=(heading,), salt=salt)


def _make_scene(index: int, split: str = "train", frames: int = 12, seed: int = 0, *, static: bool = False) -> _Scene:
    """The world of clip ``index`` and the camera path of its first ``frames`` frames.

    static: a still world filmed by a camera driving straight along its lane (no yaw, drift or pitch): the flow is
    then pure expansion from the focus at the principal point."""
    stream = SPLIT_STREAMS[split]
    look, cam = _draw_look(np.random.default_rng([seed, stream, index]))
    t = np.arange(frames, dtype=np.float64)
    x_lane = (cam["lane"] + 0.5) * look.lane_width
    if static:
        x = np.full_like(t, x_lane)
        yaw, pitch = np.zeros_like(t), np.zeros_like(t)
    else:
        x = x_lane + cam["drift"] * np.sin(cam["drift_w"] * t + cam["drift_phi"])
        yaw = cam["yaw0"] + cam["yaw_amp"] * np.sin(cam["yaw_w"] * t + cam["yaw_phi"])
        pitch = np.full_like(t, cam["pitch"])
    cam_pos = np.stack([x, np.full_like(t, cam["height"]), cam["speed"] * t], 1)
    # the street is built from chunk -1 up to where anything seen in the last frame can have started
    z_end = cam_pos[-1, 2] + VIEW_DISTANCE + _MAX_SPEED * (frames - 1) + 10
    parts = _Parts()
    for k in range(-1, math.ceil(z_end / CHUNK) + 1):
        _draw_chunk(parts, np.random.default_rng([seed, stream, index, k + 2]), k, look, cam)
    kind, lo, hi, vel, col, aux, salt = (np.array(c) for c in zip(*parts.rows))
    if static:
        vel = np.zeros_like(vel)
    return _Scene(look, cam_pos, yaw, pitch, lo, hi, vel, kind.astype(np.int64), col, aux, salt.astype(np.int64))


# ---------------------------------------------------------------------------------------------- camera geometry
def _camera_axes(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(T,) -> (T, 3, 3) with columns right, down, forward in world coordinates: X_world = C + R X_cam."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    right = np.stack([cy, np.zeros_like(cy), -sy], -1)
    down = np.stack([-sy * sp, -cp, -cy * sp], -1)
    forward = np.stack([sy * cp, -sp, cy * cp], -1)
    return np.stack([right, down, forward], -1)


def focal_length(size: tuple[int, int]) -> float:
    """f in pixels: the longer image side spans HFOV_DEG."""
    return max(size) / 2 / math.tan(math.radians(HFOV_DEG) / 2)


def _project(points: np.ndarray, cam_pos: np.ndarray, axes: np.ndarray, f: float, cx: float, cy: float):
    """World points (T, M, 3) seen by cameras cam_pos (T, 3), axes (T, 3, 3) -> pixel x, y and camera z-depth
    (T M,) each. Points with depth <= _NEAR get coordinates that should not be used."""
    rel = ((points - cam_pos[:, None]) @ axes).reshape(-1, 3)                        # R^T (X - C), as rows
    z = rel[:, 2]
    zs = np.where(z > _NEAR, z, 1.0)
    return f * rel[:, 0] / zs + cx, f * rel[:, 1] / zs + cy, z


_CORNER_BITS = np.array([[(c >> a) & 1 for a in range(3)] for c in range(8)], dtype=bool)     # (8, 3)
_EDGES = np.array([(c, c | (1 << a)) for c in range(8) for a in range(3) if not c & (1 << a)])  # (12, 2)


def _screen_rects(lo, hi, cam_pos, axes, f, cx, cy, h, w):
    """Pixel rectangles (T, N) j0, j1, i0, i1 (inclusive; empty if j0 > j1) that hold every pixel whose ray can hit
    box [lo, hi] (T, N, 3): the box is clipped at the near plane, its vertices projected, the bound padded by 1."""
    corners = np.where(_CORNER_BITS, hi[:, :, None], lo[:, :, None])                  # (T, N, 8, 3)
    rel = np.einsum("tji,tnkj->tnki", axes, corners - cam_pos[:, None, None])         # camera coordinates
    a, b = rel[:, :, _EDGES[:, 0]], rel[:, :, _EDGES[:, 1]]                           # (T, N, 12, 3)
    za, zb = a[..., 2], b[..., 2]
    cross = (za - _NEAR) * (zb - _NEAR) < 0
    s = np.where(cross, (_NEAR - za) / np.where(cross, zb - za, 1.0), 0.0)
    cut = a + s[..., None] * (b - a)                                                   # edge meets z = near
    pts = np.concatenate([rel, cut], 2)                                               # (T, N, 20, 3)
    ok = np.concatenate([rel[..., 2] >= _NEAR, cross], 2)
    z = np.where(ok, np.maximum(pts[..., 2], _NEAR), 1.0)
    u = np.clip(f * pts[..., 0] / z + cx, -2.0, w + 1.0)
    v = np.clip(f * pts[..., 1] / z + cy, -2.0, h + 1.0)
    big = np.float64(1e9)
    j0 = np.floor(np.where(ok, u, big).min(-1)) - 1
    j1 = np.ceil(np.where(ok, u, -big).max(-1)) + 1
    i0 = np.floor(np.where(ok, v, big).min(-1)) - 1
    i1 = np.ceil(np.where(ok, v, -big).max(-1)) + 1
    j0, i0 = np.maximum(j0, 0), np.maximum(i0, 0)
    j1, i1 = np.minimum(j1, w - 1), np.minimum(i1, h - 1)
    return (x.astype(np.int64) for x in (j0, j1, i0, i1))


def _rect_pixels(j0, j1, i0, i1, w):
    """All (pair, pixel) with the pixel in the pair's rectangle, as flat arrays (ragged enumeration, no loop)."""
    cols, rows = np.maximum(j1 - j0 + 1, 0), np.maximum(i1 - i0 + 1, 0)
    count = cols * rows
    pairs = np.nonzero(count)[0]
    count = count[pairs]
    pair = np.repeat(pairs, count)
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    width = cols[pair]
    return pair, (i0[pair] + local // width) * w + j0[pair] + local % width


# ---------------------------------------------------------------------------------------------- the renderer
_RAYS_PER_CHUNK = 1 << 18      # frames are cast in chunks of about this many rays (bounded memory)


def _render(scene: _Scene, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Ray-cast all frames of a scene: labels (T, H, W) uint8, rgb (T, 3, H, W) float32 in [-1, 1], flow (T, 2, H, W),
    occlusion (T, H, W) bool, depth (T, H, W) float32."""
    h, w = size
    n_frames, n_pix = len(scene.cam_pos), h * w
    f, cx, cy = focal_length(size), (w - 1) / 2, (h - 1) / 2
    axes = _camera_axes(scene.yaw, scene.pitch)                                       # (T, 3, 3)
    jj, ii = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    d_cam = np.stack([(jj.ravel() - cx) / f, (ii.ravel() - cy) / f, np.ones(n_pix)], 1)    # (P, 3) K^-1 p
    out = {"labels": np.zeros((n_frames, n_pix), np.uint8), "rgb": np.zeros((n_frames, n_pix, 3), np.float32),
           "flow": np.zeros((n_frames, n_pix, 2), np.float32), "occlusion": np.ones((n_frames, n_pix), bool),
           "depth": np.zeros((n_frames, n_pix), np.float32)}
    step = max(1, _RAYS_PER_CHUNK // n_pix)
    carry = None                                                 # face and depth buffers of the frame before
    for t0 in range(0, n_frames, step):
        frames = np.arange(t0, min(n_frames, t0 + step))
        hit = _cast(scene, frames, axes[frames], d_cam, f, size)
        sl = slice(t0, frames[-1] + 1)
        out["labels"][sl] = _classify(scene, hit["surface"], hit["point"]).reshape(-1, n_pix)
        out["rgb"][sl] = _shade(scene, hit, f).reshape(-1, n_pix, 3)
        out["depth"][sl] = hit["tau"].reshape(-1, n_pix)
        face_buf, tau_buf = hit["face"], hit["tau"]
        if carry is not None:
            face_buf, tau_buf = np.concatenate([carry[0], face_buf]), np.concatenate([carry[1], tau_buf])
        first = 0 if carry is not None else 1                  # frame 0 has no flow
        if len(frames) > first:
            fl, occ = _flow(scene, hit, frames, first, axes, face_buf, tau_buf, f, size)
            out["flow"][t0 + first:sl.stop] = fl
            out["occlusion"][t0 + first:sl.stop] = occ
        carry = (hit["face"][-n_pix:], hit["tau"][-n_pix:])
    return {"labels": out["labels"].reshape(n_frames, h, w),
            "rgb": out["rgb"].reshape(n_frames, h, w, 3).transpose(0, 3, 1, 2).copy(),
            "flow": out["flow"].reshape(n_frames, h, w, 2).transpose(0, 3, 1, 2).copy(),
            "occlusion": out["occlusion"].reshape(n_frames, h, w),
            "depth": out["depth"].reshape(n_frames, h, w)}


def _cast(scene: _Scene, frames: np.ndarray, axes: np.ndarray, d_cam: np.ndarray, f: float,
          size: tuple[int, int]) -> dict:
    """Cast the pixel rays of some frames (F,) (camera axes (F, 3, 3), K^-1 p (P, 3)). Per ray (F P, frame-major):
    surface (object index, _GROUND or _SKY), tau (z-depth; SKY_DEPTH for the sky), point, normal, face id, and the
    ray (origin, dirs); per (frame, object): the boxes lo_t, hi_t (F N, 3) at these frames."""
    n_frames, n_prims, n_pix = len(frames), len(scene.lo), len(d_cam)
    h, w = size
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cam = scene.cam_pos[frames]
    dirs = (d_cam[None] @ axes.transpose(0, 2, 1)).reshape(-1, 3)                     # (F P, 3) = R_t K^-1 p
    origin = np.repeat(cam, n_pix, 0)
    inv = 1.0 / np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
    t_idx = frames.astype(np.float64)[:, None, None]
    lo_t = scene.lo[None] + t_idx * scene.vel[None]                                  # (F, N, 3) boxes at frame t
    hi_t = scene.hi[None] + t_idx * scene.vel[None]

    # candidates: (frame, object, pixel) with the pixel in the object's screen rectangle, near enough along z
    j0, j1, i0, i1 = _screen_rects(lo_t, hi_t, cam, axes, f, cx, cy, h, w)
    j1 = np.where(lo_t[..., 2] > cam[:, None, 2] + VIEW_DISTANCE, -1, j1)
    pair, pix = _rect_pixels(j0.ravel(), j1.ravel(), i0.ravel(), i1.ravel(), w)
    prim = pair % n_prims
    ray = (pair // n_prims) * n_pix + pix
    rel_lo = (lo_t - cam[:, None]).reshape(-1, 3).T.copy()                          # (3, F N): box - C_t
    rel_hi = (hi_t - cam[:, None]).reshape(-1, 3).T.copy()
    inv_t = inv.T.copy()                                                              # (3, F P)

    # nearest hit per ray: boxes by the slab test, crowns as ellipsoids, then a z-buffer
    is_crown = scene.kind[prim] == _CROWN
    hits = []
    for ellipsoid in (False, True):
        sel = np.nonzero(is_crown == ellipsoid)[0]
        r, p = ray[sel], pair[sel]
        if ellipsoid:                      # |(C + tau d - c) / rad|^2 = 1, the nearer root
            qa, qb, qc = 0.0, 0.0, -1.0
            for k in range(3):
                rad = (rel_hi[k, p] - rel_lo[k, p]) / 2
                oc = -(rel_lo[k, p] + rel_hi[k, p]) / 2 / rad
                dd = dirs[r, k] / rad
                qa, qb, qc = qa + dd * dd, qb + oc * dd, qc + oc * oc
            disc = qb * qb - qa * qc
            t_hit = (-qb - np.sqrt(np.maximum(disc, 0))) / qa
            ok = (disc >= 0) & (t_hit > _NEAR)
        else:                              # slab test: tau_in = max_k min(t1_k, t2_k) <= tau_out = min_k max(...)
            t_in, t_out = np.full(len(sel), -np.inf), np.full(len(sel), np.inf)
            for k in range(3):
                iv = inv_t[k, r]
                t1, t2 = rel_lo[k, p] * iv, rel_hi[k, p] * iv
                np.maximum(t_in, np.minimum(t1, t2), out=t_in)
                np.minimum(t_out, np.maximum(t1, t2), out=t_out)
            t_hit = t_in
            ok = (t_in <= t_out) & (t_in > _NEAR)
        hits.append((r[ok], t_hit[ok], prim[sel][ok]))
    h_ray, h_tau, h_prim = (np.concatenate(x) for x in zip(*hits))
    tau = np.full(n_frames * n_pix, np.inf)
    np.minimum.at(tau, h_ray, h_tau)
    surface = np.full(n_frames * n_pix, _SKY, dtype=np.int64)
    win = h_tau == tau[h_ray]
    surface[h_ray[win]] = h_prim[win]
    ground_tau = np.where(dirs[:, 1] < 0, -origin[:, 1] / np.minimum(dirs[:, 1], -1e-300), np.inf)   # y = 0
    surface[ground_tau < tau] = _GROUND
    tau = np.minimum(tau, ground_tau)
    sky = tau > SKY_DEPTH
    surface[sky] = _SKY
    tau[sky] = SKY_DEPTH
    point = origin + tau[:, None] * dirs

    # faces and normals: ground +y; boxes: the slab the ray entered by; crowns: the ellipsoid normal
    normal = np.zeros_like(point)
    normal[:, 1] = 1.0
    face = np.full(len(point), _GROUND, dtype=np.int64)
    face[sky] = _SKY
    obj = np.nonzero(surface >= 0)[0]
    op = surface[obj]
    opair = (obj // n_pix) * n_prims + op
    crown = scene.kind[op] == _CROWN
    axis = np.minimum(rel_lo[:, opair] * inv_t[:, obj], rel_hi[:, opair] * inv_t[:, obj]).argmax(0)   # entry slab
    sign = np.where(dirs[obj, axis] > 0, -1.0, 1.0)                                  # its outward normal
    nrm = np.zeros((len(obj), 3))
    nrm[np.arange(len(obj)), axis] = sign
    lo_flat, hi_flat = lo_t.reshape(-1, 3), hi_t.reshape(-1, 3)
    en = (point[obj] - (lo_flat[opair] + hi_flat[opair]) / 2) / ((hi_flat[opair] - lo_flat[opair]) / 2) ** 2
    normal[obj] = np.where(crown[:, None], en / np.linalg.norm(en, axis=1, keepdims=True), nrm)
    face[obj] = 8 * op + np.where(crown, 6, 2 * axis + (sign > 0))
    return {"surface": surface, "tau": tau, "point": point, "normal": normal, "face": face, "dirs": dirs,
            "origin": origin, "lo": lo_flat, "hi": hi_flat, "n_pix": n_pix}


def _flow(scene: _Scene, hit: dict, frames: np.ndarray, first: int, axes: np.ndarray, face_buf: np.ndarray,
          tau_buf: np.ndarray, f: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Backward flow (F', P, 2) and occlusion (F', P) of frames[first:], from their hits and the face / depth buffers
    of frames[first] - 1 .. frames[-1] - 1 (face_buf, tau_buf, frame-major, the first of them at offset 0)."""
    h, w = size
    n_pix = h * w
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cur = np.arange(first * n_pix, len(frames) * n_pix)                              # rays of the frames with flow
    prev = frames[first:] - 1                                                        # their previous frames
    surface, point, dirs = hit["surface"][cur], hit["point"][cur], hit["dirs"][cur]
    # objects move back by their velocity; then camera t-1 sees X_{t-1} at p'
    moved = point - np.where(surface[:, None] >= 0, scene.vel[np.maximum(surface, 0)], 0.0)
    px, py, pz = _project(moved.reshape(len(prev), n_pix, 3), scene.cam_pos[prev], axes[prev], f, cx, cy)
    # the sky: the same direction seen from camera t-1 (rotation only)
    s_rel = (dirs.reshape(len(prev), n_pix, 3) @ axes[prev]).reshape(-1, 3)
    is_sky = surface == _SKY
    sz = np.where(s_rel[:, 2] > _NEAR, s_rel[:, 2], 1.0)
    px = np.where(is_sky, f * s_rel[:, 0] / sz + cx, px)
    py = np.where(is_sky, f * s_rel[:, 1] / sz + cy, py)
    pz = np.where(is_sky, s_rel[:, 2] * SKY_DEPTH, pz)
    front = pz > _NEAR
    pix = cur % n_pix
    flow = np.where(front[:, None], np.stack([px - pix % w, py - pix // w], 1), 0.0)
    # p' within 1e-6 px of a pixel centre counts as on it (rounding must neither push it out nor bring in a neighbour)
    px = np.where(np.abs(px - np.round(px)) < 1e-6, np.round(px), px)
    py = np.where(np.abs(py - np.round(py)) < 1e-6, np.round(py), py)
    inside = front & (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    # visible: the pixels around p' that the bilinear warp reads (floor and ceil in x and y) show the same face
    face = hit["face"][cur]
    is_crown = (surface >= 0) & (scene.kind[np.maximum(surface, 0)] == _CROWN)
    base = np.repeat(np.arange(len(prev)) * n_pix, n_pix)
    same = np.ones(len(cur), dtype=bool)
    for qy in (np.floor(py), np.ceil(py)):
        for qx in (np.floor(px), np.ceil(px)):
            q = base + np.clip(qy, 0, h - 1).astype(np.int64) * w + np.clip(qx, 0, w - 1).astype(np.int64)
            same &= (face_buf[q] == face) & (~is_crown | (np.abs(tau_buf[q] - pz) <= 0.05 * pz))
    return flow.reshape(len(prev), n_pix, 2), ~(inside & same).reshape(len(prev), n_pix)


def _classify(scene: _Scene, surface: np.ndarray, point: np.ndarray) -> np.ndarray:
    look = scene.look
    labels = np.full(len(surface), SKY, dtype=np.int64)
    obj = surface >= 0
    labels[obj] = _KIND_CLASS[scene.kind[surface[obj]]]
    g = np.nonzero(surface == _GROUND)[0]
    x, z = point[g, 0], point[g, 2]
    labels[g] = np.where(np.abs(x) < look.road_half, ROAD, SIDEWALK)
    labels[g[_marking(look, x, z)]] = LANE_MARKING
    return labels


def _marking(look: _Look, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Lane markings on the road (0.3 m wide): a dashed centre line, dashed lane lines, solid edge lines."""
    ax = np.abs(x)
    dashed = np.mod(z, 9.0) < 3.5
    centre = (ax < 0.15) & dashed
    lane = (look.lanes == 2) & (np.abs(ax - look.lane_width) < 0.15) & dashed
    edge = (ax > look.road_half - 0.45) & (ax < look.road_half - 0.15)
    return centre | lane | edge


def _paint(look: _Look, x, z, fp_x, fp_z) -> np.ndarray:
    """Prefiltered coverage of the lane markings of :func:`_marking` (the same stripes, box-filtered)."""
    ax = np.abs(x)
    dash = _stripes(z - 1.75, 9.0, 3.5, fp_z)
    paint = _stripes(x, 1e6, 0.3, fp_x) * dash + _stripes(ax - (look.road_half - 0.3), 1e6, 0.3, fp_x)
    if look.lanes == 2:
        paint = paint + _stripes(ax - look.lane_width, 1e6, 0.3, fp_x) * dash
    return np.clip(paint, 0, 1)


def _shade(scene: _Scene, hit: dict, f: float) -> np.ndarray:
    """Colours (F P, 3) in [-1, 1] of cast rays: albedo by surface, Lambert + ambient, haze; the sky by direction."""
    surface, point, normal, tau = hit["surface"], hit["point"], hit["normal"], hit["tau"]
    dirs, origin = hit["dirs"], hit["origin"]
    lo_flat, hi_flat, n_pix = hit["lo"], hit["hi"], hit["n_pix"]
    look = scene.look
    n_prims = len(scene.lo)
    dlen = np.linalg.norm(dirs, axis=1)
    dist = tau * dlen
    dhat = dirs / dlen[:, None]
    # metres per pixel along each world axis at the hit point: dist / (f sqrt(1 - (e_k . d)^2)) (foreshortening)
    fps = dist[:, None] / f / np.sqrt(np.maximum(1 - dhat ** 2, 4e-4))
    albedo = np.zeros_like(point)

    # ground: asphalt (fine grain + wear, stretched along the road), paint, kerb, paving slabs
    g = np.nonzero(surface == _GROUND)[0]
    x, z, fx, fz = point[g, 0], point[g, 2], fps[g, 0], fps[g, 2]
    ax = np.abs(x)
    grain = _fbm2(x, z, look.salt, fx, fz, 6.0, 40.0, 3)
    road = look.asphalt * (1 + 2.5 * grain)[:, None]
    road += _paint(look, x, z, fx, fz)[:, None] * (look.marking * (1 + 0.3 * grain)[:, None] - road)
    on_road = 1 - _step(ax, look.road_half, fx)
    albedo[g] = road
    w = np.nonzero(on_road < 1)[0]                             # the kerb and the sidewalk (and their blend)
    x, z, fx, fz, ax, on_road = x[w], z[w], fx[w], fz[w], ax[w], on_road[w]
    joints = 1 - (1 - _stripes(x, look.slab, 0.04, fx)) * (1 - _stripes(z, look.slab, 0.04, fz))
    walk = look.paving * ((1 + 1.5 * _fbm2(x, z, look.salt + 2, fx, fz, 4.0, 8.0, 2)) * (1 - 0.25 * joints))[:, None]
    walk += (1 - _step(ax, look.road_half + 0.25, fx))[:, None] * (look.kerb * (1 + 0.5 * grain[w])[:, None] - walk)
    albedo[g[w]] = walk + on_road[:, None] * (road[w] - walk)

    obj = np.nonzero(surface >= 0)[0]
    op = surface[obj]
    kinds = scene.kind[op]
    opair = (obj // n_pix) * n_prims + op
    lo = lo_flat[opair]
    local = point[obj] - lo                                    # coordinates that move with the object
    ext = hi_flat[opair] - lo
    nrm, fpo = normal[obj], fps[obj]
    col, aux, salt = scene.color[op], scene.aux[op], scene.salt[op]
    out = np.zeros((len(obj), 3))
    side_x = np.abs(nrm[:, 0]) > 0.5                           # a face looking along x
    side_z = np.abs(nrm[:, 2]) > 0.5
    top = nrm[:, 1] > 0.5
    along = np.where(side_x, local[:, 2], local[:, 0])         # the horizontal texture axis of a vertical face
    fp_a = np.where(side_x, fpo[:, 2], fpo[:, 0])

    k = np.nonzero(kinds == _BUILDING)[0]
    if len(k):
        a, y, fa, fy = along[k], local[k, 1], fp_a[k], fpo[k, 1]
        fh, ws, fw, fv = aux[k, 0], aux[k, 1], aux[k, 2], aux[k, 3]
        wall = col[k, 0] * (1 + 1.8 * _fbm2(a, y, salt[k], fa, fy, 8.0, 8.0, 2))[:, None]
        rows = _step(y, 2.6, fy) * (1 - _step(y, ext[k, 1] - 1.0, fy))
        window = _stripes(a - ws / 2, ws, fw * ws, fa) * _stripes(y - 0.4 - 0.55 * fh, fh, fv * fh, fy) * rows
        glass = col[k, 1] * (1 + 1.2 * _fbm2(a, y, salt[k] + 5, fa, fy, 6.0, 6.0, 2))[:, None]
        out[k] = wall + window[:, None] * (glass - wall)
        plinth = 1 - _step(y, 0.7, fy)
        out[k] += plinth[:, None] * (col[k, 2] - out[k])
        out[k[top[k]]] = col[k[top[k]], 2]

    k = np.nonzero(kinds == _CAR_BODY)[0]
    if len(k):
        heading, length, width = aux[k, 0], aux[k, 1], aux[k, 2]
        y, lz, lx, fy = point[obj[k], 1], local[k, 2], local[k, 0], fpo[k, 1]
        top_y = hi_flat[opair[k], 1]
        shade = 0.8 + 0.3 * (y - 0.12) / (top_y - 0.12) + 0.3 * _fbm2(along[k], y, salt[k], fp_a[k], fy, 1.5, 1.5, 2)
        paint = col[k, 0] * shade[:, None]
        low = 1 - _step(y, 0.35, fy)
        hub = np.minimum(np.abs(lz - 0.2 * length), np.abs(lz - 0.8 * length))
        wheel = side_x[k] * (1 - _step(y, 0.55, fy)) * (1 - _step(hub, 0.36, fpo[k, 2]))
        lamp = side_z[k] * _step(y, 0.55, fy) * (1 - _step(y, 0.75, fy)) \
            * np.maximum(1 - _step(lx, 0.35, fpo[k, 0]), _step(lx, width - 0.35, fpo[k, 0]))
        front = nrm[k, 2] * heading > 0
        light = np.where(front[:, None], (0.95, 0.92, 0.75), (0.75, 0.05, 0.04))
        out[k] = paint + (side_z[k] * low)[:, None] * (0.12 - paint)
        out[k] += lamp[:, None] * (light - out[k])
        out[k] += wheel[:, None] * (col[k, 2] - out[k])

    k = np.nonzero(kinds == _CAR_CABIN)[0]
    if len(k):
        y, fy = local[k, 1], fpo[k, 1]
        pane = ~top[k] * _step(y, 0.05, fy) * (1 - _step(y, ext[k, 1] - 0.07, fy))
        glass = col[k, 1] * (1 + 1.2 * _fbm2(along[k], y, salt[k], fp_a[k], fy, 1.2, 1.2, 2))[:, None]
        out[k] = col[k, 0] + pane[:, None] * (glass - col[k, 0])

    k = np.nonzero(kinds == _PED_BODY)[0]
    if len(k):
        y, height, fy = local[k, 1], aux[k, 0], fpo[k, 1]
        out[k] = col[k, 1] + _step(y, 0.47 * height, fy)[:, None] * (col[k, 0] - col[k, 1])
        out[k] += (1 - _step(y, 0.07, fy))[:, None] * (col[k, 2] - out[k])

    k = np.nonzero(kinds == _PED_HEAD)[0]
    if len(k):
        y, fy = local[k, 1], fpo[k, 1]
        face_side = side_z[k] * (1 - _step(np.abs(along[k] - ext[k, 0] / 2), 0.07, fp_a[k]))
        hair = np.maximum(_step(y, 0.6 * ext[k, 1], fy), _step(y, 0.3 * ext[k, 1], fy) * (1 - face_side))
        out[k] = col[k, 0] + hair[:, None] * (col[k, 1] - col[k, 0])

    k = np.nonzero(kinds == _TRUNK)[0]
    if len(k):
        out[k] = col[k, 0] * (1 + 1.0 * _fbm2(along[k], local[k, 1], salt[k], fp_a[k], fpo[k, 1], 0.5, 1.5, 2)
                              )[:, None]

    k = np.nonzero(kinds == _CROWN)[0]
    if len(k):
        q = local[k]
        leaf = _fbm3(q[:, 0], q[:, 1], q[:, 2], salt[k], 1.5 * dist[obj[k]] / f, 1.5, 3)
        out[k] = col[k, 0] + (col[k, 0] - col[k, 1]) * (2.0 * leaf)[:, None]
    albedo[obj] = np.clip(out, 0, 1)

    # light and haze (Gaussian in distance: almost none nearby, so a near point keeps its colour between frames)
    lit = albedo * (look.ambient + look.sun_color * np.maximum((normal * look.sun).sum(1), 0)[:, None])
    dz = point[:, 2] - origin[:, 2]
    haze = np.maximum(1 - np.exp(-(dist / look.haze) ** 2), _smoothstep(VIEW_DISTANCE / 2, VIEW_DISTANCE, dz))
    rgb = lit + haze[:, None] * (look.horizon - lit)

    # sky: gradient + clouds, a function of the direction only
    s = np.nonzero(surface == _SKY)[0]
    el = np.arcsin(np.clip(dhat[s, 1], -1, 1))
    az = np.arctan2(dhat[s, 0], dhat[s, 2])
    grad = _smoothstep(0.0, 0.9, el) ** 0.8
    base = look.horizon + grad[:, None] * (look.zenith - look.horizon)
    n = 0.5 + _fbm2(az * 3.0, el * 6.0, look.salt + 9, 3.0 / f, 6.0 / f, 1.0, 1.0, 3)
    cover = look.cloud_cover
    cloud = _smoothstep(1 - cover - 0.12, 1 - cover + 0.18, n) * _smoothstep(0.0, 0.25, el) * (cover > 0.05)
    rgb[s] = base + (0.85 * cloud)[:, None] * (look.cloud - base)
    return np.clip(rgb, 0, 1) * 2 - 1


# ---------------------------------------------------------------------------------------------- public API
def _check_args(split: str, frames: int, size, seed: int) -> tuple[int, int]:
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames!r}")
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (H, W) in pixels, e.g. (64, 64) or (128, 256), got {size!r}") from None
    if h < 2 or w < 2:
        raise ValueError(f"size must be (H, W) with H, W >= 2 pixels, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return h, w


def _to_clips(parts: list[dict]) -> StreetClips:
    cat = {k: torch.from_numpy(np.stack([p[k] for p in parts])) for k in parts[0]}
    return StreetClips(labels=cat["labels"].long(), frames=cat["rgb"], flow=cat["flow"],
                       occlusion=cat["occlusion"][:, :, None].float(), depth=cat["depth"][:, :, None])


def render_clip(index: int, *, split: str = "train", frames: int = 12, size=(64, 64), seed: int = 0,
                static: bool = False) -> StreetClips:
    """Clip ``index`` of a split, rendered (not cached): a StreetClips with B = 1.

    static=True: the same street with every object standing still, filmed by a camera driving straight ahead
    (no yaw, drift or pitch) -- the flow is then a pure expansion from the principal point (for tests and figures).
    """
    size = _check_args(split, frames, size, seed)
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return _to_clips([_render(_make_scene(index, split, frames, seed, static=static), size)])


_OUTPUTS = ("labels", "rgb", "flow", "occlusion", "depth")


@lru_cache(maxsize=4)
def _streets_cached(split: str, n: int, frames: int, size: tuple[int, int], seed: int, start: int):
    """The rendered batch, stored compactly (labels uint8, occlusion bool); never handed out directly."""
    if n == 0:
        h, w = size
        shapes = {"labels": (h, w), "rgb": (3, h, w), "flow": (2, h, w), "occlusion": (h, w), "depth": (h, w)}
        types = {"labels": np.uint8, "occlusion": bool}
        return tuple(torch.from_numpy(np.zeros((0, frames, *shapes[k]), types.get(k, np.float32)))
                     for k in _OUTPUTS)
    parts = [_render(_make_scene(i, split, frames, seed), size) for i in range(start, start + n)]
    return tuple(torch.from_numpy(np.stack([p[k] for p in parts])) for k in _OUTPUTS)


def streets(split: str = "train", n: int = 64, *, frames: int = 12, size=(64, 64), seed: int = 0,
            start: int = 0) -> StreetClips:
    """Clips ``start .. start + n - 1`` of a split (shapes and conventions in the module doc).

    Clip i depends on (seed, split, i) only (and frames, size): the same for every n and start. The last few calls
    are cached (a training loop asks for the same clips again); every call returns fresh tensors.
    """
    size = _check_args(split, frames, size, seed)
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    labels, rgb, flow, occ, depth = _streets_cached(split, int(n), int(frames), size, int(seed), int(start))
    return StreetClips(labels.long(), rgb.clone(), flow.clone(), occ[:, :, None].float(), depth[:, :, None].clone())
