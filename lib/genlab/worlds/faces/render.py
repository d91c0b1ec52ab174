"""Render passes (:data:`RENDER_PASSES`, :func:`render_pass`: "rgb" and "mask") and the renderer:
:func:`render_passes`, :func:`render_faces`, :func:`render_sequence`."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from genlab.worlds.faces.details import FRECKLE_CELL, Details
from genlab.worlds.faces.factors import N_FACTORS, _check_resolution, _check_seeds, check_factors
from genlab.worlds.faces.layout import _rows
from genlab.worlds.faces.scene import (EYE_WHITE, GLINT_RGB, LASH_RGB, MOUTH_RGB, PUPIL_RGB, TEETH_RGB, FaceParams,
                                      Scene, _fract, _hash2, _sq, _tri, build_scene, coverage, ellipse_sdf_coarse,
                                      region_boxes)

_CHUNK_PIXELS = 1 << 18  # faces per chunk = this / R^2: each (n, 1, R, R) intermediate is ~1 MB (measured best)


@dataclass(frozen=True)
class RenderPass:
    """A registered pass: ``render(scene) -> (n, channels, R, R)``."""
    name: str
    channels: int
    render: Callable[[Scene], torch.Tensor]


RENDER_PASSES: dict[str, RenderPass] = {}


def render_pass(name: str, channels: int):
    """Decorator: register ``fn(scene: Scene) -> (n, channels, R, R)`` as the pass ``name`` (see the package doc)."""
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
