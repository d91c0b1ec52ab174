"""Deep Video Portraits (notebook 09): the conditioning passes are functions of the tracked parameters alone (bitwise
across detail seeds, blind to hair length and background), the correspondence colour follows its formula, the gaze
map moves with the gaze and closes with the lid; the portraits world's motion, tracker and relative transfer; the
space-time volume; the rendering-to-video network and its packed adapter (it never sees the real frame, and
reenactment never calls the detailed renderer); training batches; the recipes end to end; the video scores."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genlab.worlds.faces as faces_world
from genlab.config import setup
from genlab.metrics.temporal import farneback_flow, warp_error
from genlab.models.rendering_to_video import RenderingToVideo, RenderingToVideoConfig, make_discriminator
from genlab.worlds.faces import (CONDITIONING_CHANNELS, CONDITIONING_PASSES, FACTOR_NAMES, FACTORS, RENDER_PASSES,
                                 RenderPass, eye_boxes, render_passes)
from genlab.worlds.faces.layout import CENTRE, EYE_W, GAZE_U, PITCH_MAX, YAW_MAX
from genlab.worlds.portraits import (ANIMATED, IDENTITY, ILLUMINATION, SOURCE, TARGET, TEST_START, conditioning,
                                     motion, range_distance, recording, render_target, space_time_volume, track,
                                     transfer)
from genlab.zoo import get_recipe, train_recipe
from genlab.zoo.portraits import (Conditioned, portraits_config, render_video, test_recording, training_batches,
                                  video_scores)

pytestmark = pytest.mark.usefixtures("one_thread")

COL = {n: j for j, n in enumerate(FACTOR_NAMES)}
LOW = torch.tensor([f.low for f in FACTORS])
HIGH = torch.tensor([f.high for f in FACTORS])
ANIM = [COL[n] for n in ANIMATED]
FIXED = [COL[n] for n in IDENTITY + ILLUMINATION]


def _face(**changes) -> torch.Tensor:
    """The target's neutral frame with some factors changed: (1, N_FACTORS)."""
    f = TARGET.neutral()[None].clone()
    for name, value in changes.items():
        f[:, COL[name]] = value
    return f


def _render(factors: torch.Tensor, resolution: int = 64, passes=CONDITIONING_PASSES + ("rgb",), **kw):
    return render_passes(factors, resolution, passes=passes, **kw)


def _layer_alpha(monkeypatch, factors: torch.Tensor, layers: tuple[str, ...], resolution: int = 64) -> torch.Tensor:
    """(n, 1, R, R) coverage of the union of ``layers`` (a temporary render pass)."""
    def coverage_pass(scene):
        zeros = torch.zeros(len(scene.factors), 1, scene.resolution, scene.resolution)
        return scene.composite({name: 1.0 for name in layers}, initial=zeros)

    monkeypatch.setitem(RENDER_PASSES, "_test_coverage", RenderPass("_test_coverage", 1, coverage_pass))
    return render_passes(factors, resolution, passes=("_test_coverage",))["_test_coverage"]


@pytest.fixture(scope="module")
def clip():
    """Frames 0..19 of the target's recording at 32x32."""
    return recording(TARGET, 20, 0, 32)


def _tiny(window: int = 2) -> RenderingToVideo:
    torch.manual_seed(0)
    return RenderingToVideo(RenderingToVideoConfig(window=window, ngf=8, n_down=3, ndf=8, resolution=32)).eval()


# ------------------------------------------------------------------------------------------ conditioning passes

def test_conditioning_is_bitwise_independent_of_the_detail_seed():
    f = motion(TARGET, 3, start=40)
    a = _render(f, detail_seeds=[0, 0, 0])
    b = _render(f, detail_seeds=[7, 99, 123456])
    for p in CONDITIONING_PASSES:
        assert a[p].shape == (3, 3, 64, 64) and 0 <= a[p].min() and a[p].max() <= 1
        assert a[p].flatten(1).amax(1).min() > 0, p                   # every pass draws something on every face
        assert torch.equal(a[p], b[p]), p
    for i in range(3):                                                # the real (detailed) frame does change
        assert (a["rgb"][i] - b["rgb"][i]).abs().max() > 0.1
    cond = conditioning(f)
    assert cond.shape == (3, CONDITIONING_CHANNELS, 64, 64) == (3, 9, 64, 64)
    assert torch.equal(cond, torch.cat([a[p] for p in CONDITIONING_PASSES], 1))


@pytest.mark.parametrize("name, value", [("hair_length", 0.1), ("fringe", 0.0), ("bg_hue", 0.1), ("bg_texture", 0.1),
                                         ("eye_hue", 0.05)])
