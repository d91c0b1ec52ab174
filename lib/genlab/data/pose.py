"""OpenPose BODY_25 keypoints for Everybody Dance Now (Chan et al. 2019, ICCV): reading and writing OpenPose JSON
folders, the global pose normalization of Sec. 3.3 and the temporal median filter that smooths keypoints.

Keypoints of one video are a float32 tensor (T, 25, 3): per frame and joint x (pixels, right), y (pixels, down) and
the detector's confidence c; c = 0 means missing, and OpenPose writes a missing point as x = y = c = 0 (every function
here keeps it so). BODY_25 order (:data:`BODY_25`): 0 Nose, 1 Neck, 2 RShoulder, 3 RElbow, 4 RWrist, 5 LShoulder,
6 LElbow, 7 LWrist, 8 MidHip, 9 RHip, 10 RKnee, 11 RAnkle, 12 LHip, 13 LKnee, 14 LAnkle, 15 REye, 16 LEye, 17 REar,
18 LEar, 19 LBigToe, 20 LSmallToe, 21 LHeel, 22 RBigToe, 23 RSmallToe, 24 RHeel.

    kp = read_openpose_folder("~/data/source_json")            # (T, 25, 3), one *_keypoints.json per frame
    kp = median_filter(kp, 5)                                  # temporal smoothing, fills short dropouts
    moved = normalize_poses(kp, normalization_stats(kp), normalization_stats(target_kp))

**Where a figure stands.** The ground point of a frame is (x_a, f): f = :func:`ankle_y`, the lower (larger y) of the
confident ankles (11 RAnkle, 14 LAnkle), and x_a the mean x of the confident ankles. The paper uses the mean of the two
ankles; the lower one does not rise when a foot is lifted, so a kick does not move the figure's ground. The height of a
figure (:func:`pose_height`) is the Euclidean distance from its head point (the nose, or the neck where the nose is
missing) to the ground point.

**Global pose normalization (Sec. 3.3).** Source and target stand at different distances from their cameras and
differ in size, so the source's poses are moved into the target's frame before the target's generator draws them. In
each video, :func:`normalization_stats` finds the closest position (the largest ankle y, nearest the bottom of the
picture) and the farthest (the smallest), and the figure's height near each. For a source frame with ground point
(x_a, f) and the stats s_close, s_far, h_s_close, h_s_far (source) and t_close, t_far, h_t_close, h_t_far (target):

    t = (f - s_far) / (s_close - s_far)                        relative depth: 0 at the far, 1 at the close position
    b = t_far + t (t_close - t_far) - f                        vertical translation: f lands on the mapped position
    s = r_far + t' (r_close - r_far),  r_far = h_t_far / h_s_far,  r_close = h_t_close / h_s_close,
                                       t' = clamp(t, 0, 1)     scale
    x' = x_a + s (x - x_a),   y' = f + s (y - f) + b           every confident joint, scaled about the ground point

so the ground point moves to (x_a, t_far + t (t_close - t_far)) and a figure of height h becomes one of height s h.
Between the two positions this is the paper's rule exactly. Outside them (a jump lifts f above s_far; the default
stats leave 5 % of the frames beyond each end) the translation extrapolates as in the paper, but the scale is held at
its value at the nearer end: the paper's line, extrapolated, shrinks a jumping figure and can flip it (s <= 0 once
t < -r_far / (r_close - r_far)), though a jump does not change the distance to the camera. The paper maps only the
vertical position (depth); horizontally the source's ground point is kept (``horizontal="keep"``, the paper: right
for two videos of the same resolution and framing), or (``horizontal="centre"``) the source's median stance moves onto
the target's and its lateral motion is scaled like the figure, x_a' = target.centre_x + s (x_a - source.centre_x),
so every joint lands at x' = target.centre_x + s (x - source.centre_x): a source filmed at another resolution (a
real video's OpenPose keypoints against a 64x64 target) comes out the same as at the target's. A frame without a confident ankle uses the ground point of the nearest frame that
has one.

**Temporal smoothing.** :func:`median_filter` replaces x and y of every joint by their medians over a centred window
of frames, counting only the frames where that joint is confident: a one-frame spike disappears, a step stays where it
is (a median does not lag), and a short dropout is filled from its neighbours.

:func:`write_openpose_folder` writes keypoints in OpenPose's JSON format (tests, the dancers world); reading it back
gives the same tensor.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

BODY_25: tuple[str, ...] = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip", "RKnee",
    "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
    "RSmallToe", "RHeel",
)
NUM_JOINTS = len(BODY_25)
NOSE, NECK, R_ANKLE, L_ANKLE = 0, 1, 11, 14
JSON_SUFFIX = "_keypoints.json"
HORIZONTAL = ("keep", "centre")


# ---------------------------------------------------------------------------------------------- checks
def check_keypoints(kp: torch.Tensor, what: str = "keypoints") -> None:
    """Raise a ValueError naming the fix unless ``kp`` is a float tensor (T, 25, 3) (x, y, confidence; T >= 1)
    without NaN or inf and with confidences >= 0."""
    if not isinstance(kp, torch.Tensor):
        raise ValueError(f"{what} must be a torch tensor (T, 25, 3), got {type(kp).__name__}: convert it with "
                         f"torch.as_tensor(x, dtype=torch.float32)")
    shape = tuple(kp.shape)
    if kp.dim() != 3 or shape[1:] != (NUM_JOINTS, 3) or shape[0] == 0:
        if kp.dim() == 2 and shape == (NUM_JOINTS, 3):
            hint = "one frame: add the time axis with kp[None]"
        elif kp.dim() == 2 and shape[-1] == 3 * NUM_JOINTS:
            hint = "flat OpenPose rows: reshape with kp.reshape(-1, 25, 3)"
        elif kp.dim() == 3 and shape[1:] == (18, 3):
            hint = "18 joints is OpenPose's COCO-18 model: re-run OpenPose with --model_pose BODY_25"
        elif kp.dim() == 4 and shape[2:] == (NUM_JOINTS, 3):
            hint = "a batch of videos: pass one video kp[b] at a time"
        elif kp.dim() == 3 and shape[0] == 0:
            hint = "no frames"
        else:
            hint = "x, y, confidence of the 25 BODY_25 joints per frame"
        raise ValueError(f"{what} must have shape (T, 25, 3) with T >= 1, got {shape} ({hint})")
    if not kp.is_floating_point():
        raise ValueError(f"{what} must be float (x, y, confidence), got {kp.dtype}: convert with kp.float()")
    if not torch.isfinite(kp).all():
        t = int(torch.nonzero(~torch.isfinite(kp))[0, 0])
        raise ValueError(f"{what} contain NaN or inf (first in frame {t}): mark a missing point as x = y = c = 0 "
                         f"(OpenPose's convention) instead")
    if (kp[..., 2] < 0).any():
        t, j = (int(i) for i in torch.nonzero(kp[..., 2] < 0)[0])
        raise ValueError(f"{what} have a negative confidence (frame {t}, joint {j} {BODY_25[j]}): confidences must "
                         f"be >= 0, with 0 for a missing point")


# ---------------------------------------------------------------------------------------------- where a figure stands
def _ground_point(kp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_a, f), each (T,) float64: the mean x of the confident ankles and the larger y of them (module doc); NaN
    where neither ankle is confident."""
    ank = kp[:, [R_ANKLE, L_ANKLE]].double()                          # (T, 2, 3)
    ok = ank[..., 2] > 0
    n = ok.sum(1)
    nan = torch.full_like(ank[:, 0, 0], float("nan"))
    x = torch.where(n > 0, torch.where(ok, ank[..., 0], 0.0).sum(1) / n.clamp(min=1), nan)
    y = torch.where(ok, ank[..., 1], -float("inf")).amax(1)
    return x, torch.where(n > 0, y, nan)


