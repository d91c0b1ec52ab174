"""vid2vid-lite (Wang et al. 2018, "Video-to-Video Synthesis", Sec. 3): a sequential generator with a flow branch.

The Markov factorisation (Eq. 1) with L past frames:

    p(x~_1^T | s_1^T) = prod_t p(x~_t | x~_{t-L}^{t-1}, s_{t-L}^t)

and the generator F (Eq. 4) composes the previous output warped by an estimated flow with a hallucinated frame:

    x~_t = (1 - m_t) * w~_{t-1}(x~_{t-1}) + m_t * h~_t

* :class:`SequentialGenerator`: two encoders -- one for the L + 1 one-hot label maps s_{t-L}^t, one for the L previous
  generated frames x~_{t-L}^{t-1} -- whose features are summed (as the official CompositeGenerator does), then an
  image branch (residual blocks, up-sampling, tanh) -> h~_t and a flow branch (residual block, up-sampling) -> the
  backward flow w_t from frame t to t - 1 in pixels (genlab.nn.warp convention) and a soft occlusion mask m_t in (0, 1).
  ``flow=False`` (the "hallucination only" ablation) keeps only the image branch: x~_t = h~_t. L = 0 has no previous
  frame to warp, so it is hallucination only as well (a per-frame generator trained as a video model).
* :class:`Vid2Vid`: the first frame comes from an image generator (pix2pixHD-lite, genlab.models.pix2pix, frozen: the
  official code's ``use_single_G``); frames t >= 1 are generated in sequence, each from the labels and the *generated*
  past -- never a real frame. For t < L the history is padded with the first frame and labels with s_1.
  ``tbptt``: truncated back-propagation through time -- the history is detached every ``tbptt`` frames.
* :class:`VideoDiscriminator` D_V: a multi-scale PatchGAN on K consecutive frames and the K - 1 flows between them
  (conditioning, computed on the real video), 3 K + 2 (K - 1) channels; :func:`video_windows` cuts a clip into its
  windows at a temporal stride (vid2vid's temporal scales: frames t, t + s, t + 2s with the flow composed over s steps).
* :func:`blend_baseline`: the COVST-like post-process of a per-frame result, y_t = (1 - a v) x_t + a v w(y_{t-1}),
  v = 1 - occlusion (a fixed blend with the warped previous output; the baseline of the notebook).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from genlab.models.pix2pix import (GlobalGenerator, MultiscaleDiscriminator, Pix2PixConfig, ResidualBlock,
                                   conv_block, up_block, widths)
from genlab.nn.warp import compose_backward, warp
from genlab.tensors import check_video


@dataclass(frozen=True)
class Vid2VidConfig:
    """num_classes: K; past: L generated frames fed back (0, 1 or 2; vid2vid uses 2); flow: the flow branch;
    ngf / n_down / n_blocks: the encoders and image branch; n_blocks_flow: the flow branch's residual blocks;
    max_flow: the flow head outputs max_flow * tanh(.) pixels; tbptt: frames between history detaches (0: never);
    d_frames: K frames per D_V window; temporal_scales: D_V's strides 1, 2, ...; ndf / d_layers / num_scales: the
    PatchGANs (D_I and D_V). first: the pix2pixHD-lite config of the first-frame generator."""

    num_classes: int = 8
    past: int = 2
    flow: bool = True
    ngf: int = 32
    n_down: int = 2
    n_blocks: int = 3
    n_blocks_flow: int = 1
    max_flow: float = 8.0
    tbptt: int = 4
    d_frames: int = 3
    temporal_scales: int = 2
    ndf: int = 32
    d_layers: int = 3
    num_scales: int = 2
    first: Pix2PixConfig = field(default_factory=Pix2PixConfig)

    @property
    def uses_flow(self) -> bool:
        return self.flow and self.past > 0


class Step(NamedTuple):
    """One generated frame: frame x~_t, hallucinated h~_t (B, 3, H, W); flow w_t (B, 2, H, W); mask m_t (B, 1, H, W)."""

    frame: torch.Tensor
    hallucinated: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor


class Rollout(NamedTuple):
    """A generated clip: frames, hallucinated (B, T, 3, H, W); flow (B, T, 2, H, W) (flow[:, 0] = 0); mask
    (B, T, 1, H, W) (mask[:, 0] = 1: the first frame is all hallucinated)."""

    frames: torch.Tensor
    hallucinated: torch.Tensor
    flow: torch.Tensor
    mask: torch.Tensor


def composite(previous: torch.Tensor, flow: torch.Tensor, hallucinated: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """vid2vid's Eq. 4: x~_t = (1 - m_t) * warp(x~_{t-1}, w_t) + m_t * h~_t.

    previous, hallucinated (B, 3, H, W); flow (B, 2, H, W) backward, pixels; mask (B, 1, H, W) in [0, 1]
    (1 = occluded: take the hallucinated pixel) -> (B, 3, H, W)."""
    return (1 - mask) * warp(previous, flow) + mask * hallucinated


def _encoder(c_in: int, ngf: int, n_down: int) -> nn.Sequential:
    w = widths(ngf, n_down)
    return nn.Sequential(conv_block(c_in, w[0], 7), *[conv_block(w[i], w[i + 1], 3, 2) for i in range(n_down)])


def _decoder(ngf: int, n_down: int, n_blocks: int) -> nn.Sequential:
    w = widths(ngf, n_down)
    return nn.Sequential(*[ResidualBlock(w[-1]) for _ in range(n_blocks)],
                         *[up_block(w[i + 1], w[i]) for i in reversed(range(n_down))])


class SequentialGenerator(nn.Module):
    """One step of F: labels s_{t-L}^t (B, (L + 1) K, H, W), previous frames x~_{t-L}^{t-1} (B, 3 L, H, W) and the
    last frame x~_{t-1} (B, 3, H, W) -> :class:`Step`."""

    def __init__(self, config: Vid2VidConfig):
        super().__init__()
        self.config = c = config
        self.label_encoder = _encoder((c.past + 1) * c.num_classes, c.ngf, c.n_down)
        self.image_encoder = _encoder(3 * c.past, c.ngf, c.n_down) if c.past > 0 else None
        self.image_branch = _decoder(c.ngf, c.n_down, c.n_blocks)
        self.image_head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c.ngf, 3, 7), nn.Tanh())
        if c.uses_flow:
            self.flow_branch = _decoder(c.ngf, c.n_down, c.n_blocks_flow)
            self.flow_head = nn.Conv2d(c.ngf, 2, 3, padding=1)
            self.mask_head = nn.Conv2d(c.ngf, 1, 3, padding=1)
            nn.init.zeros_(self.flow_head.weight)            # start from zero flow: x~_t ~ warp with identity
            nn.init.zeros_(self.flow_head.bias)

    def forward(self, labels: torch.Tensor, previous: torch.Tensor | None, last: torch.Tensor | None) -> Step:
        c = self.config
        feats = self.label_encoder(labels)
        if self.image_encoder is not None:
            feats = feats + self.image_encoder(previous)    # the two encoders' features are summed
        h = self.image_head(self.image_branch(feats))        # h~_t
        if not c.uses_flow:
            zeros = torch.zeros_like(h[:, :2])
            return Step(h, h, zeros, torch.ones_like(h[:, :1]))
        g = self.flow_branch(feats)
        flow = c.max_flow * torch.tanh(self.flow_head(g))     # w_t, pixels
        mask = torch.sigmoid(self.mask_head(g))              # m_t
        frame = composite(last, flow, h, mask)            # x~_t = (1 - m) w~(x~_{t-1}) + m h~_t   (Eq. 4)
        return Step(frame, h, flow, mask)


class Vid2Vid(nn.Module):
    """labels (B, T, K, H, W) one-hot -> :class:`Rollout`; the first frame from ``first`` (a frozen image
    generator), frames t >= 1 from :class:`SequentialGenerator` on the generated past."""

    def __init__(self, config: Vid2VidConfig | None = None):
        super().__init__()
        self.config = c = config or Vid2VidConfig()
        self.first = GlobalGenerator(c.first)
        self.first.requires_grad_(False)
        self.step = SequentialGenerator(c)

    def forward(self, labels: torch.Tensor, first_frame: torch.Tensor | None = None) -> Rollout:
        """labels (B, T, K, H, W); first_frame (B, 3, H, W) to start from a given frame (default: the image G's)."""
        c = self.config
        check_video(labels, "vid2vid labels (one-hot)", channels=c.num_classes)
        t = labels.shape[1]
        if first_frame is None:
            with torch.no_grad():
                first_frame = self.first(labels[:, 0])
        frames, hall, flows, masks = [first_frame], [first_frame], [torch.zeros_like(first_frame[:, :2])], \
            [torch.ones_like(first_frame[:, :1])]
        history = [first_frame] * max(c.past, 1)
        for i in range(1, t):
            if c.tbptt and i % c.tbptt == 0:                 # truncated BPTT: no gradient into older frames
                history = [h.detach() for h in history]
            idx = [max(j, 0) for j in range(i - c.past, i + 1)]
            s = labels[:, idx].flatten(1, 2)                   # s_{t-L}^t, padded with s_1
            prev = torch.cat(history[-c.past:], 1) if c.past > 0 else None
            out = self.step(s, prev, history[-1])
            frames.append(out.frame)
            hall.append(out.hallucinated)
            flows.append(out.flow)
            masks.append(out.mask)
            history = (history + [out.frame])[-max(c.past, 1):]
        return Rollout(torch.stack(frames, 1), torch.stack(hall, 1), torch.stack(flows, 1), torch.stack(masks, 1))


def d_v_channels(frames: int, channels: int = 3) -> int:
    """D_V's input channels for K frames: K images and the K - 1 flows between them, 3 K + 2 (K - 1)."""
    return channels * frames + 2 * (frames - 1)


def video_windows(video: torch.Tensor, flow: torch.Tensor, frames: int, stride: int = 1) -> torch.Tensor:
    """D_V's view: every window of K = ``frames`` frames t, t + s, ..., t + (K - 1) s of a clip, with the backward
    flows between them composed over s steps (:func:`genlab.nn.warp.compose_backward`).

    video (B, T, C, H, W), flow (B, T, 2, H, W) (flow[:, t]: frame t -> t - 1) -> (B N, C K + 2 (K - 1), H, W) with
    N = T - (K - 1) s windows per clip, ordered clip-major."""
    t = video.shape[1]
    span = (frames - 1) * stride
    if span >= t:
        raise ValueError(f"a clip of {t} frames has no window of {frames} frames at stride {stride} "
                         f"(needs {span + 1}); use longer clips")
    # flow over s steps ending at frame u: f_{u -> u - s} = compose(f_u, f_{u - 1}, ..., f_{u - s + 1})
    long_flow = flow
    if stride > 1:
        per_end = []
        for u in range(t):
            acc = flow[:, u]
            for k in range(1, stride):
                if u - k < 1:
                    break
                acc = compose_backward(acc, flow[:, u - k])
            per_end.append(acc)
        long_flow = torch.stack(per_end, 1)
    out = []
    for start in range(t - span):
        idx = [start + j * stride for j in range(frames)]
        parts = [video[:, i] for i in idx] + [long_flow[:, i] for i in idx[1:]]
        out.append(torch.cat(parts, 1))
    return torch.stack(out, 1).flatten(0, 1)


class VideoDiscriminator(MultiscaleDiscriminator):
    """D_V: a multi-scale PatchGAN on (B, 3 K + 2 (K - 1), H, W) windows from :func:`video_windows`."""

    def __init__(self, frames: int = 3, ndf: int = 32, n_layers: int = 3, num_scales: int = 2):
        super().__init__(d_v_channels(frames), ndf, n_layers, num_scales)
        self.frames = frames


def blend_baseline(video: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """COVST-like temporal blending of a per-frame result (Chen et al. 2017's idea, as a fixed post-process):

        y_1 = x_1,   y_t = (1 - a v_t) x_t + a v_t warp(y_{t-1}, flow_t),   v_t = 1 - occlusion_t

    video (B, T, 3, H, W), flow (B, T, 2, H, W), occlusion (B, T, 1, H, W) -> (B, T, 3, H, W)."""
    out = [video[:, 0]]
    for t in range(1, video.shape[1]):
        v = alpha * (1 - occlusion[:, t])
        out.append((1 - v) * video[:, t] + v * warp(out[-1], flow[:, t]))
    return torch.stack(out, 1)