def test_hair_shape_background_and_iris_colour_do_not_reach_the_conditioning(name, value):
    base, changed = _render(_face()), _render(_face(**{name: value}))
    for p in CONDITIONING_PASSES:
        assert torch.equal(base[p], changed[p]), (name, p)
    assert (base["rgb"] - changed["rgb"]).abs().max() > 0.1, name


@pytest.mark.parametrize("name, value", [("hair_lightness", 0.9), ("hair_hue", 0.1)])
def test_hair_colour_reaches_the_shaded_pass_only_through_the_brows(monkeypatch, name, value):
    """The brows' albedo is 0.6 hair colour + 0.03 (FaceParams), and the shaded pass draws the brows: so the hair
    COLOUR factors change the shaded pass, on brow pixels only; correspondence and gaze stay bitwise the same."""
    base, changed = _render(_face()), _render(_face(**{name: value}))
    assert torch.equal(base["correspondence"], changed["correspondence"])
    assert torch.equal(base["gaze"], changed["gaze"])
    moved = (base["shaded"] - changed["shaded"]).abs().amax(1, keepdim=True) > 0
    brows = _layer_alpha(monkeypatch, _face(), ("brows",))
    assert moved.sum() >= 10, name
    assert (brows[moved] > 0).all(), name                              # nothing but brow pixels changed
    assert (base["rgb"] - changed["rgb"]).abs().amax(1, keepdim=True)[~moved].max() > 0.1   # the hair itself


@pytest.mark.parametrize("name, value, changes", [
    ("yaw", 0.5, {"shaded", "correspondence", "gaze"}),
    ("pitch", -0.4, {"shaded", "correspondence", "gaze"}),
    ("roll", 0.1, {"shaded", "correspondence", "gaze"}),
    ("mouth_open", 0.8, {"shaded"}),
    ("smile", -0.5, {"shaded"}),
    ("light_x", -0.5, {"shaded"}),
    ("gaze_x", 0.7, {"gaze"}),
    ("gaze_y", 0.5, {"gaze"}),
    ("blink", 1.0, {"shaded", "gaze"}),
])
def test_tracked_factors_change_exactly_the_passes_that_show_them(name, value, changes):
    base, changed = _render(_face()), _render(_face(**{name: value}))
    for p in CONDITIONING_PASSES:
        differs = (base[p] - changed[p]).abs().max().item()
        if p in changes:
            assert differs > 0.1, (name, p, differs)
        else:
            assert differs == 0, (name, p, differs)
    assert (base["rgb"] - changed["rgb"]).abs().max() > 0.1


# ------------------------------------------------------------------------------------------ gaze map

def test_gaze_changes_only_the_gaze_pass_inside_the_eye_boxes_and_moves_the_iris():
    r = 128
    base, looked = _render(_face(), r), _render(_face(gaze_x=0.7), r)
    assert torch.equal(base["shaded"], looked["shaded"])
    assert torch.equal(base["correspondence"], looked["correspondence"])
    outside = torch.ones(r, r, dtype=torch.bool)
    for r0, c0, r1, c1 in eye_boxes(_face(gaze_x=0.7), r)[0].tolist():
        outside[r0:r1, c0:c1] = False
    assert ((base["gaze"] - looked["gaze"])[0][:, outside] == 0).all()
    # the red iris disc moves right by gaze_x * GAZE_U * eye half width (EYE_W a at yaw 0), in image units
    xs = ((torch.arange(r, dtype=torch.float64) * 2 + 1) / r - 1).view(1, r).expand(r, r)
    expected = 0.7 * GAZE_U * EYE_W * TARGET.identity["face_width"]
    for side in (xs < 0, xs > 0):
        centroid = []
        for out in (base, looked):
            iris = (out["gaze"][0, 0] - out["gaze"][0, 1]).double().clamp(min=0) * side   # red, not white
            centroid.append((xs * iris).sum() / iris.sum())
        assert centroid[1] - centroid[0] == pytest.approx(expected, rel=0.05)
    g = base["gaze"][0]
    # mixes of white eye, red iris and black lid/background only: R >= G = B, with pure red and pure white present
    assert torch.equal(g[1], g[2]) and (g[0] >= g[1]).all()
    assert ((g[0] == 1) & (g[1] == 0)).sum() > 20 and ((g[0] == 1) & (g[1] == 1)).sum() > 20