def ankle_y(keypoints: torch.Tensor) -> torch.Tensor:
    """(T, 25, 3) -> (T,) float32: per frame the lower (larger y) of the confident ankles' y (11 RAnkle, 14 LAnkle),
    NaN where neither ankle is confident."""
    check_keypoints(keypoints)
    return _ground_point(keypoints)[1].float()


def _height(kp: torch.Tensor) -> torch.Tensor:
    """(T,) float64: the module doc's height, NaN where the head point or the ground point is missing."""
    x_a, f = _ground_point(kp)
    kp = kp.double()
    nose_ok = kp[:, NOSE, 2] > 0
    head = torch.where(nose_ok[:, None], kp[:, NOSE, :2], kp[:, NECK, :2])
    head_ok = nose_ok | (kp[:, NECK, 2] > 0)
    h = torch.hypot(head[:, 0] - x_a, head[:, 1] - f)                  # NaN where the ground point is
    return torch.where(head_ok, h, torch.full_like(h, float("nan")))


def pose_height(keypoints: torch.Tensor) -> torch.Tensor:
    """(T, 25, 3) -> (T,) float32: per frame the Euclidean distance from the head point to the ground point, in
    pixels. Head point: the nose, or the neck where the nose is missing (the neck sits lower, so such a frame measures
    less; normalization_stats takes maxima, which prefer frames with the nose). Ground point: (mean x of the confident
    ankles, :func:`ankle_y`). NaN where neither nose nor neck, or neither ankle, is confident."""
    check_keypoints(keypoints)
    return _height(keypoints).float()


