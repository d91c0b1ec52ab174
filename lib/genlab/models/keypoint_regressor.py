"""A small CNN that reads the 25 OpenPose BODY_25 keypoints of a dancer back from a frame: the pose ruler of notebook
10 (Everybody Dance Now), the role genlab.models.face_regressor plays for faces.

Use: measure the pose of *generated* frames -- a pose-to-video network is told to draw a pose; the ruler reads the
pose it drew, and :func:`keypoint_error` / :func:`pck` against the driving pose say how well it obeyed (Chan et al.
2019 score their transfer the same way, with OpenPose as the ruler). Trained on the procedural dancers world
(genlab.worlds.dancers, whose keypoints are exact) by the zoo recipe ``keypoint_regressor`` (genlab.zoo.dancers).

Coordinates. The net works in *normalized* coordinates of the frame: u = 2 x / W - 1, v = 2 y / H - 1 for a point
(x, y) in pixels (x right, y down, pixel (i, j) covering [j, j + 1) x [i, i + 1)), so (-1, -1) is the top-left corner
of the frame, (1, 1) the bottom-right one, whatever the frame's size (:func:`to_pixels` maps back).

Architecture (heatmaps + soft-argmax, "integral regression", Sun et al. 2018, "Integral Human Pose Regression"):

* trunk: 3x3 conv + batch norm + ReLU blocks; three of them with stride 2 (R -> R/2 -> R/4 -> R/8), widths
  ``channels = (c1, c2, c3, c4)`` at R, R/2, R/4, R/8, the last block at R/8 dilated x2 (receptive field ~90 pixels
  at the heatmaps: the whole figure at 64x64, which the net needs to tell a wrist from an ankle, right from left);
* the R/8 features are upsampled x2,
  projected to c3 by a 1x1 conv and added to the R/4 features, then one more 3x3 conv block and a 1x1 conv give one
  heatmap of logits per keypoint, L (B, K, h, w) with (h, w) = R / 4;
* soft-argmax (:func:`soft_argmax`): p = softmax(L) over the h w cells, and the keypoint is the expectation of the cell
  centres under p,

      u_k = sum_ij p_kij (2 j + 1) / w - 1,        v_k = sum_ij p_kij (2 i + 1) / h - 1,

  differentiable, and sub-cell precise (a 16x16 heatmap locates to a fraction of its 4-pixel cells); the estimate
  lies in the hull of the cell centres, [-1 + 1/w, 1 - 1/w] (half a cell, 2 pixels at 64x64, short of the edges);
* visibility: global average pooling of the R/8 features and one linear layer, a logit per keypoint (is the point
  inside the frame -- the world's confidence, 1 inside and 0 outside).

Output (B, K, 3): u, v in [-1, 1] and the visibility logit. Inputs of another size than ``config.resolution`` are
resized to it first (bilinear, antialiased when shrinking), which leaves normalized coordinates unchanged.

Measures, in pixels: :func:`keypoint_error` (mean Euclidean distance over the keypoints the truth marks visible) and
:func:`pck` (the Percentage of Correct Keypoints: the share of visible true keypoints within alpha times the figure's
height, :func:`figure_height` = the vertical extent of the visible true keypoints unless a height is given).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: keypoints of OpenPose's BODY_25 model (genlab.worlds.dancers.N_KEYPOINTS; a test keeps the two equal)
N_KEYPOINTS = 25


def _int_pair(v, what: str) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    ok = isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool)
                                                               for s in v)
    if not ok or min(v) < 16 or any(s % 8 for s in v):
        raise ValueError(f"{what} must be (H, W): two ints >= 16 and multiples of 8 (or one int for a square), "
                         f"e.g. (64, 64), got {v!r}")
    return int(v[0]), int(v[1])


@dataclass(frozen=True)
class KeypointRegressorConfig:
    """resolution: (H, W) the net runs at (an int means a square; other inputs are resized to it); multiples of 8 so
    that the heatmaps are exactly (H / 4, W / 4). channels: widths of the four stages (R, R/2, R/4, R/8).
    num_keypoints: K, the heatmaps (25: OpenPose BODY_25)."""

    resolution: tuple[int, int] = (64, 64)
    channels: tuple[int, int, int, int] = (16, 32, 64, 96)
    num_keypoints: int = N_KEYPOINTS

    def __post_init__(self):
        object.__setattr__(self, "resolution", _int_pair(self.resolution, "resolution"))
        ch = self.channels
        if not (isinstance(ch, (tuple, list)) and len(ch) == 4
                and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in ch)):
            raise ValueError(f"channels must be four ints >= 1 (widths at R, R/2, R/4, R/8), got {ch!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in ch))
        k = self.num_keypoints
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"num_keypoints must be an int >= 1 (25 for BODY_25), got {k!r}")


def _conv_bn(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Spatial softmax expectation: logits (B, K, h, w) -> (B, K, 2) normalized (u, v) in [-1, 1].

    p = softmax of each map over its h w cells; u = sum p_ij (2 j + 1) / w - 1 and v = sum p_ij (2 i + 1) / h - 1,
    the expected cell centre (cell (i, j) covers [j, j + 1) x [i, i + 1) of the map, its centre maps to the pixel
    centre convention of the frame). A one-hot p gives exactly that cell's centre; a blob symmetric about a point
    gives that point, if the blob fits inside the map."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.dim() != 4 or not heatmaps.is_floating_point():
        got = f"shape {tuple(heatmaps.shape)}" if isinstance(heatmaps, torch.Tensor) else type(heatmaps).__name__
        raise ValueError(f"soft_argmax expects float heatmap logits of shape (B, K, h, w), got {got}")
    b, k, h, w = heatmaps.shape
    p = torch.softmax(heatmaps.float().flatten(2), dim=-1).view(b, k, h, w)
    us = (2 * torch.arange(w, device=p.device, dtype=p.dtype) + 1) / w - 1
    vs = (2 * torch.arange(h, device=p.device, dtype=p.dtype) + 1) / h - 1
    u = (p.sum(2) * us).sum(-1)                                              # marginal over rows, then E[u]
    v = (p.sum(3) * vs).sum(-1)
    return torch.stack([u, v], -1)


class KeypointRegressor(nn.Module):
    """x: (B, 3, H, W) in [0, 1], H, W >= 16 (resized to config.resolution) -> (B, K, 3): normalized (u, v) in
    [-1, 1] of the frame's width and height (:func:`to_pixels`) and a visibility logit (sigmoid: the probability that
    the keypoint is inside the frame). :meth:`heatmaps` gives the logit maps the coordinates are read from."""

    def __init__(self, config: KeypointRegressorConfig | None = None):
        super().__init__()
        self.config = cfg = config or KeypointRegressorConfig()
        c1, c2, c3, c4 = cfg.channels
        self.stem = nn.Sequential(_conv_bn(3, c1), _conv_bn(c1, c2, 2), _conv_bn(c2, c2))      # R -> R/2
        self.down4 = nn.Sequential(_conv_bn(c2, c3, 2), _conv_bn(c3, c3))                     # R/2 -> R/4
        self.down8 = nn.Sequential(_conv_bn(c3, c4, 2), _conv_bn(c4, c4), _conv_bn(c4, c4, dilation=2))  # R/8
        self.lateral = nn.Conv2d(c4, c3, 1)                                                   # R/8 up -> R/4
        self.fuse = _conv_bn(c3, c3)
        self.to_heatmaps = nn.Conv2d(c3, cfg.num_keypoints, 1)
        self.visibility = nn.Linear(c4, cfg.num_keypoints)
        nn.init.zeros_(self.to_heatmaps.weight)            # start from flat maps: every keypoint at the centre
        nn.init.zeros_(self.to_heatmaps.bias)

    def _check(self, x: torch.Tensor) -> None:
        if (not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point()
                or min(x.shape[2:]) < 16):
            got = f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            hint = " (a video is (B, T, 3, H, W): fold time into the batch first)" if isinstance(x, torch.Tensor) \
                and x.dim() == 5 else ""
            raise ValueError(f"KeypointRegressor expects float RGB frames of shape (B, 3, H, W), H, W >= 16, in "
                             f"[0, 1], got {got}{hint}")

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        x = resize(x, self.config.resolution)
        f4 = self.down4(self.stem(x * 2 - 1))
        f8 = self.down8(f4)
        up = F.interpolate(self.lateral(f8), size=f4.shape[-2:], mode="bilinear", align_corners=False)
        return self.to_heatmaps(self.fuse(f4 + up)), f8

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> heatmap logits (B, K, R_H / 4, R_W / 4) (softmax them for the distributions)."""
        return self._trunk(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps, f8 = self._trunk(x)
        logit = self.visibility(f8.mean(dim=(2, 3)))
        return torch.cat([soft_argmax(maps), logit.float()[..., None]], -1)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of (B, C, H, W) to (B, C, *size); identity if already so."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)


# ---------------------------------------------------------------------------------------------- coordinates
def to_pixels(normalized: torch.Tensor, size) -> torch.Tensor:
    """(..., 2) normalized (u, v) -> pixels (x, y) of a frame of size (H, W): x = (u + 1) W / 2, y = (v + 1) H / 2."""
    h, w = (size, size) if isinstance(size, int) else size
    return torch.stack([(normalized[..., 0] + 1) * (w / 2), (normalized[..., 1] + 1) * (h / 2)], -1)


def to_normalized(pixels: torch.Tensor, size) -> torch.Tensor:
    """(..., 2) pixels (x, y) -> normalized (u, v) of a frame of size (H, W): u = 2 x / W - 1, v = 2 y / H - 1."""
    h, w = (size, size) if isinstance(size, int) else size
    return torch.stack([pixels[..., 0] * (2 / w) - 1, pixels[..., 1] * (2 / h) - 1], -1)


# ---------------------------------------------------------------------------------------------- measures
def _check_pair(pred: torch.Tensor, true: torch.Tensor, what: str) -> None:
    def got(x):
        return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__

    if not isinstance(true, torch.Tensor) or true.dim() != 3 or true.shape[-1] != 3:
        raise ValueError(f"{what}: true_kp must be (B, K, 3) keypoints (x, y, confidence) in pixels, got {got(true)}")
    if (not isinstance(pred, torch.Tensor) or pred.dim() != 3 or pred.shape[-1] not in (2, 3)
            or pred.shape[:2] != true.shape[:2]):
        raise ValueError(f"{what}: pred_px must be (B, K, 2) or (B, K, 3) pixels with the (B, K) of true_kp "
                         f"{tuple(true.shape[:2])}, got {got(pred)}")


def keypoint_distances(pred_px: torch.Tensor, true_kp: torch.Tensor) -> torch.Tensor:
    """(B, K) Euclidean distances in pixels between predicted (x, y) and true (x, y); NaN where the true keypoint is
    not visible (confidence <= 0). pred_px (B, K, 2 or 3) (a confidence column is ignored), true_kp (B, K, 3)."""
    _check_pair(pred_px, true_kp, "keypoint_distances")
    d = torch.linalg.vector_norm(pred_px[..., :2].double() - true_kp[..., :2].double(), dim=-1)
    return torch.where(true_kp[..., 2] > 0, d, torch.full_like(d, float("nan")))


def keypoint_error(pred_px: torch.Tensor, true_kp: torch.Tensor) -> float:
    """Mean Euclidean pixel error over the visible true keypoints (confidence > 0), whatever the predicted confidence:
    sum_{visible} |p - t| / #visible. NaN if no true keypoint is visible."""
    d = keypoint_distances(pred_px, true_kp)
    seen = ~torch.isnan(d)
    return float(d[seen].mean()) if seen.any() else float("nan")


def figure_height(true_kp: torch.Tensor) -> torch.Tensor:
    """(B, K, 3) -> (B,) float64: the figure's height in pixels, the vertical extent max y - min y of the visible
    (confidence > 0) keypoints (nose or raised wrists to heels); NaN for a frame with no visible keypoint."""
    if not isinstance(true_kp, torch.Tensor) or true_kp.dim() != 3 or true_kp.shape[-1] != 3:
        raise ValueError("figure_height expects keypoints (B, K, 3) (x, y, confidence) in pixels")
    y, seen = true_kp[..., 1].double(), true_kp[..., 2] > 0
    top = torch.where(seen, y, torch.full_like(y, float("inf"))).amin(1)
    bottom = torch.where(seen, y, torch.full_like(y, float("-inf"))).amax(1)
    return torch.where(seen.any(1), bottom - top, torch.full_like(top, float("nan")))


def pck(pred_px: torch.Tensor, true_kp: torch.Tensor, alpha: float = 0.1,
        height: torch.Tensor | None = None) -> float:
    """Percentage of Correct Keypoints (as a share in [0, 1]): of the visible true keypoints (confidence > 0), the
    share with |p - t| <= alpha h, h the frame's figure height in pixels -- ``height`` (B,) if given (e.g.
    genlab.data.pose.pose_height, nose to ground point), else :func:`figure_height` of the truth (the vertical extent
    of its visible keypoints). NaN if no true keypoint is visible."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
        raise ValueError(f"alpha must be a number >= 0 (a fraction of the figure's height), got {alpha!r}")
    d = keypoint_distances(pred_px, true_kp)
    h = figure_height(true_kp) if height is None else torch.as_tensor(height, dtype=torch.float64)
    if h.shape != d.shape[:1]:
        raise ValueError(f"height must be (B,) = ({d.shape[0]},) pixels, one per frame, got shape {tuple(h.shape)}")
    seen = ~torch.isnan(d)
    if not seen.any():
        return float("nan")
    ok = d <= alpha * h[:, None]
    return float(ok[seen].double().mean())


def build(model_config: dict) -> KeypointRegressor:
    """The network of a stored config dict (a checkpoint's ``config["model"]``; JSON lists become tuples)."""
    cfg = dict(model_config)
    cfg["resolution"] = tuple(cfg["resolution"]) if isinstance(cfg["resolution"], (list, tuple)) \
        else cfg["resolution"]
    cfg["channels"] = tuple(cfg["channels"])
    return KeypointRegressor(KeypointRegressorConfig(**cfg))
