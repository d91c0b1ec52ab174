"""Backward warping of images by a dense optical-flow field (vid2vid, Deep Video Portraits, Everybody Dance Now).

Convention used everywhere in genlab (worlds, models, metrics):

- A flow field is (B, 2, H, W) float, in **pixels**, channels (dx, dy): x along columns (to the right), y along rows
  (down). Pixel centres sit at integer coordinates (x = column index, y = row index).
- The flow of frame t is **backward**: ``flow_t(p)`` says where the surface point seen at pixel p in frame t was in
  frame t - 1, namely at ``p + flow_t(p)``. So the previous frame warped by it predicts the current one,

      warp(x_{t-1}, flow_t)(p) = x_{t-1}(p + flow_t(p)) ≈ x_t(p)        (outside occlusions)

  which is vid2vid's w̃_{t-1}(x̃_{t-1}) (Wang et al. 2018, eq. 4) and the warp of its warping loss.
- Sampling is bilinear (``grid_sample``, ``align_corners=True`` so that pixel index i maps exactly to grid
  coordinate -1 + 2 i / (W - 1)); points that fall outside the image read the nearest border pixel
  (``padding_mode="border"``), and :func:`outside_mask` says which ones did.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_flow(image: torch.Tensor, flow: torch.Tensor) -> None:
    if image.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"warp expects an image (B, C, H, W) and a flow (B, 2, H, W); got image "
                         f"{tuple(image.shape)} and flow {tuple(flow.shape)}")
    if image.shape[0] != flow.shape[0] or image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} must share batch and H, W")


def base_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel coordinates (1, 2, H, W): channel 0 is x (column), channel 1 is y (row)."""
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy])[None]


def sample_points(flow: torch.Tensor) -> torch.Tensor:
    """Where each pixel reads from, p + flow(p), in pixels: (B, 2, H, W)."""
    return base_grid(flow.shape[-2], flow.shape[-1], flow.device, flow.dtype) + flow


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warp: out(p) = image(p + flow(p)).

    image (B, C, H, W), flow (B, 2, H, W) in pixels (dx, dy) -> (B, C, H, W). Differentiable in both arguments.
    """
    _check_flow(image, flow)
    h, w = image.shape[-2:]
    pts = sample_points(flow.to(image.dtype))
    # pixel -> [-1, 1] with align_corners=True: i -> 2 i / (n - 1) - 1
    gx = 2.0 * pts[:, 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * pts[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)                                    # (B, H, W, 2) as (x, y)
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def outside_mask(flow: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float: 1 where p + flow(p) falls outside the image (the warp read a border pixel there)."""
    h, w = flow.shape[-2:]
    pts = sample_points(flow)
    out = (pts[:, 0] < 0) | (pts[:, 0] > w - 1) | (pts[:, 1] < 0) | (pts[:, 1] > h - 1)
    return out[:, None].to(flow.dtype)


def warp_video(video: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp each frame t - 1 to frame t: (B, T, C, H, W), flow (B, T, 2, H, W) -> (B, T - 1, C, H, W).

    Output frame i is warp(video[:, i], flow[:, i + 1]), the prediction of video[:, i + 1].
    """
    b, t = video.shape[:2]
    prev = video[:, :-1].reshape(b * (t - 1), *video.shape[2:])
    fl = flow[:, 1:].reshape(b * (t - 1), *flow.shape[2:])
    return warp(prev, fl).reshape(b, t - 1, *video.shape[2:])


def compose_backward(flow_t: torch.Tensor, flow_prev: torch.Tensor) -> torch.Tensor:
    """Backward flow over two steps, frame t -> t - 2, from flow_t (t -> t - 1) and flow_prev (t - 1 -> t - 2), both
    (B, 2, H, W): the point at p was at q = p + flow_t(p) in frame t - 1 and at q + flow_prev(q) in frame t - 2, so

        flow_{t -> t-2}(p) = flow_t(p) + warp(flow_prev, flow_t)(p)
    """
    return flow_t + warp(flow_prev, flow_t)
