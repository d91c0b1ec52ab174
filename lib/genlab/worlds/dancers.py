"""Dancers: articulated 2-D figures that dance in a room, with exact OpenPose BODY_25 keypoints -- the world of
Everybody Dance Now (Chan et al. 2019, "Everybody Dance Now", ICCV).

Everybody Dance Now films a *target* person for a few minutes, detects their pose in every frame with OpenPose
(Cao et al. 2019; the 25-keypoint BODY_25 model), draws each detected pose as a coloured *stick figure*, and trains
an image-to-image network (pix2pixHD with temporal smoothing and a face GAN) to turn stick figures back into the
target's frames (Sec. 3). To transfer motion, the poses of a *source* dancer are detected, normalised to the target's
body size and position in the frame (Sec. 3.3, "global pose normalization": the ankles' heights and positions
between the near and far extremes of each video), drawn as stick figures and fed through the network.

Here the person is a procedural figure, so the "detector" is exact (:func:`keypoints`; :func:`track` adds a stated
amount of tracking noise and drops points), the "real" video is a shaded render (:func:`render`), and the network's
input is :func:`stick_figure`. :func:`face_boxes` gives the face crops of the face GAN (Sec. 3.2).

Dancers (:class:`Dancer`, :data:`TARGET`, :data:`SOURCES`): a height and bone-length proportions (fractions of the
height), clothing colours with a striped shirt, a fixed detail seed (the room and the hair), the depth and x ranges the
dancer moves in, and a motion seed. The sources differ from the target in size, proportions, colours and placement
(one is tall and near, one is small and far away), which is what global pose normalisation has to undo.

The world (units: the frame height at depth 1; X to the right, Y up, both in the figure's plane; depth z >= 1 away
from the camera). The figure is planar: it faces the camera and every joint turns in the image plane, so every bone
has one constant length per dancer. A point (X, Y) of a figure at depth z is seen at, in pixels,

    x = W / 2 + H X / z,       y = H (HORIZON + (CAMERA - Y) / z),      CAMERA = GROUND - HORIZON

(a pinhole camera CAMERA units above the floor, looking level: the screen scale is 1 / z, the feet (Y = 0) of a
figure at depth z stand on the perspective ground line y = H (HORIZON + (GROUND - HORIZON) / z), and farther figures
are smaller and higher in the frame). Pixel (row i, col j) covers [j, j + 1) x [i, i + 1): its centre is at
(j + 1/2, i + 1/2). The back wall stands at depth WALL_DEPTH.

Pose (:func:`motion`, a row of :data:`POSE_PARAMS`): the root (MidHip) x in world units and the depth z, then joint
angles in radians. With R(a) the counter-clockwise rotation by a (Y up) and s = -1 for the dancer's right side
(image left: the dancer faces the camera), s = +1 for the left:

    torso up  u = R(lean) (0, 1),       Neck = MidHip + torso u,        {R,L}Shoulder = Neck + s shoulder_width / 2 r
    head axis R(lean + head) (0, 1),    head centre = Neck + neck R(lean + head) (0, 1)  (face keypoints ride on it)
    upper arm R(lean + s shoulder) (0, -1),   forearm R(lean + s (shoulder - elbow)) (0, -1)    (abduct > 0 outward)
    {R,L}Hip = MidHip + s hip_width / 2 r,    thigh R(s hip) (0, -1),   shin R(s (hip - knee)) (0, -1)
    foot: a fixed template (heel, big toe, small toe) turned by R(s ankle) about the ankle       (r = R(lean) (1, 0))

so equal left and right angles give a mirror-symmetric pose. The root height is not a parameter: it is set so that
the lower ankle is ANKLE_HEIGHT (x height) above the ground -- the figure stands on its lower foot and drops when the
knees bend.

Motion (:func:`motion`): a dance on a beat of BEAT_HZ = 2 Hz at FPS = 25 frames/s. Each MOVE_FRAMES-frame "move" m
gives every joint angle a rest offset and two harmonics, at half the beat and on the beat,

    angle(t) = offset_m + a_m sin(w t / 2 + phi_m) + b_m sin(w t + psi_m),     w = 2 pi BEAT_HZ / FPS

(knees use (1 - cos) / 2 in place of sin, so they never over-extend), drawn from the motion seed and the move index
with counter-based hashes (genlab.worlds.faces.hashing._uniforms: the same numbers on every machine); phases sit on
eighths of a cycle, and the arms (mirrored, alternating or free) and legs (mirrored or alternating) of one move are
coupled. The last FADE_FRAMES of a move cross-fade into the next, angle = (1 - b) move_m + b move_{m+1} with
b = smoothstep over the fade, so the motion stays C^1. x and depth wander slowly inside the dancer's ranges (three
sinusoids each, periods 200 ... 600 frames). Frame t is a function of (dancer, t) only: a training segment
(TRAIN_START) and a held-out one (TEST_START) of the same recording never share a frame, and any segment equals the
same frames of a longer one.

Keypoints (:func:`keypoints`): (T, 25, 3) float32 rows (x, y, confidence) in BODY_25 order, in pixels as above;
confidence 1 for a point inside the frame (0 <= x <= W, 0 <= y <= H) and 0 otherwise, in which case x = y = 0 (as
OpenPose writes a missing point). The figure faces the camera, so nothing is self-occluded.

Real frames (:func:`render`): (T, 3, H, W) float32 in [0, 1]. A room fixed per dancer (a wall with a vertical light
gradient and soft panels above a skirting board; a floor of planks in perspective, darker far away), a soft shadow on
the floor, and the figure drawn back to front from antialiased signed distances (coverage clamp(1/2 - d, 0, 1), d
in pixels): back hair, trouser legs (capsules) and pelvis, shoes, the shirt (a rounded trapezoid with stripes along
the torso, faded out where they would be finer than 3 pixels a period), neck, head (an ellipse), the hair's cap, eyes
and mouth, sleeves, forearms and hands. Each part is shaded like a cylinder lit from the upper left. Vectorised over
frames and pixels, in chunks of frames (memory stays bounded) and only inside the figure's bounding box per chunk.

Stick figures (:func:`stick_figure`): each of the 24 LIMBS an antialiased capsule of its LIMB_COLORS colour, drawn in
LIMBS order, then each keypoint a disc of its KEYPOINT_COLORS colour, on black; a limb with a keypoint of confidence 0
is not drawn (nor is that keypoint's disc). Works on any keypoints: the world's, :func:`track`'s, or a file's.

Measured (torch.set_num_threads(1), a 2-core CPU shared with other jobs): render(TARGET, motion(TARGET, 600)) at
64x64 takes 0.55 s (up to ~1 s while other jobs load the machine); stick_figure of its keypoints 0.3 ... 0.5 s;
motion + keypoints of 600 frames < 10 ms; 100 frames of render at 256x256 ~1 s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from genlab.worlds.faces.hashing import _uniforms

# ---------------------------------------------------------------------------------------------- OpenPose BODY_25
#: the 25 keypoints of OpenPose's BODY_25 model, in its order (R / L: the person's right / left)
BODY_25: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip", "RKnee",
    "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
    "RSmallToe", "RHeel")
N_KEYPOINTS = len(BODY_25)
KP = {name: i for i, name in enumerate(BODY_25)}
#: the 24 limbs (keypoint pairs) OpenPose draws for BODY_25, in its drawing order: a tree rooted at the neck
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13), (13, 14),
    (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22), (22, 23), (11, 24))
#: nose, eyes, ears
FACE_KEYPOINTS: tuple[int, ...] = (0, 15, 16, 17, 18)


def _rainbow(n: int) -> torch.Tensor:
    """(n, 3) fully saturated colours of hues k / n, k = 0 .. n - 1 (HSV with S = V = 1): red, orange, yellow, green,
    cyan, blue, magenta, ... -- every one different."""
    h = torch.arange(n, dtype=torch.float64) / n * 6                         # hue in sextants
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)[None] + h[:, None]) % 6
    return (1 - (torch.minimum(k, 4 - k)).clamp(0, 1)).float()             # the standard HSV -> RGB, S = V = 1


#: (24, 3) float32 in [0, 1]: limb k's colour in stick figures, a rainbow along the limb order (as OpenPose draws)
LIMB_COLORS = _rainbow(len(LIMBS))
#: (25, 3): each keypoint the colour of the limb that ends in it (the neck, where the tree starts, the first limb's)
KEYPOINT_COLORS = LIMB_COLORS[[next((k for k, (_, b) in enumerate(LIMBS) if b == j), 0) for j in range(25)]]

# ---------------------------------------------------------------------------------------------- world constants
HORIZON = 0.35           # screen y of the horizon, a fraction of the frame height
GROUND = 0.92            # screen y of the feet of a figure at depth 1, a fraction of the frame height
CAMERA = GROUND - HORIZON  # the camera's height above the floor (world units)
WALL_DEPTH = 3.0         # depth of the back wall
ANKLE_HEIGHT = 0.05      # the ankle's height above the sole, a fraction of the dancer's height
FPS = 25.0               # frames per second
BEAT_HZ = 2.0            # the music's beat (120 beats per minute)
MOVE_FRAMES = 100        # a new move every 4 s
FADE_FRAMES = 25         # the last second of a move cross-fades into the next
TRAIN_START, TEST_START = 0, 50_000   # first frame of the training / held-out segment of a dancer's recording

#: columns of a pose row: root (MidHip) x (world units), depth, then joint angles (radians; see the module doc)
POSE_PARAMS: tuple[str, ...] = ("x", "depth", "lean", "head", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow",
                                "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle")
N_POSE = len(POSE_PARAMS)
COL = {name: j for j, name in enumerate(POSE_PARAMS)}

# the face in the head's frame (across, up), in head radii; the head is an ellipse of half axes (1, 1.2) radii
_FACE = {"Nose": (0.0, -0.2), "REye": (-0.38, 0.18), "LEye": (0.38, 0.18), "REar": (-1.0, 0.05), "LEar": (1.0, 0.05)}
_HEAD_TALL = 1.2
# the left foot about its ankle (X, Y), in dancer heights; the right foot is its mirror image
_FOOT = {"Heel": (0.0, -0.035), "BigToe": (-0.03, -0.05), "SmallToe": (0.02, -0.045)}


# ---------------------------------------------------------------------------------------------- dancers
@dataclass(frozen=True)
class Dancer:
    """One person of the world.

    height: standing height at depth 1, a fraction of the frame height. Bone lengths are fractions of the height:
    upper_arm (shoulder-elbow), forearm (elbow-wrist), thigh (hip-knee), shin (knee-ankle), torso (MidHip-Neck),
    neck (Neck-head centre), shoulder_width (RShoulder-LShoulder), hip_width (RHip-LHip), head_radius (the head's
    half width; it is 1.2 times as tall). Standing straight, ANKLE_HEIGHT + shin + thigh + torso + neck + 1.2
    head_radius = 1 for the dancers defined here. Colours (r, g, b) in [0, 1]: skin, shirt, trousers, shoes, hair;
    stripes in [0, 1]: how strongly the shirt's stripes show. detail_seed: the room and the hair style.
    depth: (near, far) depth range the dancer wanders in (1 = reference); x: (low, high) root x range (world units).
    motion_seed: the dance.
    """
    name: str
    height: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    torso: float
    neck: float
    shoulder_width: float
    hip_width: float
    head_radius: float
    skin: tuple[float, float, float]
    shirt: tuple[float, float, float]
    trousers: tuple[float, float, float]
    shoes: tuple[float, float, float]
    hair: tuple[float, float, float]
    stripes: float
    detail_seed: int
    depth: tuple[float, float]
    x: tuple[float, float]
    motion_seed: int

    def bone(self, name: str) -> float:
        """A bone length in world units (the proportion times the height)."""
        return getattr(self, name) * self.height


#: the dancer whose video trains the network: mid-size, in the middle of the frame, near the camera; red striped
#: shirt, jeans, white shoes, brown hair
TARGET = Dancer("target", height=0.72, upper_arm=0.17, forearm=0.15, thigh=0.245, shin=0.245, torso=0.29, neck=0.104,
                shoulder_width=0.23, hip_width=0.12, head_radius=0.055,
                skin=(0.87, 0.68, 0.55), shirt=(0.78, 0.14, 0.18), trousers=(0.16, 0.22, 0.38),
                shoes=(0.93, 0.93, 0.9), hair=(0.3, 0.17, 0.08), stripes=0.45, detail_seed=3,
                depth=(1.0, 1.25), x=(-0.1, 0.1), motion_seed=1)

#: the sources whose dances are transferred: "tall" (long legs and arms, small head, dark skin, plain yellow shirt,
#: black trousers, red shoes; near the camera on the left, arms raised leave the frame) and "small" (short, a large
#: head, pale, green shirt with strong stripes, khaki trousers, blue shoes, blond; far away on the right: smaller and
#: higher in the frame)
SOURCES: tuple[Dancer, ...] = (
    Dancer("tall", height=0.78, upper_arm=0.18, forearm=0.16, thigh=0.26, shin=0.26, torso=0.275, neck=0.095,
           shoulder_width=0.25, hip_width=0.13, head_radius=0.05,
           skin=(0.45, 0.3, 0.22), shirt=(0.95, 0.8, 0.2), trousers=(0.08, 0.08, 0.1), shoes=(0.75, 0.1, 0.1),
           hair=(0.05, 0.04, 0.04), stripes=0.0, detail_seed=5, depth=(1.0, 1.15), x=(-0.3, -0.05), motion_seed=2),
    Dancer("small", height=0.56, upper_arm=0.16, forearm=0.14, thigh=0.24, shin=0.24, torso=0.291, neck=0.095,
           shoulder_width=0.24, hip_width=0.14, head_radius=0.07,
           skin=(0.96, 0.82, 0.72), shirt=(0.2, 0.62, 0.3), trousers=(0.7, 0.6, 0.4), shoes=(0.2, 0.3, 0.8),
           hair=(0.86, 0.7, 0.36), stripes=0.8, detail_seed=9, depth=(1.5, 1.9), x=(0.1, 0.4), motion_seed=3),
)


def _check_dancer(dancer) -> Dancer:
    if not isinstance(dancer, Dancer):
        raise ValueError(f"dancer must be a Dancer (e.g. TARGET or SOURCES[0]), got {type(dancer).__name__}")
    return dancer


# ---------------------------------------------------------------------------------------------- argument checks
def _check_frames(frames, start) -> tuple[int, int]:
    for name, v, low in (("frames", frames, 1), ("start", start, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    return int(frames), int(start)


def _check_size(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    ok = isinstance(size, (tuple, list)) and len(size) == 2 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    if not ok or min(size) < 16:
        raise ValueError(f"size must be (H, W): two ints >= 16 pixels, e.g. (64, 64), got {size!r}")
    return int(size[0]), int(size[1])


def _got(x) -> str:
    return f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


def _check_pose(pose) -> torch.Tensor:
    if not isinstance(pose, torch.Tensor) or pose.dim() != 2 or pose.shape[1] != N_POSE \
            or not pose.is_floating_point() or len(pose) == 0:
        hint = " (one frame: add the time axis with pose[None])" if isinstance(pose, torch.Tensor) \
            and pose.dim() == 1 else ""
        raise ValueError(f"pose must be a float tensor (T, {N_POSE}) with T >= 1 (columns POSE_PARAMS; make it with "
                         f"motion()), got {_got(pose)}{hint}")
    pose = pose.detach().cpu().double()
    if not torch.isfinite(pose).all():
        raise ValueError("pose holds NaN or inf: check where it came from (motion() never makes them)")
    if (pose[:, COL["depth"]] < 0.1).any():
        raise ValueError(f"pose depth (column {COL['depth']}) must be >= 0.1 (1 = the reference depth), got "
                         f"{pose[:, COL['depth']].min().item():.3g}")
    return pose


def _check_keypoints(kp) -> torch.Tensor:
    if not isinstance(kp, torch.Tensor) or kp.dim() != 3 or kp.shape[1:] != (N_KEYPOINTS, 3) \
            or not kp.is_floating_point():
        hint = " (one frame: add the time axis with keypoints[None])" if isinstance(kp, torch.Tensor) \
            and kp.dim() == 2 else ""
        raise ValueError(f"keypoints must be a float tensor (T, 25, 3) of BODY_25 (x, y, confidence) rows, got "
                         f"{_got(kp)}{hint}")
    if not torch.isfinite(kp).all():
        raise ValueError("keypoints hold NaN or inf: write a missing point as x = y = confidence = 0 (OpenPose's way)")
    return kp.detach().cpu().float()


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------------------------- motion
_ANGLES = POSE_PARAMS[2:]
_KIND = tuple(n[2:] if n[:2] in ("r_", "l_") else n for n in _ANGLES)
# per kind: rest offset interval (low, high), largest amplitude at half the beat and on the beat (radians)
_RANGES = {"lean": (-0.08, 0.08, 0.10, 0.05), "head": (-0.12, 0.12, 0.15, 0.10),
           "shoulder": (0.15, 2.2, 0.70, 0.30), "elbow": (-0.3, 1.5, 0.50, 0.30),
           "hip": (0.05, 0.3, 0.10, 0.06), "knee": (0.0, 0.25, 0.30, 0.25), "ankle": (-0.1, 0.1, 0.08, 0.05)}
_ARM_PAIRS = ((2, 3), (4, 5))            # (right, left) angle indices of shoulders, elbows
_LEG_PAIRS = ((6, 7), (8, 9), (10, 11))  # hips, knees, ankles
_KNEES = np.array([k == "knee" for k in _KIND])
_MOVE_DOMAIN, _WANDER_DOMAIN, _ROOM_DOMAIN = 201, 202, 203


def _moves(dancer: Dancer, ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The moves ms (n,) of a dancer: offsets (n, 12), amplitudes (n, 12, 2) and phases (n, 12, 2) of the harmonics
    at half the beat and on the beat, for the angles POSE_PARAMS[2:]."""
    keys = (np.uint64(dancer.motion_seed) << np.uint64(32)) + ms.astype(np.uint64)
    u = _uniforms(keys, 5 * len(_ANGLES) + 2, domain=_MOVE_DOMAIN)
    a = u[:, :5 * len(_ANGLES)].reshape(len(ms), len(_ANGLES), 5)
    r = np.array([_RANGES[k] for k in _KIND])                                       # (12, 4)
    offset = r[:, 0] + (r[:, 1] - r[:, 0]) * a[..., 0]
    amp = r[:, 2:] * a[..., 1:3]
    phase = math.pi / 4 * np.floor(8 * a[..., 3:5])                                 # on eighths of a cycle
    arms = np.floor(3 * u[:, -2])                                                   # 0 mirror, 1 alternate, 2 free
    legs = np.floor(2 * u[:, -1])                                                   # 0 mirror, 1 alternate
    for pairs, mode in ((_ARM_PAIRS, arms), (_LEG_PAIRS, legs)):
        for ri, li in pairs:
            tied = mode < 2
            offset[tied, li] = offset[tied, ri]
            amp[tied, li] = amp[tied, ri]
            phase[tied, li] = phase[tied, ri]
            phase[mode == 1, li, 0] += math.pi                                      # half a bar later
    return offset, amp, phase