# ---------------------------------------------------------------------------------------------- normalization
@dataclass(frozen=True)
class PoseStats:
    """What the global pose normalization needs of one video (pixels; :func:`normalization_stats`).

    close_y / far_y: the ankle y (:func:`ankle_y`) of the closest / farthest position (close_y >= far_y);
    close_height / far_height: the figure's height (:func:`pose_height`) near each; centre_x: the median x of the
    ground point (``horizontal="centre"`` in :func:`normalize_poses`); frames: the frames with a confident ankle.
    """
    close_y: float
    far_y: float
    close_height: float
    far_height: float
    centre_x: float
    frames: int


def normalization_stats(keypoints: torch.Tensor, *, percentile: float = 5.0, tolerance: float = 0.05) -> PoseStats:
    """The :class:`PoseStats` of one video, keypoints (T, 25, 3).

    Over the frames with a confident ankle (f = :func:`ankle_y`):

        far_y   = the ``percentile``-th percentile of f        (the lower order statistic: an observed value)
        close_y = the (100 - ``percentile``)-th percentile of f (the upper order statistic)
        far_height   = max { h_i : |f_i - far_y|   <= tolerance * median(h) }     h = :func:`pose_height`
        close_height = max { h_i : |f_i - close_y| <= tolerance * median(h) }

    ``percentile=0`` gives the paper's rule for the positions (Sec. 3.3: the minimum and maximum ankle positions);
    the default 5 ignores the extreme 5 % at each end, such as jumps (tiny f) or a mis-detected foot. (Public
    reimplementations skip jumps differently: the far position is the largest of a cluster of ankle positions below
    the median.) The heights are the paper's "maximum height near each position"; ``tolerance`` is a fraction
    of the video's median figure height.
    """
    check_keypoints(keypoints)
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 <= percentile < 50:
        raise ValueError(f"percentile must be a number in [0, 50), got {percentile!r} (0: min and max ankle y)")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0 (a fraction of the median figure height), got "
                         f"{tolerance!r}")
    x_a, f = (v.numpy() for v in _ground_point(keypoints))
    h = _height(keypoints).numpy()
    ok = np.isfinite(f)
    if not ok.any():
        raise ValueError("no frame has a confident ankle (joints 11 RAnkle, 14 LAnkle): the normalization places a "
                         "figure by its ankles; use a video whose feet are in the picture")
    if not np.isfinite(h).any():
        raise ValueError("no frame has a confident head (nose or neck) and ankle: the figure's height cannot be "
                         "measured; use a video where the whole figure is visible")
    far_y = float(np.percentile(f[ok], percentile, method="lower"))
    close_y = float(np.percentile(f[ok], 100 - percentile, method="higher"))
    band = tolerance * float(np.nanmedian(h))

    def height_near(y: float, name: str) -> float:
        near = np.isfinite(h) & (np.abs(f - y) <= band)
        if not near.any():
            raise ValueError(f"no frame near the {name} position (ankle y = {y:g}) has a measurable height (confident "
                             f"nose or neck and ankle): raise tolerance (now {tolerance:g})")
        return float(h[near].max())

    return PoseStats(close_y=close_y, far_y=far_y, close_height=height_near(close_y, "close"),
                     far_height=height_near(far_y, "far"), centre_x=float(np.median(x_a[ok])), frames=int(ok.sum()))


