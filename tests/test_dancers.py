"""The dancers world (Everybody Dance Now): BODY_25 order and limbs, the dancers, the dance (segments, determinism,
periodicity, smoothness), forward kinematics (constant bones, perspective, feet on the ground, left/right), the stick
figures, the noisy tracker, face crops, the real frames, and the error messages."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from genlab.worlds.dancers import (ANKLE_HEIGHT, BEAT_HZ, BODY_25, CAMERA, COL, FACE_KEYPOINTS, FADE_FRAMES, FPS,
                                   GROUND, HORIZON, KEYPOINT_COLORS, KP, LIMB_COLORS, LIMBS, MOVE_FRAMES, N_POSE,
                                   SOURCES, TARGET, TEST_START, TRAIN_START, DanceClip, Dancer, face_boxes, keypoints,
                                   motion, recording, render, stick_figure, track)

pytestmark = pytest.mark.usefixtures("one_thread")

DANCERS = (TARGET,) + SOURCES
SIZE = (64, 64)


def _line(depth, size=SIZE, height=0.0):
    """Screen y (pixels) of a point `height` world units above the floor at this depth."""
    return size[0] * (HORIZON + (CAMERA - height) / depth)


def _pose(**angles) -> torch.Tensor:
    """One pose row (1, N_POSE): centred at depth 1, standing with arms slightly out, then `angles` (column: value)."""
    row = torch.zeros(1, N_POSE)
    row[0, COL["depth"]] = 1.0
    row[0, COL["r_shoulder"]] = row[0, COL["l_shoulder"]] = 0.3
    row[0, COL["r_hip"]] = row[0, COL["l_hip"]] = 0.1
    for name, value in angles.items():
        row[0, COL[name]] = value
    return row


@pytest.fixture(scope="module")
def dance():
    """600 frames of every dancer: {name: (pose, keypoints at 64x64)}."""
    return {d.name: (p, keypoints(d, p)) for d in DANCERS for p in [motion(d, 600)]}


# ------------------------------------------------------------------------------------------ BODY_25, limbs, colours

def test_body25_order_limbs_and_colours():
    assert len(BODY_25) == 25 and len(set(BODY_25)) == 25
    for i, name in [(0, "Nose"), (1, "Neck"), (4, "RWrist"), (7, "LWrist"), (8, "MidHip"), (11, "RAnkle"),
                    (14, "LAnkle"), (15, "REye"), (18, "LEar"), (19, "LBigToe"), (21, "LHeel"), (24, "RHeel")]:
        assert BODY_25[i] == name and KP[name] == i
    assert [BODY_25[i] for i in FACE_KEYPOINTS] == ["Nose", "REye", "LEye", "REar", "LEar"]
    # 24 limbs form a tree over all 25 keypoints, grown from the neck in drawing order (each limb adds one keypoint)
    assert len(LIMBS) == 24 and len(set(LIMBS)) == 24
    reached = {1}
    for a, b in LIMBS:
        assert a in reached and b not in reached, (a, b)
        reached.add(b)
    assert reached == set(range(25))
    assert (1, 8) in LIMBS and (3, 4) in LIMBS and (14, 19) in LIMBS and (11, 24) in LIMBS
    # every limb has its own colour, clearly apart; keypoints take the colour of the limb that ends in them
    assert LIMB_COLORS.shape == (24, 3) and LIMB_COLORS.min() >= 0 and LIMB_COLORS.max() <= 1
    gaps = torch.cdist(LIMB_COLORS, LIMB_COLORS) + 10 * torch.eye(24)
    assert gaps.min() > 0.2
    assert torch.equal(LIMB_COLORS.max(1).values, torch.ones(24))                      # saturated, as OpenPose's
    for k, (a, b) in enumerate(LIMBS):
        assert torch.equal(KEYPOINT_COLORS[b], LIMB_COLORS[k])


def test_dancers_differ_in_size_proportions_colours_and_place():
    tall, small = SOURCES
    assert tall.height > 1.05 * TARGET.height > 1.2 * small.height
    for d in DANCERS:                                     # the vertical chain adds up to the height
        chain = ANKLE_HEIGHT + d.shin + d.thigh + d.torso + d.neck + 1.2 * d.head_radius
        assert chain == pytest.approx(1.0, abs=1e-9), d.name
        assert d.neck > 1.2 * d.head_radius                # the chin is above the neck keypoint
    assert small.head_radius > 1.3 * tall.head_radius and tall.thigh > small.thigh
    colours = ("skin", "shirt", "trousers", "shoes", "hair")
    for a, b in [(TARGET, tall), (TARGET, small), (tall, small)]:
        for c in colours:
            assert max(abs(x - y) for x, y in zip(getattr(a, c), getattr(b, c))) > 0.15, (a.name, b.name, c)
        assert a.detail_seed != b.detail_seed and a.motion_seed != b.motion_seed
    assert small.depth[0] > TARGET.depth[1]                                             # far away
    on_screen = {d.name: d.height / (sum(d.depth) / 2) for d in DANCERS}                 # height / mean depth
    assert on_screen["tall"] > 1.1 * on_screen["target"] > 1.5 * on_screen["small"]
    mid = {d.name: sum(d.x) / 2 for d in DANCERS}
    assert mid["tall"] < mid["target"] - 0.1 and mid["small"] > mid["target"] + 0.1    # left / right


# ------------------------------------------------------------------------------------------ motion

def test_motion_is_a_function_of_the_absolute_frame():
    m = motion(TARGET, 20)
    assert m.shape == (20, N_POSE) and m.dtype == torch.float32
    assert torch.equal(m, motion(TARGET, 20))
    assert torch.equal(motion(TARGET, 10, start=5), m[5:15])
    long = motion(TARGET, 260, start=TEST_START - 30)                       # across move boundaries
    assert torch.equal(motion(TARGET, 7, start=TEST_START + 97), long[127:134])
    assert not torch.equal(motion(SOURCES[0], 20), m)
    assert not torch.equal(motion(TARGET, 20, start=TEST_START), m)
    # the same numbers on every machine: counter-based hashes, float64 maths (golden values, taken once)
    golden = [-0.006250645, 1.0925071, -0.022582727, 0.23086512, 1.8202274, 2.0858433, 0.66603822, 1.1604486,
              0.13574553, 0.11143653, 0.20528883, 0.22298314, -0.0055411458, -0.059806008]
    assert torch.allclose(motion(TARGET, 1, start=1234)[0], torch.tensor(golden), atol=1e-6)


def test_motion_is_periodic_in_the_beat_within_a_move_and_stays_in_range(dance):
    bar = round(2 * FPS / BEAT_HZ)                       # the slowest harmonic: half the beat, 25 frames
    assert bar == 25
    for d in DANCERS:
        p = dance[d.name][0]
        a = p[:, 2:]
        for m0 in range(0, 600, MOVE_FRAMES):            # frames of move m before its fade, and one bar later
            t = torch.arange(m0, m0 + MOVE_FRAMES - FADE_FRAMES - bar)
            assert torch.allclose(a[t], a[t + bar], atol=2e-5), (d.name, m0)
        # but not a still pose, and a new move is a different dance
        assert (a.std(0) > 0.02).all(), d.name
        assert (a[0:25] - a[100:125]).abs().max() > 0.2
        # x and depth wander inside the dancer's ranges and use much of them
        for col, (lo, hi) in (("x", d.x), ("depth", d.depth)):
            v = p[:, COL[col]]
            assert lo - 1e-6 <= v.min() and v.max() <= hi + 1e-6 and v.max() - v.min() > 0.2 * (hi - lo), col
        knees = p[:, [COL["r_knee"], COL["l_knee"]]]
        assert knees.min() >= 0                           # knees never over-extend


def test_motion_is_smooth_across_moves(dance):
    for d in DANCERS:
        p, kp = dance[d.name]
        a = p[:, 2:].double()
        step = (a[1:] - a[:-1]).abs()
        assert step.max() < 0.35, d.name                  # radians a frame: w a / 2 + w b + fade < 0.35
        accel = (a[2:] - 2 * a[1:-1] + a[:-2]).abs()
        assert accel.max() < 0.15, d.name                 # no jumps: the cross-fade is C^1
        # keypoints move at most 0.1 frame heights a frame, 0.01 on average
        vis = (kp[1:, :, 2] > 0) & (kp[:-1, :, 2] > 0)
        moved = torch.linalg.vector_norm(kp[1:, :, :2] - kp[:-1, :, :2], dim=-1)[vis]
        assert moved.max() < 0.1 * SIZE[0] and moved.mean() < 0.01 * SIZE[0], d.name


def test_moves_cross_fade_with_a_smoothstep(dance):
    """In the fade of move m (its last FADE_FRAMES frames) every angle is (1 - b) move_m + b move_{m+1}, b =
    smoothstep. A move repeats every bar (25 frames), so move_m(t) = angle(t - 25) and move_{m+1}(t) = angle(t + 25)
    are frames outside any fade: solving for b per joint recovers the smoothstep."""
    bar = 25
    checked = 0
    for d in DANCERS:
        a = dance[d.name][0][:, 2:].double()
        for m0 in range(0, 500, MOVE_FRAMES):
            for s in range(MOVE_FRAMES - FADE_FRAMES, MOVE_FRAMES):
                t = m0 + s
                lo, hi = a[t - bar], a[t + bar]
                ok = (hi - lo).abs() > 0.05
                b = (a[t, ok] - lo[ok]) / (hi[ok] - lo[ok])
                x = (s - (MOVE_FRAMES - FADE_FRAMES)) / FADE_FRAMES
                assert torch.allclose(b, torch.tensor(x * x * (3 - 2 * x), dtype=torch.float64), atol=2e-3), (t, b)
                checked += int(ok.sum())
    assert checked > 1000


# ------------------------------------------------------------------------------------------ keypoints

BONES = {("RShoulder", "RElbow"): "upper_arm", ("LShoulder", "LElbow"): "upper_arm", ("RElbow", "RWrist"): "forearm",
         ("LElbow", "LWrist"): "forearm", ("RHip", "RKnee"): "thigh", ("LKnee", "LAnkle"): "shin",
         ("MidHip", "Neck"): "torso", ("RShoulder", "LShoulder"): "shoulder_width", ("RHip", "LHip"): "hip_width"}


@pytest.mark.parametrize("dancer", DANCERS, ids=lambda d: d.name)
def test_bone_lengths_are_constant_over_a_clip(dance, dancer):
    p, kp = dance[dancer.name]
    z = p[:, COL["depth"]].double()
    limbs = list(LIMBS) + [((KP[a], KP[b])) for a, b in BONES]
    for a, b in limbs:
        seen = (kp[:, a, 2] > 0) & (kp[:, b, 2] > 0)
        assert seen.float().mean() > 0.8, (a, b)
        length = torch.linalg.vector_norm(kp[seen, a, :2].double() - kp[seen, b, :2].double(), dim=1)
        world = length * z[seen] / SIZE[0]                  # on screen times depth, in world units
        assert (world - world[0]).abs().max() < 2e-5, (BODY_25[a], BODY_25[b])
    for (a, b), bone in BONES.items():                      # and equal to the dancer's proportions
        d = torch.linalg.vector_norm(kp[0, KP[a], :2] - kp[0, KP[b], :2]) * z[0] / SIZE[0]
        assert d.item() == pytest.approx(dancer.bone(bone), abs=2e-5), bone


def test_keypoint_order_and_sides(dance):
    for d in DANCERS:
        kp = dance[d.name][1]
        x, y = kp[..., 0], kp[..., 1]
        assert (kp[..., 2] == 1).float().mean() > 0.98, d.name
        both = (kp[:, :, 2] > 0).all(1)                             # frames with every keypoint in the frame
        x, y = x[both], y[both]
        assert both.sum() > 400
        k = KP
        assert (y[:, k["Neck"]] < y[:, k["MidHip"]]).all() and (y[:, k["Nose"]] < y[:, k["Neck"]]).all()
        assert (y[:, k["REye"]] < y[:, k["Nose"]]).all() and (y[:, k["LEye"]] < y[:, k["Nose"]]).all()
        # the dancer faces the camera: their right side is on the image's left
        for r, m, left in [("RShoulder", "Neck", "LShoulder"), ("RHip", "MidHip", "LHip"), ("REye", "Nose", "LEye"),
                           ("REar", "REye", "LEye")]:
            assert (x[:, k[r]] < x[:, k[m]]).all() and (x[:, k[m]] < x[:, k[left]]).all(), (r, left)
        assert (x[:, k["LEye"]] < x[:, k["LEar"]]).all()
        # the nose sits on the face: within one head radius of the eyes' midpoint
        unit = d.height * SIZE[0] / dance[d.name][0][both, COL["depth"]]
        eyes = (kp[both][:, [k["REye"], k["LEye"]], :2]).mean(1)
        assert (torch.linalg.vector_norm(kp[both, k["Nose"], :2] - eyes, dim=1) < d.head_radius * unit).all()
        # feet below the knees below the hips, heels near their ankles
        for side in "RL":
            assert (y[:, k[side + "Knee"]] > y[:, k[side + "Hip"]]).all()
            assert (y[:, k[side + "Ankle"]] > y[:, k[side + "Knee"]]).all()
            assert (y[:, k[side + "BigToe"]] > y[:, k[side + "Ankle"]]).all()


def test_farther_is_smaller_and_higher_on_the_perspective_ground():
    near, far = _pose(depth=1.0, x=0.05), _pose(depth=2.0, x=0.05)
    a, b = keypoints(TARGET, near, (128, 128))[0], keypoints(TARGET, far, (128, 128))[0]
    assert (a[:, 2] == 1).all() and (b[:, 2] == 1).all()
    # the same figure at half the size about the camera's centre of projection (x = W/2, y = H HORIZON + ...)
    anchor = KP["MidHip"]
    assert torch.allclose(b[:, :2] - b[anchor, :2], (a[:, :2] - a[anchor, :2]) / 2, atol=1e-4)
    tall_a, tall_b = (k[:, 1].max() - k[:, 1].min() for k in (a, b))            # on-screen heights
    assert (tall_b / tall_a).item() == pytest.approx(0.5, abs=1e-6)
    # feet on the ground line y = H (HORIZON + (GROUND - HORIZON) / z): the sole, ANKLE_HEIGHT below the ankle
    for k, z in ((a, 1.0), (b, 2.0)):
        sole = k[[KP["RAnkle"], KP["LAnkle"]], 1].max() + 128 * ANKLE_HEIGHT * TARGET.height / z
        assert sole.item() == pytest.approx(128 * (HORIZON + (GROUND - HORIZON) / z), abs=1e-4)
        assert k[KP["MidHip"], 0].item() == pytest.approx(64 + 128 * 0.05 / z, abs=1e-4)
    # every point halves its distance to the horizon: the feet (below the camera) move up, the head down
    horizon = 128 * HORIZON
    assert torch.allclose(b[:, 1] - horizon, (a[:, 1] - horizon) / 2, atol=1e-4)
    assert b[KP["RAnkle"], 1] < a[KP["RAnkle"], 1] - 20


def test_feet_stay_on_the_ground(dance):
    for d in DANCERS:
        p, kp = dance[d.name]
        z = p[:, COL["depth"]]
        lower = kp[:, [KP["RAnkle"], KP["LAnkle"]], 1].max(1).values            # the lower ankle (larger y)
        assert torch.allclose(lower, _line(z, height=ANKLE_HEIGHT * d.height), atol=1e-3), d.name
        lift = (kp[:, KP["RAnkle"], 1] - kp[:, KP["LAnkle"], 1]).abs() * z / SIZE[0]
        assert lift.max() > 0.01 * d.height                                     # one foot does leave the floor
    # bent knees bring the hips down, the feet stay put
    straight = keypoints(TARGET, _pose(r_knee=0.0, l_knee=0.0))[0]
    bent = keypoints(TARGET, _pose(r_knee=0.8, l_knee=0.8, r_hip=0.5, l_hip=0.5))[0]
    drop = TARGET.bone("thigh") * (math.cos(0.1) - math.cos(0.5)) + TARGET.bone("shin") * (
        math.cos(0.1) - math.cos(0.5 - 0.8))                                   # legs' vertical extent, world units
    assert (bent[KP["MidHip"], 1] - straight[KP["MidHip"], 1]).item() == pytest.approx(64 * drop, abs=1e-4)
    assert bent[KP["RAnkle"], 1].item() == pytest.approx(straight[KP["RAnkle"], 1].item(), abs=1e-4)


def test_mirror_angles_give_a_mirror_pose_and_transfer_keeps_the_bones():
    p = _pose(r_shoulder=1.9, l_shoulder=1.9, r_elbow=0.7, l_elbow=0.7, r_knee=0.4, l_knee=0.4, r_ankle=0.2,
              l_ankle=0.2, r_hip=0.3, l_hip=0.3)
    k = keypoints(TARGET, p, (64, 64))[0]
    pairs = [(n, "L" + n[1:]) for n in BODY_25 if n[0] == "R" and n[1].isupper()]
    assert len(pairs) == 11
    for r, left in pairs:                                   # x mirrored about the midline, y equal
        assert k[KP[r], 0] + k[KP[left], 0] == pytest.approx(64.0, abs=1e-4), r
        assert k[KP[r], 1] == pytest.approx(k[KP[left], 1].item(), abs=1e-4), r
    # a source's dance on the target's body: the target's bone lengths
    p = motion(SOURCES[1], 50)
    kp = keypoints(TARGET, p)
    arm = torch.linalg.vector_norm(kp[:, KP["RShoulder"], :2] - kp[:, KP["RElbow"], :2], dim=1)
    assert torch.allclose(arm * p[:, COL["depth"]] / 64, torch.tensor(TARGET.bone("upper_arm")), atol=2e-5)


def test_keypoints_outside_the_frame_are_missing(dance):
    gone = keypoints(TARGET, _pose(x=3.0))
    assert torch.equal(gone, torch.zeros(1, 25, 3))
    kp = dance["tall"][1]                                    # near the camera: raised hands leave the frame
    out = kp[..., 2] == 0
    assert out.any() and out.float().mean() < 0.1
    assert (kp[out][:, :2] == 0).all()
    assert set(kp[..., 2].unique().tolist()) == {0.0, 1.0}
    seen = kp[~out]
    assert (seen[:, 0] >= 0).all() and (seen[:, 0] <= 64).all() and (seen[:, 1] >= 0).all() and (seen[:, 1] <= 64).all()
    # scale with the frame: twice the size, twice the coordinates
    p = dance["target"][0][:5]
    assert torch.allclose(keypoints(TARGET, p, (128, 128))[..., :2], 2 * dance["target"][1][:5, :, :2], atol=1e-4)


# ------------------------------------------------------------------------------------------ stick figures

def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from point p (2,) to segments a -> b (n, 2)."""
    ab, ap = b - a, p - a
    t = ((ap * ab).sum(1) / (ab * ab).sum(1).clamp_min(1e-9)).clamp(0, 1)
    return torch.linalg.vector_norm(ap - ab * t[:, None], dim=1)