def test_blink_closes_the_gaze_map():
    """At blink = 1 the lid edge sits at eye_v + 0.8 eye_h (layout): a sliver of the eye white stays open at the
    bottom of the opening (in the rgb pass the lashes cover it; the gaze map draws no lashes). Measured at 64x64:
    42 lit pixels open, 4 closed."""
    lit = []
    for blink in (0.0, 0.5, 1.0):
        g = _render(_face(blink=blink), passes=("gaze",))["gaze"][0]
        lit.append((g.amax(0) > 0.5).float().mean().item())
    assert lit[0] > 0.008                                              # open eyes: about 1 % of the image
    assert lit[2] < 0.15 * lit[0] and lit[2] < 0.002                   # closed: nearly black
    assert lit[2] < lit[1] <= lit[0]


# ------------------------------------------------------------------------------------------ correspondence

@pytest.mark.parametrize("yaw, pitch, roll", [(-0.5, 0.0, 0.0), (0.0, 0.0, 0.0), (0.5, 0.3, 0.0), (0.3, -0.4, 0.2)])
def test_correspondence_follows_its_formula(monkeypatch, yaw, pitch, roll):
    """c_u = 1/2 + (asin(u / a) - yaw) / pi, c_v = 1/2 + (asin(v / b) - pitch) / pi, third channel 1, on every
    pixel the face or the ears cover fully (yaw, pitch in radians: YAW_MAX, PITCH_MAX times the factors; a the face's
    half width, the radius of the cylinder the features sit on); 0 off the model."""
    r = 64
    f = _face(yaw=yaw, pitch=pitch, roll=roll)
    c = render_passes(f, r, passes=("correspondence",))["correspondence"][0].double()
    model = _layer_alpha(monkeypatch, f, ("ears", "face"), r)[0, 0]
    grid = (torch.arange(r, dtype=torch.float64) * 2 + 1) / r - 1
    dx, dy = grid.view(1, r) - CENTRE[0], grid.view(r, 1) - CENTRE[1]
    u = math.cos(roll) * dx + math.sin(roll) * dy
    v = math.cos(roll) * dy - math.sin(roll) * dx
    a, b = TARGET.identity["face_width"], TARGET.identity["face_height"]
    cu = 0.5 + (torch.asin((u / a).clamp(-1, 1)) - YAW_MAX * yaw) / math.pi
    cv = 0.5 + (torch.asin((v / b).clamp(-1, 1)) - PITCH_MAX * pitch) / math.pi
    full = model == 1
    assert full.sum() > 600
    assert torch.allclose(c[0][full], cu.clamp(0, 1)[full], atol=2e-5)
    assert torch.allclose(c[1][full], cv.clamp(0, 1)[full], atol=2e-5)
    assert (c[2][full] == 1).all() and (c[:, model == 0] == 0).all()


@pytest.mark.parametrize("yaw", [-0.5, 0.5, 1.0])
def test_correspondence_at_the_head_centre_shifts_with_yaw(yaw):
    """At the head centre (u = 0) c_u = 1/2 - YAW_MAX yaw / pi: the pixels either side of x = 0 on the row nearest
    CENTRE's y average to it within 1e-3 (they sit at u = -+1/R)."""
    c = _render(_face(yaw=yaw), passes=("correspondence",))["correspondence"][0]
    row = round((CENTRE[1] + 1) * 64 / 2 - 0.5)
    centre = (c[0, row, 31] + c[0, row, 32]).item() / 2
    assert centre == pytest.approx(0.5 - YAW_MAX * yaw / math.pi, abs=1e-3)
    assert c[0, row, 32] - c[0, row, 31] == pytest.approx(0.0216, abs=0.002)   # ~1/(pi a R/2) per pixel


def test_a_feature_keeps_its_correspondence_colour_when_the_head_turns():
    """The iris (red in the gaze map) shows the same c_u, c_v for yaw -0.5, 0, 0.5 at pitch 0.3 (the features sit on a
    cylinder of radius a, and c_u inverts that cylinder; what is left is the pixel sampling of the iris)."""
    r = 128
    xs = ((torch.arange(r) * 2 + 1) / r - 1).view(1, r).expand(r, r)
    colours = {}
    for yaw in (-0.5, 0.0, 0.5):
        out = _render(_face(yaw=yaw, pitch=0.3), r, passes=("correspondence", "gaze"))
        iris = (out["gaze"][0, 0] - out["gaze"][0, 1]).clamp(min=0)
        c = out["correspondence"][0]
        colours[yaw] = [((c[k] * iris * side).sum() / (iris * side).sum()).item()
                        for side in (xs < 0, xs > 0) for k in (0, 1)]          # left c_u, c_v, right c_u, c_v
    left_u, left_v, right_u, right_v = colours[0.0]
    assert left_u == pytest.approx(0.5 - math.asin(0.4) / math.pi, abs=0.002)      # the eyes sit at u/a = -+0.40
    assert right_u == pytest.approx(0.5 + math.asin(0.4) / math.pi, abs=0.002)
    assert left_v == pytest.approx(right_v) and left_v == pytest.approx(0.5 + math.asin(-0.08) / math.pi, abs=0.002)
    for yaw in (-0.5, 0.5):
        for k in range(4):
            assert abs(colours[yaw][k] - colours[0.0][k]) < 0.003, (yaw, k)
        assert abs(colours[yaw][1] - left_v) < 1e-3 and abs(colours[yaw][3] - right_v) < 1e-3


