"""The factors of the faces world: the table (:data:`FACTORS`, :data:`NEUTRAL`), factor matrices (sample, neutral,
normalize / denormalize, check) and the argument checks the renderer and the dataset share."""
from __future__ import annotations

from dataclasses import dataclass

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