def test_stick_figure_draws_each_limb_in_its_colour(dance):
    size, thick = (128, 128), 3.0
    kp = keypoints(TARGET, dance["target"][0][::60], size)
    img = stick_figure(kp, size, thickness=thick)
    assert img.shape == (len(kp), 3, 128, 128) and img.dtype == torch.float32
    assert img.min() >= 0 and img.max() <= 1
    checked = 0
    for t in range(len(kp)):
        xy = kp[t, :, :2].double()
        a_all = xy[[a for a, _ in LIMBS]]
        b_all = xy[[b for _, b in LIMBS]]
        for k, (a, b) in enumerate(LIMBS):
            mid = (xy[a] + xy[b]) / 2
            i, j = int(mid[1]), int(mid[0])
            centre = torch.tensor([j + 0.5, i + 0.5], dtype=torch.float64)
            others = torch.ones(len(LIMBS), dtype=torch.bool)
            others[k] = False
            near_limb = _segment_distance(centre, a_all[others], b_all[others]).min() < thick / 2 + 1
            near_joint = torch.linalg.vector_norm(xy - centre, dim=1).min() < 1.5 * thick / 2 + 1
            if near_limb or near_joint:
                continue                                     # another limb or a disc may be painted over it
            assert torch.allclose(img[t, :, i, j], LIMB_COLORS[k], atol=1e-6), (t, BODY_25[a], BODY_25[b])
            checked += 1
    assert checked >= 5 * len(kp)
    # black far from the figure; a segment of a clip is the same frames as in the clip
    assert (img[:, :, :4, :4] == 0).all()
    assert torch.allclose(stick_figure(kp[3:6], size, thickness=thick), img[3:6], atol=1e-6)
    assert torch.equal(stick_figure(kp[:2], 128), stick_figure(kp[:2], (128, 128)))      # an int is a square


