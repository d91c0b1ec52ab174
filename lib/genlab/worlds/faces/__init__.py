"""Procedural faces: a parametric 2-D face world with exact ground truth, our offline stand-in for CelebA-HQ / FFHQ.

What it is for: GAN, StyleGAN and VQ-VAE notebooks train on :func:`faces` (a fixed train/test split) and can check a
model against the truth the world knows: every image comes from a row of named factors (pose, shape, colours,
expression, light) and a per-image *detail seed* (freckles, skin mottling, hair strands, the background pattern's
phase). The detail seed never changes a factor, so it is exactly the "noise" a StyleGAN notebook measures. Later,
the same renderer is the parametric face model of Deep Video Portraits (Kim et al. 2018): a sequence of factor rows
renders a video (:func:`render_sequence`), and the conditioning passes "shaded", "correspondence" and "gaze"
(:mod:`genlab.worlds.faces.conditioning`, :data:`CONDITIONING_PASSES`) render what a face tracker's model shows, beside
"rgb" and "mask" (:mod:`genlab.worlds.portraits` makes videos of them).

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
:func:`eye_boxes` only (mouth_open and smile inside :func:`mouth_boxes`). The lid moves by blink^2, so most uniformly
sampled faces look awake.

Render passes (:data:`RENDER_PASSES`): a pass is a function of a :class:`Scene` (one chunk of faces: the face-frame
coordinates and the coverage of every part, :data:`LAYERS`) that returns (n, C, R, R). "rgb" composites colours,
"mask" composites 1 on the head (face and its parts, ears, neck, hair) and 0 on background and shirt. To add a pass,
register it::

    @render_pass("uv", channels=3)
    def uv(scene: Scene) -> torch.Tensor:
        '''(u, v, 1) of the face frame on the face, 0 elsewhere: a flat colouring that moves with the face.'''
        uv1 = torch.cat([scene.u, scene.v, torch.ones_like(scene.u)], 1)
        return scene.composite({"face": uv1, "front_hair": 0.0}, initial=torch.zeros_like(uv1))

and ask for it with ``render_passes(factors, passes=("rgb", "uv"))``. ``composite`` takes a value per
layer name (a float, per-face (n, C, 1, 1) or a map (n, C, R, R)); layers left out are transparent. The conditioning passes
are written this way.

Dataset: :func:`faces` is a fixed split, N_TRAIN = 20,000 train and N_TEST = 5,000 test faces, with factors drawn by
an integer hash of (split stream, index) and detail seed = index (train) or 1,000,000 + index (test): the factors
are bit-identical on every machine, and so are the images, up to the last bit of the platform's float maths (then
rounded to uint8).

Modules: ``factors`` (the factor table and matrices), ``hashing`` (counter-based random numbers), ``layout``
(:class:`FaceLayout`, pixel boxes), ``details`` (:class:`Details`), ``scene`` (:class:`FaceParams`, :class:`Scene`,
signed distances), ``render`` (render passes and the renderer), ``conditioning`` (Deep Video Portraits' passes),
``dataset`` (the fixed split). Import the public
names from the package (``from genlab.worlds.faces import faces, Scene``); no submodule is named ``faces``, so
``genlab.worlds.faces.faces`` is always the function and ``genlab.worlds.faces`` always this package.
"""
from genlab.worlds.faces.conditioning import CONDITIONING_CHANNELS, CONDITIONING_PASSES
from genlab.worlds.faces.dataset import N_TEST, N_TRAIN, SPLIT_STREAMS, TEST_DETAIL_OFFSET, faces, split_factors
from genlab.worlds.faces.details import Details
from genlab.worlds.faces.factors import (FACTOR_NAMES, FACTORS, MIN_RESOLUTION, N_FACTORS, NEUTRAL, Factor,
                                         check_factors, denormalize_factors, neutral_factors, normalize_factors,
                                         sample_factors)
from genlab.worlds.faces.layout import FaceLayout, eye_boxes, mouth_boxes, pixel_boxes
from genlab.worlds.faces.render import (RENDER_PASSES, RenderPass, render_faces, render_pass, render_passes,
                                        render_sequence)
from genlab.worlds.faces.scene import LAYERS, FaceParams, Layer, Scene, build_scene

__all__ = ["faces", "split_factors", "render_faces", "render_passes", "render_sequence", "render_pass", "eye_boxes",
           "mouth_boxes",
           "pixel_boxes", "sample_factors", "neutral_factors", "normalize_factors", "denormalize_factors",
           "check_factors", "build_scene", "Factor", "FACTORS", "FACTOR_NAMES", "N_FACTORS", "NEUTRAL",
           "MIN_RESOLUTION", "N_TRAIN", "N_TEST", "SPLIT_STREAMS", "TEST_DETAIL_OFFSET", "FaceLayout", "Details",
           "FaceParams", "Scene", "Layer", "LAYERS", "RenderPass", "RENDER_PASSES",
           "CONDITIONING_PASSES", "CONDITIONING_CHANNELS"]