def _dance(offset: np.ndarray, amp: np.ndarray, phase: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Angles (T, 12) of one move per frame (rows of offset / amp / phase) at frames t (T,)."""
    w = 2 * math.pi * BEAT_HZ / FPS
    arg = np.stack([w / 2 * t, w * t], -1)[:, None, :] + phase                      # (T, 12, 2)
    wave = np.where(_KNEES[None, :, None], (1 - np.cos(arg)) / 2, np.sin(arg))
    return offset + (amp * wave).sum(-1)


def _wander(dancer: Dancer, which: int, t: np.ndarray) -> np.ndarray:
    """A slow signal in [-1, 1]: sum_k w_k sin(2 pi f_k t + phi_k) / sum_k w_k, periods 200 ... 600 frames."""
    u = _uniforms(np.array([dancer.motion_seed * 16 + which], dtype=np.uint64), 9, domain=_WANDER_DOMAIN)[0]
    f, ph, wt = 1 / 600 + (1 / 200 - 1 / 600) * u[0:3], 2 * math.pi * u[3:6], 0.3 + 0.7 * u[6:9]
    return (wt[:, None] * np.sin(2 * math.pi * f[:, None] * t[None] + ph[:, None])).sum(0) / wt.sum()


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def motion(dancer: Dancer, frames: int, start: int = 0) -> torch.Tensor:
    """The dancer's pose for frames start, ..., start + frames - 1: (T, N_POSE) float32, columns POSE_PARAMS.

    A function of (dancer, absolute frame index): motion(d, 10, start=5) equals motion(d, 20)[5:15]."""
    dancer = _check_dancer(dancer)
    frames, start = _check_frames(frames, start)
    t = np.arange(start, start + frames, dtype=np.float64)
    m = np.arange(start, start + frames) // MOVE_FRAMES                             # the move of each frame
    b = _smoothstep((t - m * MOVE_FRAMES - (MOVE_FRAMES - FADE_FRAMES)) / FADE_FRAMES)  # fade into move m + 1
    ms = np.arange(m[0], m[-1] + 2)
    offset, amp, phase = _moves(dancer, ms)
    i = m - m[0]
    now = _dance(offset[i], amp[i], phase[i], t)
    nxt = _dance(offset[i + 1], amp[i + 1], phase[i + 1], t)
    out = np.empty((frames, N_POSE))
    out[:, 2:] = (1 - b[:, None]) * now + b[:, None] * nxt                         # cross-fade
    (x0, x1), (z0, z1) = dancer.x, dancer.depth
    out[:, 0] = (x0 + x1) / 2 + (x1 - x0) / 2 * _wander(dancer, 0, t)
    out[:, 1] = (z0 + z1) / 2 + (z1 - z0) / 2 * _wander(dancer, 1, t)
    return torch.from_numpy(out).float()


# ---------------------------------------------------------------------------------------------- the skeleton
def _rot(a: torch.Tensor, v: tuple[float, float]) -> torch.Tensor:
    """R(a) (vx, vy): (T,) angles -> (T, 2), counter-clockwise with Y up."""
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([c * v[0] - s * v[1], s * v[0] + c * v[1]], -1)


def _skeleton(dancer: Dancer, pose: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward kinematics in world units (float64): "joints" (T, 25, 2) (X, Y) in BODY_25 order, "head" (T, 2) the
    head centre, "head_angle" and "lean" (T,), "depth" (T,)."""
    p = pose
    h = dancer.height
    lean, head = p[:, COL["lean"]], p[:, COL["head"]]
    up, right = _rot(lean, (0.0, 1.0)), _rot(lean, (1.0, 0.0))
    j = torch.zeros(len(p), N_KEYPOINTS, 2, dtype=torch.float64)
    j[:, KP["MidHip"], 0] = p[:, COL["x"]]                                          # root height set below
    j[:, KP["Neck"]] = j[:, KP["MidHip"]] + dancer.bone("torso") * up              # Neck = MidHip + torso u
    for side, s in (("R", -1.0), ("L", 1.0)):
        lo = side.lower() + "_"
        j[:, KP[side + "Shoulder"]] = j[:, KP["Neck"]] + s * dancer.bone("shoulder_width") / 2 * right
        a_up = lean + s * p[:, COL[lo + "shoulder"]]                                # upper arm angle
        a_fore = lean + s * (p[:, COL[lo + "shoulder"]] - p[:, COL[lo + "elbow"]])  # forearm angle
        j[:, KP[side + "Elbow"]] = j[:, KP[side + "Shoulder"]] + dancer.bone("upper_arm") * _rot(a_up, (0.0, -1.0))
        j[:, KP[side + "Wrist"]] = j[:, KP[side + "Elbow"]] + dancer.bone("forearm") * _rot(a_fore, (0.0, -1.0))
        j[:, KP[side + "Hip"]] = j[:, KP["MidHip"]] + s * dancer.bone("hip_width") / 2 * right
        a_thigh = s * p[:, COL[lo + "hip"]]
        a_shin = s * (p[:, COL[lo + "hip"]] - p[:, COL[lo + "knee"]])
        j[:, KP[side + "Knee"]] = j[:, KP[side + "Hip"]] + dancer.bone("thigh") * _rot(a_thigh, (0.0, -1.0))
        j[:, KP[side + "Ankle"]] = j[:, KP[side + "Knee"]] + dancer.bone("shin") * _rot(a_shin, (0.0, -1.0))
        foot = s * p[:, COL[lo + "ankle"]]
        for part, (fx, fy) in _FOOT.items():                                       # mirrored for the right foot
            j[:, KP[side + part]] = j[:, KP[side + "Ankle"]] + h * _rot(foot, (s * fx, fy))
    # stand on the lower foot: min(Y_RAnkle, Y_LAnkle) = ANKLE_HEIGHT h
    lift = ANKLE_HEIGHT * h - torch.minimum(j[:, KP["RAnkle"], 1], j[:, KP["LAnkle"], 1])
    j[..., 1] += lift[:, None]
    head_angle = lean + head
    centre = j[:, KP["Neck"]] + dancer.bone("neck") * _rot(head_angle, (0.0, 1.0))
    r = dancer.bone("head_radius")
    for part, (fa, fb) in _FACE.items():
        j[:, KP[part]] = centre + r * _rot(head_angle, (fa, fb))
    return {"joints": j, "head": centre, "head_angle": head_angle, "lean": lean, "depth": p[:, COL["depth"]]}


def _project(xy: torch.Tensor, depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """World points (T, n, 2) at depths (T,) -> pixels (T, n, 2):
    x = W / 2 + H X / z,  y = H (HORIZON + (CAMERA - Y) / z)."""
    hgt, wid = size
    z = depth[:, None]
    return torch.stack([wid / 2 + hgt * xy[..., 0] / z, hgt * (HORIZON + (CAMERA - xy[..., 1]) / z)], -1)


def keypoints(dancer: Dancer, pose: torch.Tensor, size=(64, 64)) -> torch.Tensor:
    """The exact BODY_25 keypoints of the dancer in these poses: pose (T, N_POSE) -> (T, 25, 3) float32 (x, y,
    confidence) in pixels (x right, y down, pixel j's centre at j + 1/2); confidence 1 inside the frame, else 0 with
    x = y = 0 (OpenPose's missing point). The pose may be another dancer's: the angles and placement are applied to
    this dancer's bones (what motion transfer before normalisation does)."""
    dancer = _check_dancer(dancer)
    hgt, wid = _check_size(size)
    sk = _skeleton(dancer, _check_pose(pose))
    xy = _project(sk["joints"], sk["depth"], (hgt, wid))
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= wid) & (xy[..., 1] >= 0) & (xy[..., 1] <= hgt)
    out = torch.cat([xy * inside[..., None], inside[..., None].double()], -1)
    return out.float()


# ---------------------------------------------------------------------------------------------- drawing helpers
_LIGHT = (-0.6, -0.8)        # light direction on screen (from the upper left; y down)
_CHUNK_PIXELS = 1 << 17      # frames per chunk: 4 x this / (H W) (painting inside a box of ~1/4 of the frame)
_EYES = torch.tensor([0.08, 0.06, 0.06])
_LIPS = torch.tensor([0.6, 0.22, 0.22])


def _cover(d: torch.Tensor) -> torch.Tensor:
    """Antialiased coverage from a signed distance in pixels (< 0 inside): clamp(1/2 - d, 0, 1)."""
    return (0.5 - d).clamp_(0.0, 1.0)


def _b(v: torch.Tensor) -> torch.Tensor:
    """(Tc,) -> (Tc, 1, 1), to broadcast against (Tc, h, w) pixel maps."""
    return v[:, None, None]


def _capsule(gx, gy, a: torch.Tensor, b: torch.Tensor, r: torch.Tensor, shaded: bool = True):
    """Capsule a -> b of radius r ((Tc, 2), (Tc, 2), (Tc,) in pixels) at pixel centres gx (1, 1, w), gy (1, h, 1):
    its signed distance (Tc, h, w) and cylinder shading 1 + 0.15 (n . light) - 0.2 |n|^2, n = (p - axis) / r
    (None unless shaded)."""
    ax, ay, bx, by, r = _b(a[:, 0]), _b(a[:, 1]), _b(b[:, 0]), _b(b[:, 1]), _b(r)
    pax, pay, bax, bay = gx - ax, gy - ay, bx - ax, by - ay
    t = ((pax * bax + pay * bay) / (bax * bax + bay * bay).clamp_min(1e-9)).clamp_(0.0, 1.0)   # nearest axis point
    dx, dy = pax - bax * t, pay - bay * t
    dist = torch.sqrt(dx * dx + dy * dy)
    if not shaded:
        return dist - r, None
    nx, ny = dx / r, dy / r
    shade = 1 + 0.15 * (nx * _LIGHT[0] + ny * _LIGHT[1]) - 0.2 * (nx * nx + ny * ny).clamp_(max=1.0)
    return dist - r, shade


def _ellipse(q: torch.Tensor, s: torch.Tensor, ra: torch.Tensor, rb: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to the ellipse (q / ra)^2 + (s / rb)^2 = 1: k0 (k0 - 1) / k1 with
    k0 = |(q / ra, s / rb)|, k1 = |(q / ra^2, s / rb^2)| (exact on the axes, good near the boundary)."""
    x, y = q / ra, s / rb
    k0 = torch.sqrt(x * x + y * y)
    k1 = torch.sqrt((x / ra) ** 2 + (y / rb) ** 2).clamp_min(1e-9)
    return k0 * (k0 - 1) / k1


def _over(img: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Paint colour (3,) or (Tc, 3, h, w) over img (Tc, 3, h, w) with coverage alpha (Tc, h, w)."""
    return torch.lerp(img, colour if colour.dim() == 4 else colour[:, None, None], alpha[:, None])


def _tri(t: torch.Tensor) -> torch.Tensor:
    """A triangle wave in [0, 1], period 1, 0 at integers."""
    return 1 - (t - torch.floor(t) - 0.5).abs() * 2


# ---------------------------------------------------------------------------------------------- the room
def _look(dancer: Dancer) -> dict:
    """The dancer's room and hair, from its detail seed: wall, skirting and floor colours, panel and plank widths
    (world units), hair length and fringe in [0, 1]."""
    u = _uniforms(np.array([dancer.detail_seed], dtype=np.uint64), 12, domain=_ROOM_DOMAIN)[0]
    hue = u[0]
    wall = np.array([0.5 + 0.5 * math.cos(2 * math.pi * (hue - k / 3)) for k in range(3)])
    wall = 0.72 + 0.2 * (wall - 0.5) * (0.3 + 0.7 * u[1])                         # pale, mildly tinted
    wood = np.array([0.55, 0.38, 0.22]) * (0.7 + 0.5 * u[2]) + 0.1 * (u[3] - 0.5)
    return {"wall": wall, "skirting": 0.9 * np.ones(3) - 0.5 * u[4] * (1 - wall),
            "floor": np.clip(wood, 0.05, 0.95), "panel": 0.3 + 0.3 * u[5], "plank": 0.15 + 0.1 * u[6],
            "plank_salt": int(u[7] * 2 ** 20), "hair_length": u[8], "fringe": u[9]}


def _background(dancer: Dancer, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) float32: the dancer's room seen by the camera (float64 maths in numpy, the same on every machine)."""
    hgt, wid = size
    look = _look(dancer)
    gy = (np.arange(hgt) + 0.5)[:, None] * np.ones((1, wid))                      # pixel centres
    gx = (np.arange(wid) + 0.5)[None, :] * np.ones((hgt, 1))
    v = gy / hgt
    base = HORIZON + CAMERA / WALL_DEPTH                                            # where wall meets floor (screen)
    # the wall: X, Y on the plane z = WALL_DEPTH
    wx = (gx - wid / 2) / hgt * WALL_DEPTH
    wy = CAMERA - (v - HORIZON) * WALL_DEPTH
    px_per = hgt / WALL_DEPTH                                                       # pixels per world unit there
    band = np.clip(look["panel"] * px_per / 3 - 1, 0, 1)                          # fade patterns finer than 3 px
    panels = 1 + 0.05 * band * (2 * np.abs(wx / look["panel"] - np.floor(wx / look["panel"]) - 0.5) - 0.5)
    light = 1.08 - 0.25 * np.clip(v / base, 0, 1)                                  # a lamp above: darker below
    wall = look["wall"][:, None, None] * (panels * light)[None]
    skirt = np.clip((0.06 - wy) * px_per + 0.5, 0, 1)                              # skirting board, 0.06 high
    wall = wall + skirt[None] * (look["skirting"][:, None, None] * light[None] - wall)
    # the floor: the ground point seen at (x, y) has depth zf = CAMERA / (v - HORIZON) and X = (x - W/2) / H zf
    zf = CAMERA / np.maximum(v - HORIZON, 1e-6)
    fx = (gx - wid / 2) / hgt * zf
    fp = hgt / zf                                                                   # pixels per world unit there
    plank = np.floor(fx / look["plank"]).astype(np.int64)
    keys = (plank + (1 << 30) + look["plank_salt"]).astype(np.uint64).ravel()
    tone = _uniforms(keys, 1, domain=_ROOM_DOMAIN + 1)[:, 0].reshape(plank.shape) - 0.5
    fade = np.clip(look["plank"] * fp / 3 - 1, 0, 1)
    seam = np.abs(fx / look["plank"] - np.round(fx / look["plank"])) * look["plank"] * fp   # pixels to a seam
    seam = np.clip(0.6 - seam, 0, 1)
    dim = 0.75 + 0.25 / np.maximum(zf, 1)                                            # darker far away
    floor = look["floor"][:, None, None] * (dim * (1 + fade * (0.25 * tone - 0.35 * seam)))[None]
    on_wall = np.clip((base - v) * hgt + 0.5, 0, 1)                                 # antialiased wall / floor edge
    rgb = floor + on_wall[None] * (wall - floor)
    return torch.from_numpy(np.clip(rgb, 0, 1)).float()


# ---------------------------------------------------------------------------------------------- the real frames
def _screen_geometry(dancer: Dancer, pose: torch.Tensor, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Everything the painter needs per frame, in pixels (float32): "kp" (T, 25, 2) (true positions, also outside the
    frame), "head" (T, 2), head axes "hu", "hr" and torso axes "tu", "tr" (T, 2) (screen up and the dancer's left,
    y down), "unit" (T,) pixels per dancer height, "shadow" (T, 4) centre x, y and radii."""
    hgt, wid = size
    sk = _skeleton(dancer, pose)
    z = sk["depth"]
    kp = _project(sk["joints"], z, size)
    head = _project(sk["head"][:, None], z, size)[:, 0]

    def screen(a, v):                                                               # a world direction -> screen
        d = _rot(a, v)
        return torch.stack([d[:, 0], -d[:, 1]], -1)

    ankles = sk["joints"][:, [KP["RAnkle"], KP["LAnkle"]]]
    cx = ankles[..., 0].mean(1)
    rx = (0.5 * (ankles[:, 1, 0] - ankles[:, 0, 0]).abs() + 0.18 * dancer.height) * hgt / z
    shadow = torch.stack([wid / 2 + hgt * cx / z, hgt * (HORIZON + CAMERA / z), rx, 0.5 * rx * CAMERA / z], -1)
    g = {"kp": kp, "head": head, "hu": screen(sk["head_angle"], (0.0, 1.0)), "hr": screen(sk["head_angle"], (1.0, 0.0)),
         "tu": screen(sk["lean"], (0.0, 1.0)), "tr": screen(sk["lean"], (1.0, 0.0)), "unit": dancer.height * hgt / z,
         "shadow": shadow}
    return {k: v.float() for k, v in g.items()}


def _box(g: dict[str, torch.Tensor], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Rows r0:r1 and columns c0:c1 holding the figure and its shadow in all frames of g, or None if off-screen."""
    hgt, wid = size
    pad = 0.25 * g["unit"].max().item() + 2                                        # head, hair, limb radii
    xs = torch.cat([g["kp"][..., 0].flatten(), (g["shadow"][:, 0] - g["shadow"][:, 2]),
                    (g["shadow"][:, 0] + g["shadow"][:, 2])])
    ys = torch.cat([g["kp"][..., 1].flatten(), g["shadow"][:, 1] + g["shadow"][:, 3]])
    r0, r1 = max(0, math.floor(ys.min().item() - pad)), min(hgt, math.ceil(ys.max().item() + pad))
    c0, c1 = max(0, math.floor(xs.min().item() - pad)), min(wid, math.ceil(xs.max().item() + pad))
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def _along(gx, gy, origin: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """(p - origin) . axis (Tc, h, w) at the pixel centres: a coordinate in a moving frame (origin, axis (Tc, 2))."""
    return (gx - _b(origin[:, 0])) * _b(axis[:, 0]) + (gy - _b(origin[:, 1])) * _b(axis[:, 1])


def _part(img: torch.Tensor, d: torch.Tensor, shade: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Paint a shape of signed distance d (Tc, h, w) in colour (3,) times shade (Tc, h, w) over img."""
    return _over(img, _cover(d), colour[:, None, None] * shade[:, None])


def _paint(dancer: Dancer, g: dict[str, torch.Tensor], img: torch.Tensor, gx: torch.Tensor,
           gy: torch.Tensor) -> torch.Tensor:
    """Paint the shadow and the figure of the frames in g over img (Tc, 3, h, w) (the background there), back to
    front, at pixel centres gx (1, 1, w), gy (1, h, 1). Sizes are in dancer heights times u (pixels per height)."""
    kp, u = g["kp"], g["unit"]
    look = _look(dancer)
    col = {k: torch.tensor(getattr(dancer, k), dtype=torch.float32)
           for k in ("skin", "shirt", "trousers", "shoes", "hair")}

    def at(name):
        return kp[:, KP[name]]

    def lit(axis):                                          # light . axis per frame, (Tc, 1, 1)
        return _b(axis[:, 0] * _LIGHT[0] + axis[:, 1] * _LIGHT[1])

    # the shadow on the floor: img (1 - 0.45 (1 - smoothstep(0.2, 1, rho))), rho the elliptic radius
    sh = g["shadow"]
    rho = torch.sqrt(((gx - _b(sh[:, 0])) / _b(sh[:, 2])) ** 2 + ((gy - _b(sh[:, 1])) / _b(sh[:, 3])) ** 2)
    f = ((rho - 0.2) / 0.8).clamp(0, 1)
    img = img * (1 - 0.45 * (1 - f * f * (3 - 2 * f)))[:, None]
    # back hair: an ellipse from 1.3 radii above the head's centre down to (1.3 + length) radii below it
    hu, hr, c = g["hu"], g["hr"], g["head"]
    rad = dancer.head_radius * u
    rb = _b(rad)
    hl = float(look["hair_length"])
    hq, hs = _along(gx, gy, c, hr) / rb, _along(gx, gy, c, hu) / rb                 # head frame, in head radii
    d = _ellipse(hq, hs + 0.5 * hl, 1.15, 1.3 + 0.5 * hl) * rb
    img = _part(img, d, 1 - 0.15 * (hq / 1.15).clamp(-1, 1) ** 2, col["hair"])
    # trouser legs, pelvis, shoes
    for side in ("R", "L"):
        img = _part(img, *_capsule(gx, gy, at(side + "Hip"), at(side + "Knee"), 0.052 * u), col["trousers"])
        img = _part(img, *_capsule(gx, gy, at(side + "Knee"), at(side + "Ankle"), 0.04 * u), col["trousers"])
    img = _part(img, *_capsule(gx, gy, at("RHip"), at("LHip"), 0.06 * u), col["trousers"])
    for side in ("R", "L"):
        heel = (at(side + "Ankle") + at(side + "Heel")) / 2
        toes = (at(side + "BigToe") + at(side + "SmallToe")) / 2
        img = _part(img, *_capsule(gx, gy, heel, toes, 0.03 * u), col["shoes"])
    # the shirt: a rounded trapezoid along the torso (from just above the hips to the shoulders), stripes across it
    tu, tr, mid = g["tu"], g["tr"], at("MidHip")
    ts, tq = _along(gx, gy, mid, tu), _along(gx, gy, mid, tr)                        # along, across (pixels)
    sb, st = _b(0.03 * u), _b(torch.linalg.vector_norm(at("Neck") - mid, dim=1) + 0.015 * u)
    wb, wt = _b((dancer.hip_width / 2 + 0.045) * u), _b((dancer.shoulder_width / 2 + 0.02) * u)
    rc = _b(0.04 * u)                                                                # corner radius
    half = wb + (wt - wb) * ((ts - sb) / (st - sb)).clamp(0, 1) - rc                 # half width at ts
    dq = (tq.abs() - half) / torch.sqrt(1 + ((wt - wb) / (st - sb)) ** 2)           # to the slanted sides
    ds = (ts - (sb + st) / 2).abs() - ((st - sb) / 2 - rc)                           # to the ends
    d = torch.sqrt(dq.clamp(min=0) ** 2 + ds.clamp(min=0) ** 2) + torch.maximum(dq, ds).clamp(max=0) - rc
    period = _b(0.125 * u)                                                           # stripes 1/8 height apart
    band = (period / 3 - 1).clamp(0, 1)                                              # fade below 3 px a period
    tri = _tri(ts / period)
    stripe = tri * tri * (3 - 2 * tri) * band * dancer.stripes                       # smoothstep of a triangle wave
    pale = 1 - 0.35 * (1 - col["shirt"])
    cloth = torch.lerp(col["shirt"][:, None, None], pale[:, None, None], stripe[:, None])
    n = (tq / wt).clamp(-1, 1)
    img = _over(img, _cover(d), cloth * (1 + 0.15 * n * lit(tr) - 0.2 * n * n)[:, None])
    # neck; head (skin, shaded as a sphere); the hair's cap above a hairline; eyes; mouth
    neck_top = at("Neck") + 0.7 * dancer.neck * u[:, None] * hu
    img = _part(img, *_capsule(gx, gy, at("Neck"), neck_top, 0.032 * u), col["skin"])
    d = _ellipse(hq, hs, 1.0, _HEAD_TALL) * rb
    nq, ns = hq, hs / _HEAD_TALL
    img = _part(img, d, 1.05 + 0.1 * (nq * lit(hr) + ns * lit(hu)).clamp(-1, 1)
                - 0.2 * (nq * nq + ns * ns).clamp(max=1), col["skin"])
    hairline = 0.55 - 0.35 * float(look["fringe"]) + 0.15 * hq * hq                  # head radii above the centre
    d = torch.maximum(_ellipse(hq, hs, 1.05, 1.25), hairline - hs) * rb
    img = _part(img, d, 1 - 0.15 * hq.clamp(-1, 1) ** 2, col["hair"])
    for eye in ("REye", "LEye"):
        e = at(eye)
        d = torch.sqrt((gx - _b(e[:, 0])) ** 2 + (gy - _b(e[:, 1])) ** 2) - 0.13 * rb
        img = _over(img, _cover(d), _EYES)
    corners = [c + rad[:, None] * (side * 0.28 * hr - 0.55 * hu) for side in (-1, 1)]
    img = _over(img, _cover(_capsule(gx, gy, *corners, 0.08 * rad)[0]), _LIPS)
    # arms, in front of the shirt: sleeves, forearms, hands
    for side in ("R", "L"):
        img = _part(img, *_capsule(gx, gy, at(side + "Shoulder"), at(side + "Elbow"), 0.037 * u), col["shirt"])
        img = _part(img, *_capsule(gx, gy, at(side + "Elbow"), at(side + "Wrist"), 0.028 * u), col["skin"])
        fore = at(side + "Wrist") - at(side + "Elbow")
        hand = at(side + "Wrist") + 0.025 * u[:, None] * fore / torch.linalg.vector_norm(fore, dim=1, keepdim=True)
        img = _part(img, *_capsule(gx, gy, hand, hand, 0.033 * u), col["skin"])
    return img


def render(dancer: Dancer, pose: torch.Tensor, size=(64, 64)) -> torch.Tensor:
    """The dancer's "real" video in these poses: pose (T, N_POSE) -> frames (T, 3, H, W) float32 in [0, 1].

    The same inputs give bitwise the same frames. The pose may be another dancer's (see :func:`keypoints`)."""
    dancer = _check_dancer(dancer)
    size = _check_size(size)
    pose = _check_pose(pose)
    hgt, wid = size
    bg = _background(dancer, size)
    out = bg.expand(len(pose), -1, -1, -1).clone()
    geom = _screen_geometry(dancer, pose, size)
    gx_all = torch.arange(wid, dtype=torch.float32) + 0.5
    gy_all = torch.arange(hgt, dtype=torch.float32) + 0.5
    t0 = 0
    step = max(1, _CHUNK_PIXELS // (hgt * wid) * 4)                                # the box is ~1/4 of the frame
    while t0 < len(pose):
        t1 = min(len(pose), t0 + step)
        g = {k: v[t0:t1] for k, v in geom.items()}
        box = _box(g, size)
        if box is not None:
            r0, r1, c0, c1 = box
            gx, gy = gx_all[c0:c1].view(1, 1, -1), gy_all[r0:r1].view(1, -1, 1)
            out[t0:t1, :, r0:r1, c0:c1] = _paint(dancer, g, out[t0:t1, :, r0:r1, c0:c1], gx, gy).clamp_(0, 1)
        t0 = t1
    return out


# ---------------------------------------------------------------------------------------------- stick figures
def stick_figure(keypoints: torch.Tensor, size=(64, 64), thickness: float | None = None) -> torch.Tensor:
    """OpenPose-style renderings of keypoints (T, 25, 3) (pixels, confidence) -> (T, 3, H, W) float32 in [0, 1].

    Each limb of LIMBS whose two keypoints have confidence > 0 is a capsule ``thickness`` pixels wide (default H / 24)
    of its LIMB_COLORS colour, painted in LIMBS order; then each keypoint with confidence > 0 a disc of diameter
    1.5 thickness of its KEYPOINT_COLORS colour; the background is black."""
    kp = _check_keypoints(keypoints)
    hgt, wid = _check_size(size)
    if thickness is None:
        thickness = hgt / 24
    if not _is_number(thickness) or thickness <= 0:
        raise ValueError(f"thickness must be a number of pixels > 0 (line width; default H / 24), got {thickness!r}")
    seen = kp[..., 2] > 0
    out = torch.zeros(len(kp), 3, hgt, wid)
    gx_all = torch.arange(wid, dtype=torch.float32) + 0.5
    gy_all = torch.arange(hgt, dtype=torch.float32) + 0.5
    step = max(1, _CHUNK_PIXELS // (hgt * wid) * 4)                                # the box is ~1/4 of the frame
    pad = 0.75 * thickness + 1
    for t0 in range(0, len(kp), step):
        p, v = kp[t0:t0 + step, :, :2], seen[t0:t0 + step]
        if not v.any():
            continue
        xs, ys = p[..., 0][v], p[..., 1][v]                                         # paint inside their box only
        r0, r1 = max(0, math.floor(ys.min() - pad)), min(hgt, math.ceil(ys.max() + pad))
        c0, c1 = max(0, math.floor(xs.min() - pad)), min(wid, math.ceil(xs.max() + pad))
        if r0 >= r1 or c0 >= c1:
            continue
        gx, gy = gx_all[c0:c1].view(1, 1, -1), gy_all[r0:r1].view(1, -1, 1)
        img = out[t0:t0 + step, :, r0:r1, c0:c1]
        r = torch.full((len(p),), thickness / 2)
        for k, (a, b) in enumerate(LIMBS):
            on = v[:, a] & v[:, b]
            if on.any():
                d, _ = _capsule(gx, gy, p[:, a], p[:, b], r, shaded=False)
                img = _over(img, _cover(d) * _b(on.float()), LIMB_COLORS[k])
        for j in range(N_KEYPOINTS):
            if v[:, j].any():
                d, _ = _capsule(gx, gy, p[:, j], p[:, j], 1.5 * r, shaded=False)
                img = _over(img, _cover(d) * _b(v[:, j].float()), KEYPOINT_COLORS[j])
        out[t0:t0 + step, :, r0:r1, c0:c1] = img
    return out


# ---------------------------------------------------------------------------------------------- the tracker
def track(keypoints: torch.Tensor, jitter: float = 0.0, drop: float = 0.0, seed: int = 0) -> torch.Tensor:
    """A noisy pose detector: (T, 25, 3) -> (T, 25, 3). Every visible keypoint (confidence > 0) gets Gaussian jitter
    of standard deviation ``jitter`` pixels on x and y, and is dropped (x = y = confidence = 0, as OpenPose writes a
    missing point) with probability ``drop``, independently per frame and keypoint. Seeded (torch.Generator); with
    jitter = drop = 0 the result equals the input."""
    kp = _check_keypoints(keypoints)
    if not _is_number(jitter) or jitter < 0:
        raise ValueError(f"jitter must be a number >= 0 (a standard deviation in pixels), got {jitter!r}")
    if not _is_number(drop) or not 0 <= drop <= 1:
        raise ValueError(f"drop must be a probability in [0, 1] (the chance a keypoint goes missing), got {drop!r}")
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(*kp.shape[:2], 2, generator=g)
    lost = torch.rand(*kp.shape[:2], generator=g) < drop
    seen = kp[..., 2] > 0
    out = kp.clone()
    out[..., :2] += float(jitter) * noise * seen[..., None]
    out[seen & lost] = 0.0
    return out


# ---------------------------------------------------------------------------------------------- face crops
def face_boxes(keypoints: torch.Tensor, size=(64, 64), crop: int | None = None) -> torch.Tensor:
    """Square face crops of the face GAN (Chan et al. Sec. 3.2): keypoints (T, 25, 3) -> (T, 4) int64 rows
    (r0, c0, r1, c1), the rows r0:r1 and columns c0:c1 of a ``crop``-pixel square (default min(H, W) // 4) centred
    on the mean of the visible face keypoints (nose, eyes, ears), shifted (not shrunk) to stay inside the frame.
    A frame without a visible face keypoint keeps the last frame's centre (before the first one: the first
    centre found; if none at all: the frame's centre)."""
    kp = _check_keypoints(keypoints)
    hgt, wid = _check_size(size)
    if crop is None:
        crop = min(hgt, wid) // 4
    if isinstance(crop, bool) or not isinstance(crop, (int, np.integer)) or not 1 <= crop <= min(hgt, wid):
        raise ValueError(f"crop must be an int in [1, min(H, W)] = [1, {min(hgt, wid)}] pixels, got {crop!r}")
    face = kp[:, list(FACE_KEYPOINTS)]
    seen = (face[..., 2] > 0).float()
    count = seen.sum(1)
    centre = (face[..., :2] * seen[..., None]).sum(1) / count.clamp(min=1)[:, None]
    has = count > 0
    idx = torch.arange(len(kp))
    last = torch.where(has, idx, torch.full_like(idx, -1)).cummax(0).values         # last frame with a face
    if has.any():
        last = torch.where(last < 0, idx[has][0], last)
        centre = centre[last]
    else:
        centre = torch.tensor([wid / 2, hgt / 2]).expand(len(kp), 2)
    r0 = torch.round(centre[:, 1] - crop / 2).long().clamp(0, hgt - crop)
    c0 = torch.round(centre[:, 0] - crop / 2).long().clamp(0, wid - crop)
    return torch.stack([r0, c0, r0 + crop, c0 + crop], 1)


# ---------------------------------------------------------------------------------------------- recordings
@dataclass
class DanceClip:
    """A segment of a dancer's recording: pose (T, N_POSE), keypoints (T, 25, 3) (exact, pixels), frames
    (T, 3, H, W) in [0, 1] (the real video)."""
    pose: torch.Tensor
    keypoints: torch.Tensor
    frames: torch.Tensor


def recording(dancer: Dancer = TARGET, frames: int = 100, start: int = TRAIN_START, size=(64, 64)) -> DanceClip:
    """Frames start ... start + frames - 1 of the dancer's recording with their exact keypoints."""
    pose = motion(dancer, frames, start)
    return DanceClip(pose, keypoints(dancer, pose, size), render(dancer, pose, size))


__all__ = ["BODY_25", "N_KEYPOINTS", "KP", "LIMBS", "LIMB_COLORS", "KEYPOINT_COLORS", "FACE_KEYPOINTS", "POSE_PARAMS",
           "N_POSE", "COL", "HORIZON", "GROUND", "CAMERA", "WALL_DEPTH", "ANKLE_HEIGHT", "FPS", "BEAT_HZ",
           "MOVE_FRAMES", "FADE_FRAMES", "TRAIN_START", "TEST_START", "Dancer", "TARGET", "SOURCES", "motion",
           "keypoints", "render", "stick_figure", "track", "face_boxes", "DanceClip", "recording"]