def test_stick_figure_leaves_out_limbs_of_missing_keypoints(dance):
    size = (128, 128)
    kp = keypoints(TARGET, _pose(r_shoulder=1.3, r_elbow=-0.3), size)
    full = stick_figure(kp, size, thickness=3.0)
    dropped = kp.clone()
    dropped[:, KP["RWrist"]] = 0.0                          # as OpenPose writes a missing point
    part = stick_figure(dropped, size, thickness=3.0)
    # only the forearm and the wrist's disc go: pixels further than thickness from the forearm are unchanged
    a, b = kp[0, KP["RElbow"], :2].double(), kp[0, KP["RWrist"], :2].double()
    changed = (full != part).any(1)[0].nonzero()
    for i, j in changed.tolist():
        d = _segment_distance(torch.tensor([j + 0.5, i + 0.5], dtype=torch.float64), a[None], b[None])
        assert d.item() < 1.5 * 3.0 / 2 + 1, (i, j)
    mid = (a + b) / 2
    i, j = int(mid[1]), int(mid[0])
    assert torch.allclose(full[0, :, i, j], LIMB_COLORS[LIMBS.index((3, 4))]) and (part[0, :, i, j] == 0).all()
    assert len(changed) > 20
    # a missing neck removes every limb at it
    no_neck = kp.clone()
    no_neck[:, KP["Neck"], 2] = 0
    img = stick_figure(no_neck, size, thickness=3.0)
    for k, (a, b) in enumerate(LIMBS):
        if 1 in (a, b):
            mid = (kp[0, a, :2] + kp[0, b, :2]) / 2
            assert not torch.allclose(img[0, :, int(mid[1]), int(mid[0])], LIMB_COLORS[k], atol=0.05)
    # nothing at all: black
    assert torch.equal(stick_figure(torch.zeros(2, 25, 3)), torch.zeros(2, 3, 64, 64))