# ------------------------------------------------------------------------------------------ space-time volume

def test_space_time_volume_stacks_the_last_frames_oldest_first():
    t, c, window = 6, 2, 3
    cond = torch.arange(t * c, dtype=torch.float32).view(t, c, 1, 1).expand(t, c, 4, 4).clone()
    vol = space_time_volume(cond, window)
    assert vol.shape == (t, window * c, 4, 4)
    for i in range(t):
        for k in range(window):
            assert torch.equal(vol[i, k * c:(k + 1) * c], cond[max(0, i - window + 1 + k)]), (i, k)
    assert torch.equal(vol[:, -c:], cond)                              # the current frame's channels last
    assert torch.equal(vol[0], cond[0].repeat(window, 1, 1))          # before the first: frame 0 repeated
    assert torch.equal(space_time_volume(cond, 1), cond)
    batch = torch.stack([cond, cond + 100])                           # (B, T, C, H, W)
    vb = space_time_volume(batch, window)
    assert vb.shape == (2, t, window * c, 4, 4)
    assert torch.equal(vb[0], vol) and torch.equal(vb[1], vol + 100)
    assert torch.equal(space_time_volume(cond, np.int64(3)), vol)   # numpy ints are fine


@pytest.mark.parametrize("window", [0, 1.5, True, -2])
def test_space_time_volume_rejects_bad_windows(window):
    with pytest.raises(ValueError, match="window"):
        space_time_volume(torch.zeros(4, 9, 8, 8), window)


def test_space_time_volume_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        space_time_volume(torch.zeros(9, 8, 8), 2)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        space_time_volume(torch.zeros(1, 1, 4, 9, 8, 8), 2)


# ------------------------------------------------------------------------------------------ motion

def test_motion_is_deterministic_and_consistent_across_segments():
    m = motion(TARGET, 20)
    assert m.shape == (20, len(FACTOR_NAMES)) and m.dtype == torch.float32
    assert torch.equal(m, motion(TARGET, 20))
    assert torch.equal(motion(TARGET, 10, start=5), m[5:15])
    assert not torch.equal(motion(SOURCE, 20)[:, ANIM], m[:, ANIM])
    # identity and illumination are the actor's on every frame
    assert torch.equal(m[:, FIXED], TARGET.neutral()[FIXED].expand(20, -1))
    # scale 0: every animated factor (but blink) sits at its interval's midpoint
    still = motion(TARGET, 5, scale=0.0)
    for name, (lo, hi) in TARGET.motion.items():
        assert torch.allclose(still[:, COL[name]], torch.tensor((lo + hi) / 2), atol=1e-7), name


def test_motion_stays_in_the_training_range_and_scale_widens_it():
    m = motion(TARGET, 600)
    assert (range_distance(m) == 0).all()
    for name, (lo, hi) in TARGET.motion.items():
        x = m[:, COL[name]]
        assert lo <= x.min() and x.max() <= hi, name
        assert x.max() - x.min() > 0.5 * (hi - lo), name                # and it uses most of it
    wide = range_distance(motion(TARGET, 600, scale=2.0))
    assert (wide > 0).float().mean() > 0.3 and wide.max() > 0.1
    assert (range_distance(motion(TARGET, 600, scale=0.5)) == 0).all()
    # range_distance is the overshoot over the factor's full range width: yaw (width 2) 0.2 past +0.5 -> 0.1
    row = _face(yaw=0.7)
    assert range_distance(row).item() == pytest.approx(0.1, abs=1e-6)
    assert range_distance(_face(blink=1.0)).item() == 0                 # blink is not counted


def test_motion_is_smooth():
    """|ds/dt| <= 2 pi f_max = 2 pi / 20 per frame, so a factor moves at most half its interval times that per frame."""
    m = motion(TARGET, 600)
    step = (m[1:] - m[:-1]).abs().amax(0)
    for name, (lo, hi) in TARGET.motion.items():
        assert step[COL[name]] <= (hi - lo) / 2 * 2 * math.pi / 20 + 1e-6, name
        assert step[COL[name]] > 0, name
    assert step[COL["yaw"]] < 0.16


