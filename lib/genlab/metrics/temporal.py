"""Temporal metrics of generated clips: is it the same object in every frame, does it move like the real thing, does
it move at all, does it stay sharp past the training length, does it loop? (Notebooks 07-10.)

All functions take clips (B, T, C, H, W) in [0, 1] (and, where named, a classifier module passed in); none trains
or loads anything.

* :func:`centroids` -- the intensity-weighted centre of every frame (x, y) in pixels: a tracker for one bright object
  on black (moving digits).
* :func:`motion_stats` / :func:`motion_error` -- mean speed |c_{t+1} - c_t| and mean acceleration
  |c_{t+1} - 2 c_t + c_{t-1}| of the tracked centre; a bouncing digit has constant speed and zero acceleration except
  at bounces. motion_error = (|speed_f - speed_r| + |accel_f - accel_r|) / speed_r: 0 for matching statistics, 1 for
  clips that stand still.
* :func:`frozen_fraction` -- the share of clips whose mean absolute frame-to-frame change is below ``tol``.
* :func:`crop_objects` / :func:`frame_predictions` / :func:`identity_coherency` -- a classifier (e.g. the shipped
  digit classifier) reads the object around each frame's centre; coherency = the mean share of a clip's frames whose
  label is the clip's most common label (1: the identity never changes; empty frames never count).
* :func:`per_frame_confidence` -- the classifier's mean confidence at each frame index (T,): quality against time,
  for drift past the training length.
* :func:`loop_score` -- the largest mean cosine similarity between frames ``lag >= min_lag`` apart (mean-subtracted):
  near 1 for a clip that repeats itself or stands still, lower for one that keeps moving on.

With a flow field (genlab.nn.warp convention: backward, in pixels) and occlusion masks (B, T, 1, H, W), for
conditional video synthesis (notebooks 08-10):

* :func:`warp_error` -- temporal warping error (Lai et al. 2018): the mean over t >= 1 and visible pixels of
  |x_t - warp(x_{t-1}, flow_t)|, flow the *real* video's flow. A video that moves like the real one scores near the
  real video's own (interpolation) floor; flicker, crawling texture and changing colours raise it.
* :func:`flicker` -- the warping error of the frames box-blurred 7x7: colour and brightness changes of whole
  regions, insensitive to fine texture.
* :func:`tof` -- tOF (Chu et al. 2020, TecoGAN): the mean |OF(x_{t-1}, x_t) - OF(r_{t-1}, r_t)| between the optical
  flow of the generated and of the real video, both estimated by OpenCV's Farneback (no learnt weights), in pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.inference import batched
from genlab.nn.warp import warp_video
from genlab.tensors import check_video


def centroids(clips: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, 2) intensity-weighted centre (x, y) per frame (channels summed); a black frame gives
    the frame's centre."""
    check_video(clips, "centroids")
    m = clips.float().sum(2)                                                     # (B, T, H, W)
    h, w = m.shape[-2:]
    ys, xs = torch.arange(h, dtype=m.dtype), torch.arange(w, dtype=m.dtype)
    mass = m.sum((-2, -1))
    cx = (m.sum(-2) * xs).sum(-1) / mass.clamp_min(eps)
    cy = (m.sum(-1) * ys).sum(-1) / mass.clamp_min(eps)
    empty = mass < eps
    cx, cy = torch.where(empty, (w - 1) / 2, cx), torch.where(empty, (h - 1) / 2, cy)
    return torch.stack([cx, cy], -1)


def motion_stats(clips: torch.Tensor) -> dict[str, float]:
    """{"speed": mean |c_{t+1} - c_t|, "accel": mean |c_{t+1} - 2 c_t + c_{t-1}|} of the tracked centres (pixels per
    frame and per frame^2), over every clip and frame. Needs T >= 3."""
    c = centroids(clips)
    if c.shape[1] < 3:
        raise ValueError(f"motion statistics need at least 3 frames, got {c.shape[1]}")
    v = c[:, 1:] - c[:, :-1]
    a = v[:, 1:] - v[:, :-1]
    return {"speed": float(v.norm(dim=-1).mean()), "accel": float(a.norm(dim=-1).mean())}