# ------------------------------------------------------------------------------------------ the tracker

def test_track_jitter_and_drop_statistics(dance):
    kp = dance["tall"][1]                                   # has some missing points already
    assert torch.equal(track(kp), kp) and torch.equal(track(kp, 0.0, 0.0, seed=5), kp)
    before = kp.clone()
    noisy = track(kp, jitter=1.5, seed=1)
    assert torch.equal(kp, before)                          # the input is untouched
    seen = kp[..., 2] > 0
    err = (noisy - kp)[seen][:, :2]
    assert err.std().item() == pytest.approx(1.5, rel=0.15) and abs(err.mean().item()) < 0.05
    assert torch.equal(noisy[~seen], kp[~seen]) and torch.equal(noisy[..., 2], kp[..., 2])
    assert torch.equal(track(kp, jitter=1.5, seed=1), noisy) and not torch.equal(track(kp, jitter=1.5, seed=2), noisy)
    lossy = track(kp, drop=0.2, seed=3)
    lost = seen & (lossy[..., 2] == 0)
    assert lost.sum() / seen.sum() == pytest.approx(0.2, abs=0.02)
    assert (lossy[lost] == 0).all()                         # missing: x = y = c = 0
    assert torch.equal(lossy[~lost], kp[~lost])             # the rest exactly as detected (no jitter asked for)
    assert (track(kp, drop=1.0) == 0).all()
    assert torch.equal(track(kp, drop=1.0, jitter=2.0, seed=4)[..., 2], torch.zeros(kp.shape[:2]))


