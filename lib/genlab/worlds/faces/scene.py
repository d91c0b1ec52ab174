"""The scene of a chunk of faces: per-face constants (:class:`FaceParams`: layout, colours, light), signed-distance
helpers, and :func:`build_scene`, which lays the faces out on the pixel grid and computes every layer's coverage
(:class:`Scene`, what a render pass reads)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from genlab.worlds.faces.details import Details
from genlab.worlds.faces.factors import FACTOR_NAMES, _COLUMN
from genlab.worlds.faces.layout import (CENTRE, FRECKLE_DV, FRECKLE_U, FRECKLE_V, NECK_TOP, PUPIL, SHIRT, FaceLayout,
                                       _pixel_index, _rows, pixel_boxes)


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