def _fill_nearest(v: torch.Tensor) -> torch.Tensor:
    """(T,) with NaNs -> each NaN replaced by the value of the nearest finite entry (the earlier one on ties)."""
    idx = torch.nonzero(torch.isfinite(v))[:, 0]                      # frames with a value, ascending
    t = torch.arange(len(v))
    pos = torch.searchsorted(idx, t)                                   # idx[pos - 1] < t <= idx[pos]
    before = idx[(pos - 1).clamp(min=0)]
    after = idx[pos.clamp(max=len(idx) - 1)]
    use_before = (pos > 0) & ((pos == len(idx)) | (t - before <= after - t))
    return v[torch.where(use_before, before, after)]


def normalize_poses(source_kp: torch.Tensor, source_stats: PoseStats, target_stats: PoseStats, *,
                    horizontal: str = "keep") -> torch.Tensor:
    """The global pose normalization (Sec. 3.3, module doc): source keypoints (T, 25, 3) -> (T, 25, 3) float32 in the
    target video's frame. Every confident joint is scaled by s about the frame's ground point (x_a, f) and moved by
    b vertically, so the ground point lands on t_far + t (t_close - t_far); ``horizontal="centre"`` places x at
    target.centre_x + s (x - source.centre_x) instead (the median stance onto the target's, lateral motion scaled by
    s: invariant to the source's pixel scale). The scale holds at the nearer end outside [far_y, close_y] of the source.
    Confidences are kept; missing points (c = 0) come out as (0, 0, 0)."""
    check_keypoints(source_kp, "source_kp")
    for name, st in (("source_stats", source_stats), ("target_stats", target_stats)):
        if not isinstance(st, PoseStats):
            raise ValueError(f"{name} must be a PoseStats, got {type(st).__name__}: compute it with "
                             f"normalization_stats(keypoints)")
        if not all(np.isfinite([st.close_y, st.far_y, st.close_height, st.far_height, st.centre_x])):
            raise ValueError(f"{name} holds NaN or inf ({st}): recompute it with normalization_stats(keypoints)")
        if not (st.close_height > 0 and st.far_height > 0):
            raise ValueError(f"{name} has a height <= 0 (close {st.close_height:g}, far {st.far_height:g}): recompute "
                             f"it with normalization_stats on a video where the figure stands upright")
    if horizontal not in HORIZONTAL:
        raise ValueError(f"horizontal must be one of {HORIZONTAL}, got {horizontal!r}")
    s_close, s_far = source_stats.close_y, source_stats.far_y
    t_close, t_far = target_stats.close_y, target_stats.far_y
    if not s_close > s_far:
        raise ValueError(f"the source's closest and farthest ankle positions coincide (y = {s_far:g}): the "
                         f"normalization interpolates between two depths, so the source person must move towards "
                         f"and away from the camera (or lower percentile in normalization_stats)")
    x_a, f = _ground_point(source_kp)
    if not torch.isfinite(f).any():
        raise ValueError("no frame of source_kp has a confident ankle (joints 11 RAnkle, 14 LAnkle): the "
                         "normalization places a figure by its ankles")
    x_a, f = _fill_nearest(x_a), _fill_nearest(f)
    t = (f - s_far) / (s_close - s_far)                                # relative depth, 0 far .. 1 close
    ground = t_far + t * (t_close - t_far)                             # mapped ankle y; b = ground - f
    r_far = target_stats.far_height / source_stats.far_height
    r_close = target_stats.close_height / source_stats.close_height
    s = r_far + t.clamp(0, 1) * (r_close - r_far)                      # s = h_t_far/h_s_far + t' (r_close - r_far)
    kp = source_kp.double()
    if horizontal == "centre":
        x = target_stats.centre_x + s[:, None] * (kp[..., 0] - source_stats.centre_x)  # x' = c_t + s (x - c_s)
    else:
        x = x_a[:, None] + s[:, None] * (kp[..., 0] - x_a[:, None])                   # x' = x_a + s (x - x_a)
    y = ground[:, None] + s[:, None] * (kp[..., 1] - f[:, None])          # y' = f + s (y - f) + b
    ok = kp[..., 2] > 0
    out = torch.stack([torch.where(ok, x, 0.0), torch.where(ok, y, 0.0), kp[..., 2]], -1)
    return out.float()