# ------------------------------------------------------------------------------------------ face crops

def test_face_boxes_hold_the_face_and_stay_inside_the_frame(dance):
    for d in DANCERS:
        kp = dance[d.name][1]
        boxes = face_boxes(kp, SIZE, crop=16)
        assert boxes.shape == (len(kp), 4) and boxes.dtype == torch.int64
        r0, c0, r1, c1 = boxes.unbind(1)
        assert (r1 - r0 == 16).all() and (c1 - c0 == 16).all()
        assert (r0 >= 0).all() and (c0 >= 0).all() and (r1 <= 64).all() and (c1 <= 64).all()
        face = kp[:, list(FACE_KEYPOINTS)]
        seen = face[..., 2] > 0
        inside = (face[..., 0] >= c0[:, None]) & (face[..., 0] < c1[:, None]) & \
                 (face[..., 1] >= r0[:, None]) & (face[..., 1] < r1[:, None])
        assert inside[seen].all(), d.name
        # centred: the face's mean within a pixel of the box centre (unless shifted at a border)
        centre = (face[..., :2] * seen[..., None]).sum(1) / seen.sum(1, keepdim=True)
        free = (r0 > 0) & (r1 < 64) & (c0 > 0) & (c1 < 64)
        box_centre = torch.stack([(c0 + c1) / 2, (r0 + r1) / 2], 1).float()
        assert free.any() and ((centre - box_centre)[free].abs() <= 0.5 + 1e-5).all()
    # a face at the top left corner: the box is shifted inside, not shrunk; a lost face keeps the last box
    kp = torch.zeros(3, 25, 3)
    kp[:, list(FACE_KEYPOINTS)] = torch.tensor([[3.0, 2.0, 1.0]])
    kp[1, :, 2] = 0
    kp[1, :, :2] = 0
    kp[2, list(FACE_KEYPOINTS), :2] = torch.tensor([40.0, 30.0])
    boxes = face_boxes(kp, (64, 64), crop=20)
    assert boxes.tolist() == [[0, 0, 20, 20], [0, 0, 20, 20], [20, 30, 40, 50]]
    assert face_boxes(kp, (64, 64)).tolist()[2] == [22, 32, 38, 48]                    # default crop H // 4