def test_blinks_are_short_pulses_once_per_50_frames():
    blink = motion(TARGET, 600)[:, COL["blink"]]
    assert blink.max() == 1.0 and blink.min() == 0.0
    assert (blink < 1e-6).float().mean() > 0.85                         # eyes open on most frames
    for k in range(12):
        period = blink[50 * k: 50 * (k + 1)] > 1e-6
        onsets = (period[1:] & ~period[:-1]).sum() + period[0].int()
        assert onsets == 1 and 5 <= period.sum() <= 6, (k, period.nonzero().flatten().tolist())
        assert blink[50 * k: 50 * (k + 1)].max() == 1.0
    assert (motion(SOURCE, 100)[:, COL["blink"]] > 0.5).any()


def test_train_and_test_segments_share_no_frame():
    train = motion(TARGET, 600)
    test = motion(TARGET, 100, start=TEST_START)
    assert not (train[:, None, ANIM] == test[None, :, ANIM]).all(-1).any()
    held_out = test_recording(32, 3)
    assert torch.equal(held_out.params, test[:3])
    assert torch.equal(held_out.cond, conditioning(test[:3], 32))
    assert torch.equal(held_out.frames, render_target(test[:3], TARGET, 32))


@pytest.mark.parametrize("kw", [{"frames": 0}, {"frames": 2, "start": -1}, {"frames": 2, "scale": -1.0},
                                {"frames": True}, {"frames": 2.0}])
def test_motion_errors(kw):
    with pytest.raises(ValueError, match="frames|start|scale"):
        motion(TARGET, **kw)


# ------------------------------------------------------------------------------------------ tracker

def test_track_without_noise_is_the_identity():
    m = motion(TARGET, 30)
    assert torch.equal(track(m), m)
    assert torch.equal(track(m, 0.0, 0.0, seed=5), m)


def test_track_jitter_touches_only_the_animated_factors_with_the_stated_scale():
    n = 4000
    mid = _face(blink=0.5).expand(n, -1).clone()                        # mid-range: no clipping at 4 sigma
    noisy = track(mid, 0.05, seed=1)
    diff = noisy - mid
    assert torch.equal(diff[:, FIXED], torch.zeros(n, len(FIXED)))
    half = (HIGH - LOW) / 2
    for name in ANIMATED:
        d = diff[:, COL[name]]
        assert d.std().item() == pytest.approx(0.05 * half[COL[name]].item(), rel=0.15), name
        assert abs(d.mean().item()) < 0.1 * 0.05 * half[COL[name]].item(), name
    assert torch.equal(track(mid, 0.05, seed=1), noisy) and not torch.equal(track(mid, 0.05, seed=2), noisy)
    # bias: a constant shift of bias half ranges on every frame
    shifted = track(mid, 0.0, bias=0.1)
    assert torch.allclose(shifted[:, ANIM], mid[:, ANIM] + 0.1 * half[ANIM], atol=1e-6)
    assert torch.equal(shifted[:, FIXED], mid[:, FIXED])
    assert (track(mid, 0.05, bias=0.1, seed=1)[:, ANIM] - mid[:, ANIM]).mean(0).sub(0.1 * half[ANIM]).abs().max() \
        < 0.01 * half[ANIM].max()
    # clipped to the factor ranges
    assert (track(_face(yaw=0.99), 0.0, bias=0.5)[0, COL["yaw"]] == 1.0)


def test_track_rejects_negative_jitter():
    with pytest.raises(ValueError, match="jitter"):
        track(motion(TARGET, 3), -0.1)


# ------------------------------------------------------------------------------------------ transfer

def test_transfer_is_relative_to_the_neutrals():
    src, ns, nt = motion(SOURCE, 200), SOURCE.neutral(), TARGET.neutral()
    out = transfer(src, ns, nt)
    assert torch.equal(transfer(ns[None], ns, nt)[0], nt)               # the source's neutral -> the target's
    assert torch.equal(out[:, FIXED], nt[FIXED].expand(200, -1))        # identity and light are the target's
    assert torch.allclose(out[:, ANIM] - nt[ANIM], src[:, ANIM] - ns[ANIM], atol=1e-6)   # deltas kept (no clip here)
    assert not torch.allclose(out[:, ANIM], src[:, ANIM], atol=1e-3)   # not a copy of the source's values
    # the reenactment drives the target's conditioning: the target's face shape, the source's motion
    assert range_distance(out).max() < 0.15