# ---------------------------------------------------------------------------------------------- temporal smoothing
def median_filter(keypoints: torch.Tensor, window: int) -> torch.Tensor:
    """Temporal median filter: (T, 25, 3) -> (T, 25, 3) float32.

    For frame i and joint j, x and y each become the median over the frames k in [i - r, i + r] (r = window // 2;
    the window shrinks at the ends of the video, nothing is replicated) where joint j is confident; with an even
    number of such frames, the mean of the two middle values. x and y are filtered separately. A confident point
    keeps its confidence; a missing point with confident points in its window is filled and gets the median of
    their confidences; a point missing in its whole window stays (0, 0, 0). ``window`` is an odd int >= 1; 1 returns
    the keypoints unchanged.
    """
    check_keypoints(keypoints)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd int >= 1 (frames, centred on each frame), got {window!r}: use "
                         f"window + 1 for an even one")
    if window == 1:
        return keypoints.float().clone()
    r = window // 2
    kp = keypoints.double()
    ok = kp[..., 2:3] > 0
    vals = torch.where(ok, kp, float("nan"))                           # (T, 25, 3), NaN where missing
    pad = torch.full((r, *vals.shape[1:]), float("nan"), dtype=vals.dtype)
    win = torch.cat([pad, vals, pad]).unfold(0, window, 1)             # (T, 25, 3, window); padding = shrinking
    srt = win.sort(-1).values                                          # NaN sorts last
    n = (~torch.isnan(win)).sum(-1, keepdim=True)                      # confident frames in the window
    lo = srt.gather(-1, ((n - 1) // 2).clamp(min=0))
    hi = srt.gather(-1, (n // 2).clamp(max=window - 1))
    med = ((lo + hi) / 2)[..., 0]                                      # median of the confident values
    filled = n[..., 0] > 0
    out = torch.where(filled, med, 0.0)
    out[..., 2] = torch.where(ok[..., 0], kp[..., 2], out[..., 2])     # confident points keep their confidence
    return out.float()


# ---------------------------------------------------------------------------------------------- OpenPose JSON folders
_RERUN = "re-run OpenPose with --model_pose BODY_25 --write_json"


def _person(path: Path, k: int, person) -> np.ndarray:
    """One entry of "people" -> (25, 3) float32, or a ValueError naming the file."""
    if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
        raise ValueError(f"{path}: people[{k}] has no \"pose_keypoints_2d\" list: expected OpenPose's format "
                         f"{{\"people\": [{{\"pose_keypoints_2d\": [x0, y0, c0, ...]}}]}}; {_RERUN}")
    values = person["pose_keypoints_2d"]
    if not isinstance(values, list):
        raise ValueError(f"{path}: people[{k}].pose_keypoints_2d is a {type(values).__name__}, not a list of numbers; "
                         f"{_RERUN}")
    if len(values) != 3 * NUM_JOINTS:
        hint = " (54 = 18 x 3 is OpenPose's COCO-18 model)" if len(values) == 54 else ""
        raise ValueError(f"{path}: people[{k}] has {len(values)} pose_keypoints_2d values but BODY_25 expects "
                         f"75 = 25 x 3 (x, y, confidence){hint}; {_RERUN}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{path}: people[{k}].pose_keypoints_2d holds something other than numbers; {_RERUN}")
    return np.asarray(values, dtype=np.float32).reshape(NUM_JOINTS, 3)


def _read_frame(path: Path) -> np.ndarray:
    """One *_keypoints.json -> (25, 3) float32: the person with the highest mean confidence, zeros if none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}): re-export that frame with OpenPose or remove the "
                         f"file") from None
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise ValueError(f"{path} has no \"people\" list: expected OpenPose's format {{\"people\": "
                         f"[{{\"pose_keypoints_2d\": [...]}}]}}; {_RERUN}")
    people = [_person(path, k, p) for k, p in enumerate(data["people"])]
    if not people:
        return np.zeros((NUM_JOINTS, 3), np.float32)
    return max(people, key=lambda p: float(p[:, 2].mean()))          # max keeps the first of equals


def list_openpose_folder(root: str | Path) -> list[Path]:
    """The ``*_keypoints.json`` files directly in ``root``, sorted by name (= frame order: OpenPose numbers them
    with 12 zero-padded digits); a clear error if the folder is missing or holds none."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"keypoint folder {root} does not exist: run OpenPose with --write_json {root} "
                                f"(one <name>_<frame>{JSON_SUFFIX} per frame) and pass that folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name.endswith(JSON_SUFFIX))
    if not files:
        nested = any(p.is_dir() for p in root.iterdir())
        hint = " (it has sub-folders: pass the folder that holds the JSON files)" if nested else ""
        raise FileNotFoundError(f"no *{JSON_SUFFIX} files in {root}{hint}: run OpenPose with --write_json on the "
                                f"video and pass its output folder")
    return files


def read_openpose_folder(root: str | Path) -> torch.Tensor:
    """A folder of OpenPose JSON files (one ``*_keypoints.json`` per frame, sorted by name) -> (T, 25, 3) float32
    BODY_25 keypoints. Per frame the person with the highest mean confidence over the 25 joints (the first of equals);
    a frame without people is all zeros (every point missing)."""
    frames = [_read_frame(p) for p in list_openpose_folder(root)]
    return torch.from_numpy(np.stack(frames))


def write_openpose_folder(root: str | Path, keypoints: torch.Tensor, prefix: str = "frame") -> Path:
    """Write keypoints (T, 25, 3) as ``root/<prefix>_<t:012d>_keypoints.json`` in OpenPose's format, one person per
    frame (none where the frame is all zeros); :func:`read_openpose_folder` reads back the same float32 tensor.
    Returns ``root``."""
    check_keypoints(keypoints)
    if not isinstance(prefix, str) or not prefix or "/" in prefix or os.sep in prefix:
        raise ValueError(f"prefix must be a non-empty file name part, got {prefix!r}")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    names = [f"{prefix}_{t:012d}{JSON_SUFFIX}" for t in range(len(keypoints))]
    stray = sorted(p.name for p in root.glob(f"*{JSON_SUFFIX}") if p.name not in set(names))
    if stray:
        raise ValueError(f"{root} already holds other keypoint files ({stray[0]}, ...) that a reader would take as "
                         f"frames: write into an empty folder")
    kp = keypoints.detach().cpu().float().numpy()
    for name, frame in zip(names, kp):
        people = [] if not frame.any() else \
            [{"person_id": [-1], "pose_keypoints_2d": [float(v) for v in frame.reshape(-1)]}]
        tmp = root / (name + ".tmp")                                   # never a name the reader takes
        tmp.write_text(json.dumps({"version": 1.3, "people": people}), encoding="utf-8")
        os.replace(tmp, root / name)
    return root