# ------------------------------------------------------------------------------------------ the real frames

@pytest.fixture(scope="module")
def frames(dance):
    return render(TARGET, dance["target"][0][:40])


def test_render_values_and_determinism(dance, frames):
    assert frames.shape == (40, 3, 64, 64) and frames.dtype == torch.float32
    assert frames.min() >= 0 and frames.max() <= 1
    again = render(TARGET, dance["target"][0][:40])
    assert torch.equal(frames, again)                       # bitwise
    part = render(TARGET, dance["target"][0][10:15])
    assert torch.allclose(part, frames[10:15], atol=1e-6)
    assert (frames[1:] - frames[:-1]).abs().amax((1, 2, 3)).min() > 0.1   # the dancer moves every frame
    other = render(SOURCES[0], dance["target"][0][:40])    # the same dance, another person in another room
    assert (other - frames).abs().mean() > 0.05


def test_render_draws_the_body_over_a_fixed_room(dance, frames):
    pose = dance["target"][0][:40]
    away = pose.clone()
    away[:, COL["x"]] = 5.0                                 # the dancer off-screen: the bare room
    room = render(TARGET, away)
    assert torch.equal(room, room[:1].expand_as(room))      # fixed over the video
    assert (room[0, :, 5] > room[0, :, 60]).all()           # lit wall above the floor...
    assert room[0, :, 60].std(1).max() > 0.01               # ...of planks
    kp = dance["target"][1][:40]
    # far from the dancer the frames are the room itself
    assert torch.equal(frames[:, :, :3, :3], room[:, :, :3, :3])
    # where the body is they are not: the torso's middle and the head differ from the room by a lot
    for t in range(40):
        for a, b in [("Neck", "MidHip"), ("LEye", "REye")]:
            x, y = ((kp[t, KP[a], :2] + kp[t, KP[b], :2]) / 2).long().tolist()
            assert (frames[t, :, y, x] - room[t, :, y, x]).abs().max() > 0.15, (t, a)