def test_transfer_clips_to_the_factor_ranges():
    ns = SOURCE.neutral()
    nt = _face(yaw=0.5, mouth_open=0.1)[0]
    src = ns[None].repeat(2, 1)
    src[0, COL["yaw"]] += 0.8                                           # 0.5 + 0.8 -> 1.3, clipped to 1.0
    src[1, COL["mouth_open"]] = 0.0                                     # 0.1 - 0.05 -> 0.05 (inside)
    src[1, COL["yaw"]] -= 0.3                                           # 0.5 - 0.3 -> 0.2
    src[0, COL["mouth_open"]] = 1.0                                     # 0.1 + 0.95 -> 1.05, clipped to 1.0
    src[0, COL["roll"]] = 0.3                                           # 0 + 0.25 -> 0.25 (inside)
    src[1, COL["roll"]] = -0.35                                         # 0 - 0.40 -> -0.35 (clipped)
    out = transfer(src, ns, nt)
    assert out[0, COL["yaw"]] == 1.0 and out[1, COL["yaw"]] == pytest.approx(0.2, abs=1e-6)
    assert out[1, COL["mouth_open"]] == pytest.approx(0.05, abs=1e-6) and out[0, COL["mouth_open"]] == 1.0
    assert out[0, COL["roll"]] == pytest.approx(0.25, abs=1e-6) and out[1, COL["roll"]] == pytest.approx(-0.35)
    assert ((out >= LOW) & (out <= HIGH)).all()


# ------------------------------------------------------------------------------------------ network

