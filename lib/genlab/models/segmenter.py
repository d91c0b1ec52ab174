"""A small segmentation network for the streets world (the course's stand-in for the pretrained segmentation nets
pix2pixHD and vid2vid use to measure semantic fidelity of synthesized frames: PSPNet / DeepLabV3 on Cityscapes).

:class:`Segmenter`: a two-level U-Net -- (conv3x3, BN, ReLU) x 2 at widths w, 2w, 4w with max-pool between and
transposed-conv up-sampling with skip concatenation -- from an image (B, 3, H, W) in [-1, 1] to class logits
(B, K, H, W); H, W divisible by 4.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.tensors import check_image


@dataclass(frozen=True)
class SegmenterConfig:
    num_classes: int = 8
    width: int = 16


def _double(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(True))


class Segmenter(nn.Module):
    """images (B, 3, H, W) in [-1, 1] -> logits (B, K, H, W)."""

    def __init__(self, config: SegmenterConfig | None = None):
        super().__init__()
        self.config = c = config or SegmenterConfig()
        w = c.width
        self.enc1, self.enc2, self.mid = _double(3, w), _double(w, 2 * w), _double(2 * w, 4 * w)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), _double(4 * w, 2 * w)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, 2), _double(2 * w, w)
        self.head = nn.Conv2d(w, c.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "Segmenter input", channels=3)
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)