def test_render_paints_the_shirt_the_skin_and_the_shadow():
    plain = dataclasses.replace(TARGET, stripes=0.0)
    pose = _pose(r_shoulder=1.6, l_shoulder=1.6, r_elbow=0.0, l_elbow=0.0)           # arms out of the way
    size = (128, 128)
    img = render(plain, pose, size)[0]
    kp = keypoints(plain, pose, size)[0]
    shirt = torch.tensor(plain.shirt)
    x, y = ((kp[KP["Neck"], :2] + kp[KP["MidHip"], :2]) / 2).long().tolist()
    ratio = img[:, y, x] / shirt                            # the shirt's colour times a grey shading
    assert 0.9 < ratio.min() and ratio.max() < 1.1 and (ratio.max() - ratio.min()) < 1e-4
    # the eyes are darker than the skin between them, the hair on top is the hair's colour
    eye = kp[KP["REye"], :2].long()
    mid = ((kp[KP["REye"], :2] + kp[KP["LEye"], :2]) / 2).long()
    assert (img[:, eye[1], eye[0]] < img[:, mid[1], mid[0]] - 0.15).all()
    eyes, nose = (kp[KP["REye"], :2] + kp[KP["LEye"], :2]) / 2, kp[KP["Nose"], :2]
    up = (eyes - nose) / 0.38                                # one head radius up the head (face layout of the module)
    top = (nose + 0.2 * up + 0.9 * up).long()                # 0.9 radii above the head's centre: under the hair
    ratio = img[:, top[1], top[0]] / torch.tensor(plain.hair)
    assert 0.8 < ratio.min() and ratio.max() < 1.2 and (ratio.max() - ratio.min()) < 1e-4
    # a forearm across the belly is painted over the shirt: skin
    across = _pose(r_shoulder=0.3, r_elbow=1.9)
    img2, kp2 = render(plain, across, size)[0], keypoints(plain, across, size)[0]
    x, y = ((kp2[KP["RElbow"], :2] + kp2[KP["RWrist"], :2]) / 2).long().tolist()
    assert abs(x - kp2[KP["Neck"], 0]) < 0.1 * 128 and kp2[KP["Neck"], 1] < y < kp2[KP["MidHip"], 1]  # over the torso
    ratio = img2[:, y, x] / torch.tensor(plain.skin)
    assert 0.75 < ratio.min() and ratio.max() < 1.2 and (ratio.max() - ratio.min()) < 1e-4
    # the target's stripes: along the torso's axis the colour swings between the shirt and a paler shirt
    img = render(TARGET, pose, size)[0]
    ys = torch.arange(int(kp[KP["Neck"], 1]) + 3, int(kp[KP["MidHip"], 1]) - 3)
    green = img[1, ys, int(kp[KP["Neck"], 0])]
    assert green.max() - green.min() > 0.15
    # a shadow on the floor beside the feet (together: the shoes reach 10 pixels from the middle)
    pose = _pose(r_hip=0.0, l_hip=0.0)
    img = render(plain, pose, size)[0]
    room = render(plain, _pose(x=5.0), size)[0]
    kp = keypoints(plain, pose, size)[0]
    feet = kp[[KP["RAnkle"], KP["LAnkle"]], 0].mean()
    y = int(_line(1.0, size))
    for dx in (-14, 14):
        x = int(feet) + dx
        assert (img[:, y, x] / room[:, y, x]).max() < 0.85, dx