def test_rendering_to_video_shapes_range_and_dependence_on_every_frame():
    net = _tiny(window=3)
    g = torch.Generator().manual_seed(0)
    vol = torch.rand(2, 27, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        out = net(vol)
        assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1 and out.std() > 1e-3
        assert torch.equal(net(vol), out)                               # no dropout: deterministic
        assert torch.allclose(net(vol[1:]), out[1:], atol=1e-5)         # instance norm: per sample
        for k in range(3):                                              # every frame of the volume is read
            other = vol.clone()
            other[:, 9 * k: 9 * (k + 1)] = 0
            assert (net(other) - out).abs().max() > 1e-3, k
        assert net(torch.rand(1, 27, 64, 48) * 2 - 1).shape == (1, 3, 64, 48)     # fully convolutional


def test_rendering_to_video_errors():
    net = _tiny(window=2)
    with pytest.raises(ValueError, match=r"N_w = 2 frames x 9 channels.*\(B, 18, H, W\)"):
        net(torch.zeros(1, 17, 32, 32))
    with pytest.raises(ValueError, match=r"divisible by 2\*\*n_down = 8"):
        net(torch.zeros(1, 18, 36, 36))
    with pytest.raises(ValueError, match="window"):
        RenderingToVideoConfig(window=0)
    with pytest.raises(ValueError, match="ngf"):
        RenderingToVideoConfig(ngf=True)
    assert RenderingToVideoConfig(window=11).in_channels == 99


def test_discriminator_reads_the_volume_and_a_frame():
    cfg = RenderingToVideoConfig(window=2, ngf=8, n_down=3, ndf=8, resolution=32)
    torch.manual_seed(0)
    d = make_discriminator(cfg)
    x = torch.rand(2, 9 * 2 + 3, 32, 32) * 2 - 1
    out = d(x)
    assert out.shape == (2, 1, 4, 4)
    other = x.clone()
    other[:, -3:] = -other[:, -3:]                                      # another frame, same volume
    assert (d(other) - out).abs().max() > 1e-4
    with pytest.raises(ValueError, match="21"):
        d(x[:, :18])


def test_the_network_never_sees_the_real_frame(clip):
    net = _tiny(window=2)
    vol = space_time_volume(clip.cond * 2 - 1, 2)
    packed = torch.cat([vol, clip.frames * 2 - 1], 1)
    scrambled = packed.clone()
    scrambled[:, -3:] = torch.randn_like(scrambled[:, -3:])
    G = Conditioned(net)
    with torch.no_grad():
        out = G(packed)
        assert out.shape == packed.shape
        assert torch.equal(out[:, :-3], vol)
        assert torch.equal(out[:, -3:], net(vol))
        assert torch.equal(G(scrambled), out)


def test_render_video_is_the_network_on_the_volume(clip):
    net = _tiny(window=2)
    video = render_video(net, clip.cond, batch_size=7)
    assert video.shape == clip.frames.shape and 0 <= video.min() and video.max() <= 1
    assert not video.requires_grad and not net.training
    with torch.no_grad():
        direct = (net(space_time_volume(clip.cond * 2 - 1, 2)) + 1) / 2
    assert torch.allclose(video, direct, atol=1e-6)


def test_reenactment_never_calls_the_detailed_renderer(monkeypatch):
    """Transfer the source's motion, render the conditioning, run the network: with the "rgb" pass disabled."""
    def no_rgb(scene):
        raise AssertionError("the detailed (rgb) renderer was called")

    reference = conditioning(transfer(motion(SOURCE, 4), SOURCE.neutral(), TARGET.neutral()), 32)
    monkeypatch.setitem(faces_world.RENDER_PASSES, "rgb", RenderPass("rgb", 3, no_rgb))
    with pytest.raises(AssertionError, match="detailed"):
        render_target(motion(TARGET, 2), TARGET, 32)                    # the patch is in force
    cond = conditioning(transfer(motion(SOURCE, 4), SOURCE.neutral(), TARGET.neutral()), 32)
    assert torch.equal(cond, reference)
    video = render_video(_tiny(window=2), cond)
    assert video.shape == (4, 3, 32, 32) and video.std() > 1e-3


# ------------------------------------------------------------------------------------------ training batches

def test_training_batches_pack_the_volume_and_the_real_frame(clip):
    window, n = 3, len(clip.frames)
    data = training_batches(clip.cond, clip.frames, window, batch_size=6, seed=4)
    x = data(0)
    assert x.shape == (6, 9 * window + 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    volume = space_time_volume(clip.cond * 2 - 1, window)
    real = clip.frames * 2 - 1
    for b in range(6):
        hits = [i for i in range(n) if torch.equal(x[b, -3:], real[i])]
        assert len(hits) == 1, b                                         # one real frame of the video
        assert torch.equal(x[b, :-3], volume[hits[0]])                   # with its own space-time volume
    assert torch.equal(data(0), x)                                       # a function of (seed, step)
    assert not torch.equal(data(1), x)
    assert not torch.equal(training_batches(clip.cond, clip.frames, window, 6, seed=5)(0), x)
    # over many steps every frame is drawn, the first ones too (their volumes repeat frame 0)
    drawn = set()
    for step in range(40):
        y = data(step)
        drawn |= {i for b in range(6) for i in range(n) if torch.equal(y[b, -3:], real[i])}
    assert drawn == set(range(n))


def test_recording_is_consistent(clip):
    assert clip.params.shape == (20, len(FACTOR_NAMES)) and clip.frames.shape == (20, 3, 32, 32)
    assert torch.equal(clip.params, motion(TARGET, 20))
    assert torch.equal(clip.cond, conditioning(clip.params, 32))
    assert torch.equal(clip.frames, render_target(clip.params, TARGET, 32))
    assert (clip.frames[1:] - clip.frames[:-1]).abs().amax((1, 2, 3)).min() > 0    # the video moves


# ------------------------------------------------------------------------------------------ recipes

def test_recipe_configs():
    for name, window, frames in (("dvp_portraits", 5, 600), ("dvp_portraits_nw1", 1, 600),
                                 ("dvp_portraits_f25", 5, 25), ("dvp_portraits_f100", 5, 100)):
        recipe = get_recipe(name)
        cpu = recipe.config("cpu")
        assert (cpu.model.window, cpu.train.frames, cpu.model.resolution) == (window, frames, 64), name
        ci = recipe.config("ci")
        assert ci.train.steps == 2 and ci.model.resolution == 32 and ci.train.frames == frames
        assert ci.model.window == (1 if window == 1 else 2)
        model = recipe.build(ci.as_dict()["model"])
        assert isinstance(model, RenderingToVideo) and model.config == ci.model
    gpu = portraits_config("gpu")
    assert (gpu.model.window, gpu.model.resolution, gpu.model.n_down) == (11, 128, 5)
    assert 128 % 2 ** gpu.model.n_down == 0 and 64 % 2 ** portraits_config("cpu").model.n_down == 0


def test_dvp_ci_training_runs_end_to_end(tmp_path):
    model = train_recipe("dvp_portraits", setup("ci", 0), out=tmp_path, progress=False)
    assert isinstance(model, RenderingToVideo) and not model.training
    assert (tmp_path / "dvp_portraits" / "ci" / "last.pt").exists()
    untrained = get_recipe("dvp_portraits").build(get_recipe("dvp_portraits").config("ci").as_dict()["model"])
    assert any(not torch.equal(p, q) for p, q in zip(model.state_dict().values(), untrained.state_dict().values()))
    scores = get_recipe("dvp_portraits").evaluate(model, torch.device("cpu"))
    assert set(scores) == {"psnr", "ssim", "l1", "warp_error", "flicker"}
    assert all(math.isfinite(v) for v in scores.values()), scores
    assert 0 < scores["l1"] < 1 and 0 < scores["psnr"] < 40 and -1 <= scores["ssim"] < 0.9
    assert scores["warp_error"] > 0 and scores["flicker"] > 0


# ------------------------------------------------------------------------------------------ video scores

def test_video_scores_of_the_real_video(clip):
    real = clip.frames
    flow = farneback_flow(real[None])
    s = video_scores(real, real)
    assert s["l1"] == 0 and s["psnr"] == math.inf and s["ssim"] == pytest.approx(1.0)
    direct = warp_error(real[None], flow, torch.zeros_like(flow[:, :, :1]))
    assert s["warp_error"] == pytest.approx(direct, rel=1e-6) and 0 < s["warp_error"] < 0.02
    assert video_scores(real, real, flow=flow) == s                      # a reused flow gives the same numbers
    # a temporally shuffled video (the same frames, in another order) warps far worse with the real flow
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(real), generator=g)
    shuffled = video_scores(real[order], real, flow=flow)
    assert shuffled["warp_error"] > 2 * s["warp_error"] and shuffled["flicker"] > 2 * s["flicker"]
    # l1 against the real frames: a frame-independent number
    darker = video_scores(real * 0.5, real, flow=flow)
    assert darker["l1"] == pytest.approx(0.5 * real.abs().mean().item(), rel=1e-5)
    assert darker["warp_error"] == pytest.approx(0.5 * s["warp_error"], rel=1e-4)   # warping is linear


def test_region_errors_localise_the_error():
    """An error painted inside the mouth box shows in the mouth and the frame averages, not in the eyes; identical
    videos score 0 everywhere."""
    from genlab.worlds.faces import eye_boxes, mouth_boxes
    from genlab.zoo.portraits import region_errors

    clip = recording(TARGET, 4, 0, 64)
    zero = region_errors(clip.frames, clip.frames, clip.params)
    assert zero == {"frame": 0.0, "mouth": 0.0, "eyes": 0.0}
    fake = clip.frames.clone()
    boxes = mouth_boxes(clip.params, 64)
    area = 0
    for t, (r0, c0, r1, c1) in enumerate(boxes.tolist()):
        fake[t, :, r0:r1, c0:c1] += 0.5                                 # unclipped: the error is exactly 0.5
        area += (r1 - r0) * (c1 - c0)
    eyes = eye_boxes(clip.params, 64)
    assert all(e[0] >= m[2] or e[2] <= m[0] for m, pair in zip(boxes.tolist(), eyes.tolist()) for e in pair)
    r = region_errors(fake, clip.frames, clip.params)
    assert r["mouth"] == pytest.approx(0.5) and r["eyes"] == 0.0
    assert r["frame"] == pytest.approx(0.5 * area / (4 * 64 * 64))


def test_noisy_tracker_recipes_train_and_score_with_tracker_noise():
    """The ``_jit`` recipes train on conditioning from a noisy track and are scored with tracker noise: their
    evaluation differs from the exact-tracker evaluation of the same network, and equals video_scores on the noisy
    conditioning rendered here by hand."""
    from genlab.zoo.portraits import EVAL_TRACK_SEED, JITTER, evaluate

    assert get_recipe("dvp_portraits_jit").config("cpu").train.jitter == JITTER > 0
    assert get_recipe("dvp_portraits_nw1_jit").config("cpu").model.window == 1
    assert get_recipe("dvp_portraits").config("cpu").train.jitter == 0.0
    torch.manual_seed(0)
    net = RenderingToVideo(portraits_config("ci").model).eval()
    clean, noisy = evaluate(net, torch.device("cpu")), evaluate(net, torch.device("cpu"), JITTER)
    assert clean != noisy
    clip = test_recording(32)
    cond = conditioning(track(clip.params, jitter=JITTER, seed=EVAL_TRACK_SEED), 32)
    assert noisy == video_scores(render_video(net, cond), clip.frames)


def test_render_video_in_slices_equals_the_whole_volume():
    """render_video builds the volume slice by slice; every frame still sees its own last N_w frames (frame 0 repeated
    only before the video's start)."""
    torch.manual_seed(3)
    net = RenderingToVideo(RenderingToVideoConfig(window=5, ngf=4, n_down=2, resolution=16, stem=2)).eval()
    cond = torch.rand(23, 9, 16, 16)
    with torch.no_grad():
        whole = (net(space_time_volume(cond * 2 - 1, 5)).clamp(-1, 1) + 1) / 2
    for batch_size in (1, 4, 7, 23, 64):
        assert torch.allclose(render_video(net, cond, batch_size=batch_size), whole, atol=1e-6), batch_size
