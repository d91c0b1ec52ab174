"""A small CNN that reads the named factors of a procedural face back from its picture: the ruler of the GAN notebooks.

Two uses (DESIGN.md, "Embedded data"):

* its predictions say which factors a generator controls -- e.g. which factors follow the coarse styles in StyleGAN's
  style mixing, or how much noise inputs move the pose (genlab.worlds.faces knows the true factors of every real face);
* its penultimate embedding (:meth:`FaceRegressor.features`) is the feature space of "FID-faces" / "KID-faces"
  (genlab.metrics.fid), never passed off as Inception FID.

Architecture: five 3x3 conv + batch-norm + ReLU layers, three of them with stride 2 (64 -> 32 -> 16 -> 8), a last conv,
global average pooling to a ``channels[-1]``-dim embedding, one linear layer to the factors in normalized units
([-1, 1] per factor: genlab.worlds.faces.normalize_factors). Trained with mean squared error on freshly rendered faces
(every step draws new factors and detail seeds, as a function of the step: unlimited data, exact resume), half of them
rendered at 32x32 and upsampled, so the net reads 32x32 generators as well as 64x64 ones. Evaluated on the fixed test
split: per-factor R^2 = 1 - SSE / SST, stored in the shipped checkpoint's provenance.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: outputs: the 20 factors of the faces world (genlab.worlds.faces.N_FACTORS; a test keeps the two equal)
N_FACTORS = 20


@dataclass
class FaceRegressorConfig:
    """resolution: input size the net runs at (other sizes are resized to it); channels: widths of the four stages
    (the last is the embedding size)."""

    resolution: int = 64
    channels: tuple[int, int, int, int] = (16, 32, 64, 128)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class FaceRegressor(nn.Module):
    """x: (B, 3, H, H) in [0, 1] (resized to config.resolution) -> normalized factors (B, N_FACTORS), each ~[-1, 1]."""

    def __init__(self, config: FaceRegressorConfig | None = None):
        super().__init__()
        self.config = cfg = config or FaceRegressorConfig()
        c1, c2, c3, c4 = cfg.channels
        self.trunk = nn.Sequential(
            _conv_bn(3, c1), _conv_bn(c1, c2, 2),          # R   -> R/2
            _conv_bn(c2, c2), _conv_bn(c2, c3, 2),         # R/2 -> R/4
            _conv_bn(c3, c3), _conv_bn(c3, c4, 2),         # R/4 -> R/8
            _conv_bn(c4, c4))
        self.head = nn.Linear(c4, N_FACTORS)

    @property
    def num_features(self) -> int:
        """Width of :meth:`features` (what torchmetrics' FID/KID need to know)."""
        return self.config.channels[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: (B, 3, H, H) in [0, 1], any H >= 16 (resized to config.resolution) -> (B,
        channels[-1]) >= 0 (ReLU, then average pooling)."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[2] < 16:
            raise ValueError(f"FaceRegressor expects square RGB images of shape (B, 3, H, H), H >= 16, in [0, 1], got "
                             f"{tuple(x.shape)}")
        x = resize(x, self.config.resolution)
        return self.trunk(x * 2 - 1).mean(dim=(2, 3))      # global average pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of (B, C, H, W) to (B, C, size, size); identity if already so."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def r2_per_factor(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per column: R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2, (N, F) -> (F,)."""
    sse = ((true - pred) ** 2).sum(0)
    sst = ((true - true.mean(0)) ** 2).sum(0)
    return 1 - sse / sst


def build(model_config: dict) -> FaceRegressor:
    """The network of a stored config dict (a checkpoint's ``config["model"]``)."""
    cfg = dict(model_config)
    cfg["channels"] = tuple(cfg["channels"])
    return FaceRegressor(FaceRegressorConfig(**cfg))
