"""A small (2+1)D CNN that reads a moving-digits clip: which digit it is and how fast it moves. The course's video
feature net ("FVD-digits" / "KVD-digits", never FVD: FVD uses an I3D network trained on Kinetics, Unterthiner et al.
2018, whose weights cannot be downloaded here).

Every block factorizes a 3-D convolution into a spatial 1x3x3 and a temporal 3x1x1 one (the (2+1)D block of Tran et
al. 2018, Sec. 3.5), with batch norm and ReLU; the first three halve the frame (32 -> 16 -> 8 -> 4), time keeps its
length: the temporal convolutions see how pixels move between neighbouring
frames, so a clip whose frames are shuffled, or one frame repeated, lands elsewhere in feature space than a real clip
with the same frames (the control rows of notebook 07). Global average pooling over time and space gives the
``channels[-1]``-dim embedding (:meth:`VideoFeatureNet.features`); two linear heads predict the digit (10 logits) and
the absolute velocity components (|v_x|, |v_y|) in pixels per frame at 32x32 (constant along a bouncing clip).

Input: clips (B, T, 1, H, W) in [0, 1], T >= 2, H = W in {32, 64} (64 is resized to 32).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.tensors import check_video


@dataclass
class VideoFeatureConfig:
    """channels: widths of the stem and the three (2+1)D stages (the last is the embedding size)."""

    channels: tuple[int, int, int, int] = (16, 32, 64, 128)


class Block21D(nn.Module):
    """Spatial 1x3x3 conv (stride 1 or 2 in space) -> BN -> ReLU -> temporal 3x1x1 conv -> BN -> ReLU.
    x: (B, C_in, T, H, W) -> (B, C_out, T, H / stride, W / stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.spatial = nn.Conv3d(c_in, c_out, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
        self.bn1 = nn.BatchNorm3d(c_out)
        self.temporal = nn.Conv3d(c_out, c_out, (3, 1, 1), 1, (1, 0, 0), bias=False)
        self.bn2 = nn.BatchNorm3d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.temporal(F.relu(self.bn1(self.spatial(x))))))


class VideoFeatureNet(nn.Module):
    """clips (B, T, 1, H, W) in [0, 1] -> (digit logits (B, 10), |velocity| (B, 2)); :meth:`features` -> (B, d)."""

    def __init__(self, config: VideoFeatureConfig | None = None):
        super().__init__()
        self.config = c = config or VideoFeatureConfig()
        c0, c1, c2, c3 = c.channels
        self.trunk = nn.Sequential(Block21D(1, c0, 2), Block21D(c0, c1, 2), Block21D(c1, c2, 2), Block21D(c2, c3))  # 32->4
        self.digit = nn.Linear(c3, 10)
        self.motion = nn.Linear(c3, 2)

    @property
    def num_features(self) -> int:
        return self.config.channels[-1]

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) in [0, 1] -> (B, channels[-1]) >= 0 (ReLU, then average pooling over time and space)."""
        check_video(clips, "VideoFeatureNet", channels=1)
        b, t, _, h, w = clips.shape
        if t < 2 or h != w or h not in (32, 64):
            raise ValueError(f"VideoFeatureNet reads clips (B, T >= 2, 1, S, S) with S in (32, 64), got "
                             f"{tuple(clips.shape)}")
        x = clips.transpose(1, 2)                                          # (B, 1, T, H, W): Conv3d's layout
        if h == 64:
            x = F.avg_pool3d(x, (1, 2, 2))
        return self.trunk(x * 2 - 1).mean(dim=(2, 3, 4))

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(clips)
        return self.digit(f), self.motion(f)


def build(model_config: dict) -> VideoFeatureNet:
    """The network of a stored config dict (a checkpoint's ``config["model"]``)."""
    cfg = dict(model_config)
    cfg["channels"] = tuple(cfg["channels"])
    return VideoFeatureNet(VideoFeatureConfig(**cfg))
