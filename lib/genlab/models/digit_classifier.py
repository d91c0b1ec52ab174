"""A small CNN that classifies MNIST digits: the course's judge of class-conditional samples and its digits feature net.

Later notebooks use it to score samples ("is this a 7?": the accuracy of class-conditional PixelCNN / GAN samples) and
its penultimate embedding (:meth:`DigitClassifier.features`) as the feature space of FID/KID-style metrics on digits,
reported as e.g. ``fid_digits`` -- never passed off as Inception FID (DESIGN.md, "Embedded data").

Architecture (VGG-style, Simonyan & Zisserman 2015, with batch norm, Ioffe & Szegedy 2015): three stages of 3x3 convs
28 -> 14 -> 7, global average pooling to a ``channels[-1]``-dim embedding, one linear layer to 10 logits.
Trained on genlab.data.mnist5k("train") (4000 digits) with light random affine augmentation; evaluated on "test"
(1000 digits). Registered in the zoo as ``digit_classifier``; the shipped checkpoint is loaded with
``load_pretrained("digit_classifier").model``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.eval_mode import evaluating

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel statistics of MNIST's training set, in [0, 1] units


@dataclass
class DigitClassifierConfig:
    """channels: output channels of the three conv stages (the last is the embedding size); dropout before the head."""

    channels: tuple[int, int, int] = (32, 64, 128)
    dropout: float = 0.1


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DigitClassifier(nn.Module):
    """x: (B, 1, 28, 28) in [0, 1] -> logits (B, 10). Inputs are standardized inside, so callers pass raw pixels."""

    def __init__(self, config: DigitClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or DigitClassifierConfig()
        c1, c2, c3 = config.channels
        self.trunk = nn.Sequential(
            _conv_bn(1, c1), _conv_bn(c1, c1), nn.MaxPool2d(2),    # 28 -> 14
            _conv_bn(c1, c2), _conv_bn(c2, c2), nn.MaxPool2d(2),   # 14 -> 7
            _conv_bn(c2, c3),                                      # 7x7, receptive field covers the digit
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c3, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: (B, 1, 28, 28) in [0, 1] -> (B, channels[-1]), >= 0 (ReLU, then average pooling)."""
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"DigitClassifier expects images of shape (B, 1, 28, 28) in [0, 1], got {tuple(x.shape)}"
                             " (resize/crop to 28x28 and add the channel axis first)")
        h = self.trunk((x - MNIST_MEAN) / MNIST_STD)
        return h.mean(dim=(2, 3))                              # global average pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def random_affine(x: torch.Tensor, *, degrees: float = 10.0, scale: float = 0.1, shift: float = 2.0) -> torch.Tensor:
    """Light augmentation: per image a random rotation (+-degrees), zoom (1 +- scale) and shift (+-shift pixels).

    x: (B, C, H, W) -> (B, C, H, W), zero (black) fill. Draws from torch's global RNG, which checkpoints restore.
    """
    b, _, h, w = x.shape
    u = torch.rand(b, 4, device=x.device) * 2 - 1                               # U(-1, 1)
    angle, zoom = u[:, 0] * math.radians(degrees), 1 + u[:, 1] * scale
    tx, ty = u[:, 2] * shift * 2 / w, u[:, 3] * shift * 2 / h                  # pixels -> [-1, 1] grid units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 100) -> float:
    """Fraction of ``x`` (N, 1, 28, 28) classified as ``y`` (N,), in eval mode, batch by batch."""
    device = next(model.parameters()).device
    correct = 0
    with evaluating(model):
        for i in range(0, len(x), batch_size):
            correct += (model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
    return correct / len(x)


def build(model_config: dict) -> DigitClassifier:
    """The network of a stored config dict (a checkpoint's ``config["model"]``)."""
    cfg = dict(model_config)
    cfg["channels"] = tuple(cfg["channels"])
    return DigitClassifier(DigitClassifierConfig(**cfg))
