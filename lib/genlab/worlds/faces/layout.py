"""Where every part of a face sits (:class:`FaceLayout`, in the face frame), and the pixel boxes that hold parts
(:func:`pixel_boxes`, :func:`eye_boxes`)."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from genlab.worlds.faces.factors import FACTOR_NAMES, _check_resolution, check_factors

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
    package docstring); suffixes _l / _r = the image-left / image-right part. Computed in float64 from the factors
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


def mouth_boxes(factors, resolution: int = 64) -> torch.Tensor:
    """Pixel boxes around the mouth (lips, opening, teeth; the smile's rise at the corners included): (n, 4) int64
    (r0, c0, r1, c1), rows r0 <= r < r1, columns c0 <= c < c1. mouth_open and smile change no pixel outside them."""
    lay = FaceLayout.from_factors(check_factors(factors))
    res = _check_resolution(resolution)
    reach = 0.3 * lay.smile_amp.abs() + lay.smile_amp.abs() + lay.mouth_in + lay.lip_t   # the lip line's excursion
    return pixel_boxes(lay, lay.mouth_u - lay.mouth_w, lay.mouth_u + lay.mouth_w, lay.mouth_v - reach,
                       lay.mouth_v + reach, res, margin=1)


def eye_boxes(factors, resolution: int = 64) -> torch.Tensor:
    """Pixel boxes around the two eyes: (n, 2, 4) int64 (r0, c0, r1, c1), rows r0 <= r < r1, columns c0 <= c < c1;
    eye 0 is the image-left eye. gaze_x, gaze_y and blink change no pixel outside these boxes."""
    lay = FaceLayout.from_factors(check_factors(factors))
    res = _check_resolution(resolution)
    return torch.stack([pixel_boxes(lay, *extent, res, margin=1) for extent in lay.eye_extents()], dim=1)
