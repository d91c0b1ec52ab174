"""The conditioning render passes of Deep Video Portraits (Kim et al. 2018, Sec. 4): what a face *tracker's*
parametric model renders, as opposed to the detailed "rgb" photo of the same face.

Kim et al. feed their rendering-to-video network three synthetic images per frame, rendered from the reconstructed
parametric face model: a colour rendering under the estimated illumination, a *correspondence* image (which point of
the model each pixel shows), and an *eye-gaze map* (where the irises are). Here the parametric model is the faces
world's own layout (:class:`~genlab.worlds.faces.FaceLayout`), and the passes read only the per-face
:class:`~genlab.worlds.faces.FaceParams` and the layer coverages of the face and its parts -- never the
:class:`~genlab.worlds.faces.Details` (freckles, mottling, hair strands, background stripes) and never hair, neck,
shirt or background, which the parametric model does not have. So a conditioning image is a function of the factors
alone (tested bitwise across detail seeds), and everything the network draws beyond it (hair, ears' shading, skin
detail, background) it must learn from the target video.

Passes (registered in :data:`~genlab.worlds.faces.RENDER_PASSES`, (n, 3, R, R) float32 in [0, 1], 0 off the model):

* ``"shaded"``: flat-shaded colour render: the skin albedo under the face's Lambert light (the rgb pass's lighting,
  without mottling, freckles or nose shadows), lips, mouth interior, teeth, brows, eye whites; the face is not cut by
  the hair (the model knows no hair).
* ``"correspondence"``: the model point a pixel shows, as a colour: (c_u, c_v, 1) with the head's turn undone,
  c_u = 1/2 + (asin(u / a) - yaw) / pi, c_v = 1/2 + (asin(v / b) - pitch) / pi (u / a, v / b clamped to [-1, 1];
  a, b the face's half width and height): the eyes, brows, nose and mouth sit on a cylinder of radius a
  (genlab.worlds.faces.layout), so a feature keeps its c_u when the head turns and its c_v when it nods (exactly on
  the cylinder; roll turns the whole face frame).
* ``"gaze"``: the eye-gaze map: the open part of each eye white (1, 1, 1) with the iris as a red disc (1, 0, 0);
  the lid (blink) covers both with black (at blink = 1 a sliver of a few pixels stays open, as in the photo).
"""
from __future__ import annotations

import math

import torch

from genlab.worlds.faces.render import render_pass
from genlab.worlds.faces.scene import EYE_WHITE, MOUTH_RGB, TEETH_RGB, Scene, _rgb

#: the passes a Deep Video Portraits frame is conditioned on, in channel order (3 channels each)
CONDITIONING_PASSES: tuple[str, ...] = ("shaded", "correspondence", "gaze")
CONDITIONING_CHANNELS = 3 * len(CONDITIONING_PASSES)


def _lambert(scene: Scene) -> torch.Tensor:
    """(n, 1, R, R) Lambert brightness 0.52 + 0.58 max(n . l, 0) of the face ellipsoid (as the rgb pass)."""
    P, u, v = scene.params, scene.u, scene.v
    nu = (u * P.normal_iu).clamp(-1.0, 1.0)
    nv = ((v + P.normal_v) * P.normal_iv).clamp(-1.0, 1.0)
    nz = torch.sqrt((1 - nu * nu - nv * nv).clamp(min=0.0))
    return 0.52 + 0.58 * (nu * P.light_u + nv * P.light_v + nz * P.light_z).clamp(min=0.0)


@render_pass("shaded", channels=3)
def shaded_pass(scene: Scene) -> torch.Tensor:
    """Flat-shaded colour render of the parametric model (albedo x Lambert light), black off the model."""
    P = scene.params
    light = _lambert(scene)
    skin = P.skin * light
    zeros = torch.zeros(len(scene.factors), 3, scene.resolution, scene.resolution)
    out = scene.composite({"ears": skin, "face": skin, "brows": P.brows * light, "lips": P.lips * light,
                           "mouth": MOUTH_RGB, "teeth": TEETH_RGB, "eye_white": EYE_WHITE, "eyelid": skin},
                          initial=zeros)
    return out.clamp_(0.0, 1.0)


@render_pass("correspondence", channels=3)
def correspondence_pass(scene: Scene) -> torch.Tensor:
    """Which model point each pixel shows: (c_u, c_v, 1) on the face and ears, 0 elsewhere (module docstring)."""
    lay = scene.params.layout
    cu = 0.5 + (torch.asin((scene.u / lay.a).clamp(-1.0, 1.0)) - lay.yaw) / math.pi   # features sit on radius a
    cv = 0.5 + (torch.asin((scene.v / lay.b).clamp(-1.0, 1.0)) - lay.pitch) / math.pi
    uv1 = torch.cat([cu, cv, torch.ones_like(cu)], 1).clamp_(0.0, 1.0)
    zeros = torch.zeros(len(scene.factors), 3, scene.resolution, scene.resolution)
    return scene.composite({"ears": uv1, "face": uv1}, initial=zeros)


@render_pass("gaze", channels=3)
def gaze_pass(scene: Scene) -> torch.Tensor:
    """Eye-gaze map: open eye white (1, 1, 1), iris (1, 0, 0), lid and everything else black."""
    zeros = torch.zeros(len(scene.factors), 3, scene.resolution, scene.resolution)
    return scene.composite({"eye_white": _rgb(1.0, 1.0, 1.0), "iris": _rgb(1.0, 0.0, 0.0),
                            "eyelid": _rgb(0.0, 0.0, 0.0)}, initial=zeros)
