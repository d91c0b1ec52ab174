"""OpenPose BODY_25 keypoints (genlab.data.pose): the global pose normalization of Everybody Dance Now maps a stick
figure of known height at two depths exactly onto the target's positions and heights, the temporal median filter
removes spikes, keeps steps and fills dropouts, and OpenPose JSON folders round-trip, with an error that names the
fix for every bad folder, file or tensor. All values are dyadic, so every comparison is exact."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from genlab.data.pose import (
    BODY_25,
    PoseStats,
    ankle_y,
    check_keypoints,
    median_filter,
    normalization_stats,
    normalize_poses,
    pose_height,
    read_openpose_folder,
    write_openpose_folder,
)

pytestmark = pytest.mark.usefixtures("one_thread")

J = {name: i for i, name in enumerate(BODY_25)}
# joint -> (dx, dy) as a fraction of the figure's height, from the ground point (mean ankle x, ankle y); dyadic
FIGURE = {"Nose": (0, -1), "Neck": (0, -0.875), "RShoulder": (-0.125, -0.875), "LShoulder": (0.125, -0.875),
          "RWrist": (-0.25, -0.5), "MidHip": (0, -0.5), "RHip": (-0.0625, -0.5), "LHip": (0.0625, -0.5),
          "RKnee": (-0.0625, -0.25), "LKnee": (0.0625, -0.25), "RAnkle": (-0.0625, 0), "LAnkle": (0.0625, 0)}


def figure(x: float, y: float, height: float, conf: float = 0.5) -> torch.Tensor:
    """(25, 3): the stick figure standing at ground point (x, y), ``height`` pixels from nose to ankles; the joints
    not in FIGURE (elbows, left wrist, eyes, ears, feet) are missing, (0, 0, 0)."""
    kp = torch.zeros(25, 3)
    for name, (dx, dy) in FIGURE.items():
        kp[J[name]] = torch.tensor([x + dx * height, y + dy * height, conf])
    return kp


def video(*frames) -> torch.Tensor:
    return torch.stack([figure(*f) for f in frames])


# source: 4 frames far (ankles at y = 200, 80 px tall), 4 close (y = 400, 160 px), 1 halfway (y = 300, 120 px)
SOURCE = [(64, 200, 80)] * 4 + [(64, 400, 160)] * 4 + [(64, 300, 120)]
# target: far at y = 96 and 40 px tall (ratio 0.5), close at y = 320 and 320 px tall (ratio 2)
TARGET = [(192, 96, 40)] * 3 + [(192, 320, 320)] * 3


# ---------------------------------------------------------------------------------------------- ankles and heights
def test_ankle_y_takes_the_lower_confident_ankle():
    kp = video((10, 100, 64), (10, 100, 64), (10, 100, 64), (10, 100, 64))
    kp[0, J["LAnkle"], 1] = 104                          # left foot lower: 104
    kp[1, J["LAnkle"]] = torch.tensor([10, 500, 0.0])   # left ankle missing (a stray y must be ignored): right's 100
    kp[2, J["LAnkle"], 1] = 90                           # left foot lifted: the right one stays the ground, 100
    kp[3, [J["LAnkle"], J["RAnkle"]]] = 0                # no ankle
    got = ankle_y(kp)
    assert got.dtype == torch.float32 and got.shape == (4,)
    assert got[:3].tolist() == [104, 100, 100] and math.isnan(got[3])


def test_pose_height_measures_head_to_ground_point():
    kp = video(*[(10, 100, 64)] * 6)
    kp[1, J["Nose"]] = torch.tensor([13, 96, 0.5])       # nose 3 right, 4 up of the ground point (10, 100): 5
    kp[1, J["RAnkle"]] = torch.tensor([6, 100, 0.5])     # ankles at x = 6 and 14: ground point x = 10
    kp[1, J["LAnkle"]] = torch.tensor([14, 100, 0.5])
    kp[2, J["Nose"]] = 0                                 # no nose: the neck, 0.875 * 64 = 56
    kp[3, [J["Nose"], J["Neck"]]] = 0                    # no head
    kp[4, J["RAnkle"]] = 0                               # one ankle: the left one at (14, 100) -> from (10, 36)
    kp[5, [J["RAnkle"], J["LAnkle"]]] = 0                # no ankle
    got = pose_height(kp)
    assert got[:3].tolist() == [64, 5, 56]
    assert math.isnan(got[3]) and math.isnan(got[5])
    assert got[4].item() == pytest.approx(math.hypot(4, 64), abs=1e-5)


# ---------------------------------------------------------------------------------------------- statistics
def test_normalization_stats_of_a_figure_at_two_depths():
    st = normalization_stats(video(*SOURCE))
    assert st == PoseStats(close_y=400, far_y=200, close_height=160, far_height=80, centre_x=64, frames=9)


def test_stats_take_the_tallest_pose_near_each_position():
    frames = [(64, 200, 72), (64, 200, 80), (64, 202, 76)] + [(64, 400, 150), (64, 399, 160), (64, 400, 140)]
    st = normalization_stats(video(*frames), percentile=0, tolerance=0.05)   # band 0.05 * median 111 > 2 px
    assert (st.far_y, st.close_y, st.far_height, st.close_height) == (200, 400, 80, 160)
    st = normalization_stats(video(*frames), percentile=0, tolerance=0)       # only frames exactly at 200 / 400
    assert (st.far_height, st.close_height) == (80, 150)


def test_percentile_ignores_a_jump_and_zero_takes_the_extremes():
    frames = [(64, 200, 80)] * 19 + [(64, 400, 160)] * 20 + [(64, 120, 80)]   # one jump, ankles up at 120
    assert normalization_stats(video(*frames)).far_y == 200
    st = normalization_stats(video(*frames), percentile=0)
    assert (st.far_y, st.far_height) == (120, 80)


def test_percentiles_are_observed_ankle_positions():
    ys = [192 + 8 * i for i in range(40)]                                # 40 distinct ankle positions
    st = normalization_stats(video(*[(64, y, 128) for y in ys]))
    # 5th percentile: rank 0.05 * 39 = 1.95 -> the lower order statistic ys[1]; 95th: 37.05 -> the upper, ys[38]
    assert (st.far_y, st.close_y) == (ys[1], ys[38])


def test_stats_errors_name_the_fix():
    kp = video(*SOURCE)
    kp[:, [J["RAnkle"], J["LAnkle"]]] = 0
    with pytest.raises(ValueError, match="no frame has a confident ankle.*feet are in the picture"):
        normalization_stats(kp)
    with pytest.raises(ValueError, match=r"percentile must be a number in \[0, 50\)"):
        normalization_stats(video(*SOURCE), percentile=50)
    with pytest.raises(ValueError, match="tolerance must be a number >= 0"):
        normalization_stats(video(*SOURCE), tolerance=-1)


# ---------------------------------------------------------------------------------------------- normalization
def _normalized(**kw) -> torch.Tensor:
    src = video(*SOURCE)
    return normalize_poses(src, normalization_stats(src), normalization_stats(video(*TARGET)), **kw)


def test_far_and_close_land_on_the_target_exactly():
    out = _normalized()
    assert out.dtype == torch.float32 and out.shape == (9, 25, 3)
    # far: ankles 200 -> 96, height 80 * (40 / 80) = 40; close: 400 -> 320, height 160 * (320 / 160) = 320
    assert torch.equal(out[0], figure(64, 96, 40))
    assert torch.equal(out[4], figure(64, 320, 320))
    assert ankle_y(out)[:8].tolist() == [96] * 4 + [320] * 4
    assert pose_height(out)[:8].tolist() == [40] * 4 + [320] * 4


def test_halfway_interpolates_position_and_scale():
    out = _normalized()
    # t = (300 - 200) / (400 - 200) = 1/2: ankles at 96 + (320 - 96) / 2 = 208, scale 0.5 + (2 - 0.5) / 2 = 1.25
    assert torch.equal(out[8], figure(64, 208, 1.25 * 120))


def test_missing_points_stay_missing_and_confidences_are_kept():
    src = video(*SOURCE)
    src[:, :, 2] = torch.linspace(0.25, 1, 25)                        # distinct confidences per joint
    src[:, ~torch.isin(torch.arange(25), torch.tensor([J[n] for n in FIGURE]))] = 0
    src[8, J["RWrist"]] = torch.tensor([0.0, 0.0, 0.0])             # one more dropout in the halfway frame
    out = normalize_poses(src, normalization_stats(src), normalization_stats(video(*TARGET)))
    missing = src[..., 2] == 0
    assert missing.sum() > 0 and (out[missing] == 0).all()
    assert torch.equal(out[..., 2], src[..., 2])


def test_horizontal_keep_or_centre():
    src = video(*SOURCE)
    out = normalize_poses(src, normalization_stats(src), normalization_stats(video(*TARGET)), horizontal="centre")
    assert torch.equal(out[0], figure(192, 96, 40))                  # ground x 64 -> 64 + (192 - 64)
    assert torch.equal(_normalized(horizontal="keep")[0, :, 0], figure(64, 96, 40)[:, 0])
    with pytest.raises(ValueError, match="horizontal must be one of"):
        _normalized(horizontal="center")


def test_centre_scales_lateral_motion_and_ignores_the_source_pixel_scale():
    src = video(*SOURCE)
    src[1, :, 0] += 16 * (src[1, :, 2] > 0)                          # a far frame stepped 16 px to the right
    st_s, st_t = normalization_stats(src), normalization_stats(video(*TARGET))
    out = normalize_poses(src, st_s, st_t, horizontal="centre")
    assert torch.equal(out[1], figure(192 + 0.5 * 16, 96, 40))       # the step scaled by s = 0.5, centre 64 -> 192
    big = src.clone()
    big[..., :2] *= 8                                                # the same video at 8x the resolution
    out_big = normalize_poses(big, normalization_stats(big), st_t, horizontal="centre")
    assert torch.allclose(out_big, out, atol=1e-4)


def test_a_frame_without_ankles_uses_the_nearest_ground_point():
    src = video(*SOURCE)
    src[5, [J["RAnkle"], J["LAnkle"]]] = 0                           # a close frame loses its feet
    out = normalize_poses(src, normalization_stats(src), normalization_stats(video(*TARGET)))
    want = figure(64, 320, 320)
    want[[J["RAnkle"], J["LAnkle"]]] = 0
    assert torch.equal(out[5], want)


def test_a_jump_extrapolates_position_but_holds_the_scale():
    src = video(*SOURCE, (64, 100, 80))                              # ankles 100 px above the far position
    stats = PoseStats(close_y=400, far_y=200, close_height=160, far_height=80, centre_x=64, frames=10)
    out = normalize_poses(src, stats, normalization_stats(video(*TARGET)))
    # t = -1/2: ankles at 96 - (320 - 96) / 2 = -16; scale held at the far ratio 0.5 (the line would give -0.25)
    assert torch.equal(out[9], figure(64, -16, 40))


def test_normalize_errors_name_the_fix():
    src = video(*SOURCE)
    flat = PoseStats(close_y=200, far_y=200, close_height=80, far_height=80, centre_x=64, frames=9)
    target = normalization_stats(video(*TARGET))
    with pytest.raises(ValueError, match="must move towards and away from the camera"):
        normalize_poses(src, flat, target)
    with pytest.raises(ValueError, match=r"compute it with normalization_stats\(keypoints\)"):
        normalize_poses(src, {"close_y": 400}, target)
    bad = PoseStats(close_y=400, far_y=200, close_height=0, far_height=80, centre_x=64, frames=9)
    with pytest.raises(ValueError, match="height <= 0.*recompute"):
        normalize_poses(src, bad, target)


# ---------------------------------------------------------------------------------------------- median filter
def _track(xs, ys=None, conf=None) -> torch.Tensor:
    """(T, 25, 3) with joint 4 (RWrist) at x = xs[t], y = ys[t] (None: missing), every other joint missing."""
    kp = torch.zeros(len(xs), 25, 3)
    for t, x in enumerate(xs):
        if x is not None:
            kp[t, 4] = torch.tensor([x, ys[t] if ys else -x, conf[t] if conf else 1.0])
    return kp


def test_median_removes_a_spike():
    out = median_filter(_track([10, 10, 10, 50, 10, 10, 10], [2, 2, 2, 2, 90, 2, 2]), 3)
    assert out[:, 4, 0].tolist() == [10] * 7 and out[:, 4, 1].tolist() == [2] * 7


def test_median_keeps_a_step_without_lag():
    xs = [0, 0, 0, 0, 8, 8, 8, 8]
    for window in (3, 5):
        assert median_filter(_track(xs), window)[:, 4, 0].tolist() == xs


def test_window_shrinks_at_the_ends():
    # a ramp: the middle frames keep their values, the first and last see 2 frames -> the mean of the two
    out = median_filter(_track([0, 4, 8, 12]), 3)
    assert out[:, 4, 0].tolist() == [2, 4, 8, 10]


def test_median_fills_dropouts_and_ignores_missing_points():
    out = median_filter(_track([10, 12, None, 14, 16], conf=[1, 0.5, None, 0.75, 1]), 3)
    assert out[:, 4, 0].tolist() == [11, 11, 13, 15, 15]                  # frames 1, 3: two confident values
    assert out[2, 4, 2].item() == 0.625                                  # median of the neighbours' 0.5, 0.75
    assert out[[0, 1, 3, 4], 4, 2].tolist() == [1, 0.5, 0.75, 1]          # confident points keep theirs
    out = median_filter(_track([10, None, 10]), 3)
    assert out[:, 4, 0].tolist() == [10, 10, 10]                          # a missing 0 is not a value
    out = median_filter(_track([1, None, None, None, 5]), 3)
    assert out[:, 4, 0].tolist() == [1, 1, 0, 5, 5]                       # frame 2 sees no confident frame
    assert out[2, 4].tolist() == [0, 0, 0]
    assert (out[:, :4] == 0).all() and (out[:, 5:] == 0).all()            # joints missing throughout stay missing


def test_window_one_is_the_identity_and_even_windows_are_rejected():
    kp = torch.rand(7, 25, 3) * 100
    kp[kp[..., 2] < 30] = 0
    assert torch.equal(median_filter(kp, 1), kp)
    with pytest.raises(ValueError, match="window must be an odd int >= 1"):
        median_filter(kp, 4)
    with pytest.raises(ValueError, match="window must be an odd int >= 1"):
        median_filter(kp, 0)


# ---------------------------------------------------------------------------------------------- JSON folders
def _write_json(path, people) -> None:
    path.write_text(json.dumps({"version": 1.3, "people": people}))


def test_json_round_trip_is_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(5, 25, 3, generator=g) * torch.tensor([640, 480, 1])
    kp[kp[..., 2] < 0.3] = 0                                             # missing points
    kp[2] = 0                                                            # an empty frame
    kp[3, :, 2] = 0                                                      # no confidence, but not all zeros
    root = write_openpose_folder(tmp_path / "json", kp, prefix="clip")
    assert sorted(p.name for p in root.iterdir())[0] == "clip_000000000000_keypoints.json"
    assert json.loads((root / "clip_000000000002_keypoints.json").read_text())["people"] == []
    back = read_openpose_folder(root)
    assert back.dtype == torch.float32 and torch.equal(back, kp)


def test_reader_takes_the_most_confident_person_and_empty_frames_are_zeros(tmp_path):
    low, high = figure(10, 100, 64, conf=0.25), figure(300, 200, 80, conf=0.75)
    high[J["Nose"]] = 0                                                  # fewer joints, still a higher mean
    _write_json(tmp_path / "v_000000000000_keypoints.json",
                [{"pose_keypoints_2d": low.flatten().tolist()}, {"pose_keypoints_2d": high.flatten().tolist()}])
    _write_json(tmp_path / "v_000000000001_keypoints.json", [])
    (tmp_path / "notes.txt").write_text("not a frame")
    back = read_openpose_folder(tmp_path)
    assert back.shape == (2, 25, 3)
    assert torch.equal(back[0], high) and torch.equal(back[1], torch.zeros(25, 3))


def test_frames_are_read_in_name_order(tmp_path):
    for t in (2, 0, 1):
        _write_json(tmp_path / f"v_{t:012d}_keypoints.json", [{"pose_keypoints_2d": [float(t)] * 75}])
    assert read_openpose_folder(tmp_path)[:, 0, 0].tolist() == [0, 1, 2]


def test_folder_errors_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: run OpenPose with --write_json"):
        read_openpose_folder(tmp_path / "nowhere")
    (tmp_path / "sub").mkdir()
    with pytest.raises(FileNotFoundError, match="pass the folder that holds the JSON files"):
        read_openpose_folder(tmp_path)


@pytest.mark.parametrize("content, match", [
    ("{\"people\": [", r"v_000000000000_keypoints\.json is not valid JSON.*re-export"),
    ("{\"version\": 1.3}", r"v_000000000000_keypoints\.json has no \"people\" list"),
    ("{\"people\": [{\"face_keypoints_2d\": []}]}", r"people\[0\] has no \"pose_keypoints_2d\""),
    ("{\"people\": [{\"pose_keypoints_2d\": " + json.dumps([1.0] * 54) + "}]}",
     r"54 pose_keypoints_2d values but BODY_25 expects 75 = 25 x 3.*COCO-18.*--model_pose BODY_25"),
    ("{\"people\": [{\"pose_keypoints_2d\": " + json.dumps(["a"] * 75) + "}]}", r"something other than numbers"),
    ("{\"people\": [{\"pose_keypoints_2d\": 3}]}", r"is a int, not a list of numbers"),
])
def test_file_errors_name_the_file_and_the_fix(tmp_path, content, match):
    (tmp_path / "v_000000000000_keypoints.json").write_text(content)
    with pytest.raises(ValueError, match=match):
        read_openpose_folder(tmp_path)


def test_writer_refuses_a_folder_with_other_frames(tmp_path):
    _write_json(tmp_path / "other_000000000000_keypoints.json", [])
    with pytest.raises(ValueError, match="write into an empty folder"):
        write_openpose_folder(tmp_path, video(*SOURCE))


# ---------------------------------------------------------------------------------------------- tensor checks
@pytest.mark.parametrize("kp, match", [
    (np.zeros((3, 25, 3)), r"torch\.as_tensor"),
    (torch.zeros(25, 3), r"\(T, 25, 3\).*kp\[None\]"),
    (torch.zeros(4, 75), r"reshape\(-1, 25, 3\)"),
    (torch.zeros(4, 18, 3), r"COCO-18.*--model_pose BODY_25"),
    (torch.zeros(2, 4, 25, 3), r"one video kp\[b\]"),
    (torch.zeros(0, 25, 3), r"T >= 1"),
    (torch.zeros(4, 25, 3, dtype=torch.int64), r"must be float.*kp\.float\(\)"),
])
def test_check_keypoints_rejects_bad_layouts(kp, match):
    with pytest.raises(ValueError, match=match):
        check_keypoints(kp)


def test_check_keypoints_rejects_nan_and_negative_confidence():
    kp = video(*SOURCE)
    check_keypoints(kp)
    bad = kp.clone()
    bad[3, 7, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf \(first in frame 3\).*x = y = c = 0"):
        check_keypoints(bad)
    bad = kp.clone()
    bad[2, 11, 2] = -0.5
    with pytest.raises(ValueError, match=r"negative confidence \(frame 2, joint 11 RAnkle\).*>= 0"):
        check_keypoints(bad)
    with pytest.raises(ValueError, match="source_kp must have shape"):
        normalize_poses(kp[0], normalization_stats(kp), normalization_stats(kp))