def test_recording_segments():
    clip = recording(TARGET, 6, TRAIN_START, (32, 32))
    assert isinstance(clip, DanceClip)
    assert clip.pose.shape == (6, N_POSE) and clip.keypoints.shape == (6, 25, 3) and clip.frames.shape == (6, 3, 32, 32)
    assert torch.equal(clip.keypoints, keypoints(TARGET, motion(TARGET, 6), (32, 32)))
    test = recording(TARGET, 6, TEST_START, (32, 32))
    assert not torch.equal(test.pose, clip.pose) and (test.frames - clip.frames).abs().max() > 0.1


# ------------------------------------------------------------------------------------------ errors

def test_errors_name_the_fix():
    kp = keypoints(TARGET, _pose())
    cases = [
        (lambda: motion(TARGET, 0), "frames must be an int >= 1"),
        (lambda: motion(TARGET, 5, start=-1), "start must be an int >= 0"),
        (lambda: motion("target", 5), "dancer must be a Dancer"),
        (lambda: keypoints(TARGET, _pose(), size=(8, 64)), r"two ints >= 16"),
        (lambda: render(TARGET, _pose(), size=(64,)), r"size must be \(H, W\)"),
        (lambda: render(TARGET, _pose(), size=(64.0, 64.0)), r"size must be \(H, W\)"),
        (lambda: keypoints(TARGET, torch.zeros(3, 5)), r"pose must be a float tensor \(T, 14\)"),
        (lambda: keypoints(TARGET, torch.zeros(N_POSE)), r"pose\[None\]"),
        (lambda: keypoints(TARGET, _pose(depth=0.0)), "depth"),
        (lambda: stick_figure(torch.zeros(3, 18, 3)), r"\(T, 25, 3\)"),
        (lambda: stick_figure(kp[0]), r"keypoints\[None\]"),
        (lambda: stick_figure(kp, thickness=0), "thickness must be"),
        (lambda: stick_figure(kp * float("nan")), "NaN"),
        (lambda: track(kp, jitter=-1.0), "jitter must be a number >= 0"),
        (lambda: track(kp, drop=1.5), r"drop must be a probability in \[0, 1\]"),
        (lambda: track(kp.long()), "float tensor"),
        (lambda: face_boxes(kp, (64, 64), crop=65), r"crop must be an int in \[1, min\(H, W\)\]"),
    ]
    for fn, message in cases:
        with pytest.raises(ValueError, match=message):
            fn()


def test_dancer_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TARGET.height = 1.0
    assert isinstance(TARGET, Dancer) and math.isclose(TARGET.bone("torso"), TARGET.torso * TARGET.height)