def motion_error(fake: torch.Tensor, real: torch.Tensor) -> float:
    """(|speed_f - speed_r| + |accel_f - accel_r|) / speed_r between two clip sets (see the module doc)."""
    f, r = motion_stats(fake), motion_stats(real)
    if r["speed"] <= 0:
        raise ValueError("the reference clips do not move: motion error is measured against moving clips")
    return (abs(f["speed"] - r["speed"]) + abs(f["accel"] - r["accel"])) / r["speed"]


def frozen_fraction(clips: torch.Tensor, tol: float = 2e-3) -> float:
    """Share of clips whose mean |x_{t+1} - x_t| (over pixels and frames, values in [0, 1]) is below ``tol``."""
    check_video(clips, "frozen_fraction")
    change = (clips[:, 1:] - clips[:, :-1]).abs().float().mean((1, 2, 3, 4))
    return float((change < tol).float().mean())


def crop_objects(clips: torch.Tensor, window: int, out: int = 28) -> torch.Tensor:
    """The ``window`` x ``window`` square around each frame's centre (clamped inside the frame), resized to ``out``:
    (B, T, C, H, W) -> (B, T, C, out, out). For moving digits the window is the sprite size."""
    check_video(clips, "crop_objects")
    b, t, c, h, w = clips.shape
    if not 1 <= window <= min(h, w):
        raise ValueError(f"window must be in [1, {min(h, w)}], got {window}")
    ctr = centroids(clips).round().long()                                      # (B, T, 2)
    x0 = (ctr[..., 0] - window // 2).clamp(0, w - window)
    y0 = (ctr[..., 1] - window // 2).clamp(0, h - window)
    r = torch.arange(window)
    rows = (y0[..., None] + r)[..., :, None]                                    # (B, T, win, 1)
    cols = (x0[..., None] + r)[..., None, :]                                    # (B, T, 1, win)
    bi, ti = torch.arange(b)[:, None, None, None], torch.arange(t)[None, :, None, None]
    crops = clips.permute(0, 1, 3, 4, 2)[bi, ti, rows, cols]                    # (B, T, win, win, C)
    crops = crops.permute(0, 1, 4, 2, 3).flatten(0, 1).float()
    if window != out:
        crops = F.interpolate(crops, size=(out, out), mode="bilinear", align_corners=False)
    return crops.view(b, t, c, out, out)


@torch.no_grad()
def frame_predictions(classifier: nn.Module, clips: torch.Tensor, window: int, *, min_ink: float = 0.02,
                      batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's label and confidence (max softmax) for the object in every frame -> (B, T) int64, (B, T).

    A frame whose crop holds almost nothing (mean intensity below ``min_ink``; a real 14-px digit's crop averages
    about 0.1) shows no object: label -1, confidence 0 -- classifiers are often confident on a black square.
    """
    crops = crop_objects(clips, window).flatten(0, 1)
    probs = batched(lambda x: torch.softmax(classifier(x).float(), 1), crops, batch_size=batch_size, module=classifier)
    conf, label = probs.max(1)
    empty = crops.mean((1, 2, 3)) < min_ink
    label, conf = torch.where(empty, -1, label), torch.where(empty, 0.0, conf)
    return label.view(clips.shape[:2]), conf.view(clips.shape[:2])


def identity_coherency(labels: torch.Tensor) -> float:
    """Mean over clips of the share of frames whose label is the clip's most common one; labels (B, T), -1 = no
    object (never coherent: a clip of empty frames scores 0)."""
    mode = labels.mode(dim=1).values
    return float(((labels == mode[:, None]) & (labels >= 0)).float().mean())


def per_frame_confidence(confidence: torch.Tensor) -> torch.Tensor:
    """(B, T) confidences -> (T,) mean confidence at each frame index."""
    return confidence.float().mean(0)


def loop_score(clips: torch.Tensor, min_lag: int = 4) -> float:
    """max over lags in [min_lag, T - 1] of the mean cosine similarity of mean-subtracted frames lag apart."""
    check_video(clips, "loop_score")
    t = clips.shape[1]
    if not 1 <= min_lag < t:
        raise ValueError(f"min_lag must be in [1, T - 1 = {t - 1}], got {min_lag}")
    x = clips.flatten(2).float()
    x = x - x.mean(2, keepdim=True)
    x = x / x.norm(dim=2, keepdim=True).clamp_min(1e-8)                          # unit frames
    return max(float((x[:, lag:] * x[:, :-lag]).sum(2).mean()) for lag in range(min_lag, t))


def _visible_mean(err: torch.Tensor, visible: torch.Tensor) -> float:
    return float((err * visible).sum() / (visible.sum() * err.shape[-3]).clamp_min(1.0))


def warp_error(clips: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor) -> float:
    """clips (B, T, C, H, W) in [0, 1]; flow (B, T, 2, H, W) of the real video; occlusion (B, T, 1, H, W) (1 = not
    visible in frame t - 1) -> mean |x_t - warp(x_{t-1}, flow_t)| over t >= 1 and visible pixels."""
    check_video(clips, "warp_error clips")
    predicted = warp_video(clips.float(), flow.float())               # (B, T - 1, C, H, W): predictions of x_1..
    return _visible_mean((clips[:, 1:].float() - predicted).abs(), 1 - occlusion[:, 1:].float())


def warp_error_per_frame(clips: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor) -> torch.Tensor:
    """As :func:`warp_error`, per frame index t = 1..T-1: (T - 1,)."""
    predicted = warp_video(clips.float(), flow.float())
    err, vis = (clips[:, 1:].float() - predicted).abs(), 1 - occlusion[:, 1:].float()
    return (err * vis).sum((0, 2, 3, 4)) / (vis.sum((0, 2, 3, 4)) * clips.shape[2]).clamp_min(1.0)


def flicker(clips: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor, block: int = 7) -> float:
    """:func:`warp_error` of the clips box-blurred block x block (stride 1, so the blur commutes with the motion; a
    pixel counts as visible only if its whole box is, and lies inside the image): region-level colour/brightness flicker, blind to fine texture."""
    b, t = clips.shape[:2]

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(v.flatten(0, 1).float(), block, 1, block // 2, count_include_pad=False).unflatten(0, (b, t))

    m = block // 2
    occ = F.max_pool2d(occlusion.flatten(0, 1).float(), block, 1, m).unflatten(0, (b, t))
    border = torch.ones_like(occ)
    border[..., m:occ.shape[-2] - m, m:occ.shape[-1] - m] = 0          # boxes cut by the image border
    return warp_error(blur(clips), flow, torch.maximum(occ, border))


def farneback_flow(clips: torch.Tensor) -> torch.Tensor:
    """Backward optical flow of each frame to the previous one, estimated by OpenCV's Farneback method on grey frames:
    clips (B, T, C, H, W) in [0, 1] -> (B, T, 2, H, W) in pixels (flow[:, 0] = 0), genlab.nn.warp convention."""
    import cv2
    import numpy as np

    check_video(clips, "farneback_flow clips")
    grey = clips.float().mean(2).clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()   # (B, T, H, W)
    out = np.zeros((*grey.shape[:2], 2, *grey.shape[2:]), np.float32)
    for i in range(grey.shape[0]):
        for t in range(1, grey.shape[1]):
            # flow from frame t to frame t - 1: cur(p) ~ prev(p + f(p))
            f = cv2.calcOpticalFlowFarneback(grey[i, t], grey[i, t - 1], None, 0.5, 3, 9, 3, 5, 1.1, 0)
            out[i, t] = f.transpose(2, 0, 1)
    return torch.from_numpy(out)


def tof(clips: torch.Tensor, real: torch.Tensor) -> float:
    """tOF: mean over t >= 1 and pixels of |OF(x) - OF(r)| (end-point distance, pixels) with :func:`farneback_flow`;
    clips and real (B, T, C, H, W) in [0, 1]. 0 when the generated video moves exactly as the real one."""
    f, r = farneback_flow(clips), farneback_flow(real)
    return float((f[:, 1:] - r[:, 1:]).norm(dim=2).mean())
