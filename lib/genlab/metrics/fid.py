"""FID and KID in the feature spaces of the course's own networks ("FID-faces", "FID-digits"), computed with torchmetrics.

Fréchet Inception Distance (Heusel et al. 2017, Eq. 6) and Kernel Inception Distance (Binkowski et al. 2018, Sec. 3)
compare two image sets through the statistics of a fixed network's features:

    FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))            (Gaussian fit of each feature set)
    KID = MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3  (unbiased, averaged over random subsets)

The Fréchet and MMD arithmetic is torchmetrics' (``FrechetInceptionDistance`` / ``KernelInceptionDistance`` with a
custom ``feature`` module); this module only supplies the feature networks. Inception-v3 weights cannot be downloaded
here, so the features come from small networks trained on the course's data and shipped as checkpoints:

* ``"digits"``: the penultimate embedding (128-d) of the shipped digit classifier (genlab.models.digit_classifier);
  images (B, 1, 28, 28) in [0, 1].
* ``"faces"``: the penultimate embedding of the shipped face-factor regressor (genlab.models.face_regressor), trained on
  the procedural faces world; images (B, 3, R, R) in [0, 1], any R >= 16 (the regressor resizes to its resolution).

The spaces are rows of the table :data:`SPACES` (checkpoint name, network builder, width, channels): the network is
rebuilt from its shipped checkpoint's stored config, without going through the zoo.

* ``"video_digits"``: the embedding (128-d) of the shipped (2+1)D video feature net (genlab.models.video_features),
  trained on moving digits; clips (B, T, 1, 32|64, 32|64) in [0, 1]. The numbers are "FVD-digits" / "KVD-digits":
  the Frechet distance of FVD (Unterthiner et al. 2018) in another network's features, never FVD itself (whose I3D
  network is trained on Kinetics and cannot be downloaded here).

:func:`features` embeds an image set once; :func:`fid` and :func:`kid` take images or such :class:`Features`, so a
reference set scored against several generators (or with both metrics) is embedded only once.

Every number is named with its space -- ``fid_faces``, ``kid_digits`` -- and is comparable only with numbers of the same
space, sample count and data (FID is biased upward for small sample counts; compare equal counts). The value is not
Inception FID and must never be reported as such. Any ``nn.Module`` with a ``num_features`` attribute that maps an image
batch to (B, num_features) can be passed as ``space`` instead (e.g. a locally available Inception network).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from genlab.checkpoints import load_model
from genlab.models import digit_classifier, face_regressor, video_features


class FeatureSpace(nn.Module):
    """A frozen feature network with the input checks of its domain: images (B, C, H, W) or clips (B, T, C, H, W)
    -> features (B, d) float64.

    name: "digits" / "faces" / "video_digits"; net: a module with ``features(x)`` (which checks and, for faces,
    resizes its input); channels: the channels the net reads; ndim: 4 for images, 5 for clips.
    """

    def __init__(self, name: str, net: nn.Module, num_features: int, channels: int, ndim: int = 4):
        super().__init__()
        self.name, self.net, self.channels, self.ndim = name, net.eval(), channels, ndim
        self.num_features = num_features              # torchmetrics reads this instead of probing with a 299x299 image
        for p in self.net.parameters():
            p.requires_grad_(False)

    def check(self, x: torch.Tensor) -> None:
        what, layout = ("images", f"(B, {self.channels}, H, W)") if self.ndim == 4 else \
            ("clips", f"(B, T, {self.channels}, H, W)")
        if not isinstance(x, torch.Tensor) or x.dim() != self.ndim or x.shape[self.ndim - 3] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.name} features need {what} of shape {layout} in [0, 1], got {shape}")
        if not x.is_floating_point():
            raise TypeError(f"{self.name} features need float {what} in [0, 1], got {x.dtype} (divide uint8 by 255)")
        lo, hi = float(x.min()), float(x.max())
        if lo < -0.01 or hi > 1.01:
            raise ValueError(f"{self.name} features need images in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; map "
                             "tanh outputs in [-1, 1] with (x + 1) / 2")

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        return self.net.features(x.clamp(0, 1)).double()


@dataclass(frozen=True)
class SpaceSpec:
    """A named feature space: the shipped checkpoint of its network, how to build that network from the checkpoint's
    stored config, how wide its features are, how many channels it reads, and 4 (images) or 5 (clips) dims."""

    checkpoint: str
    build: Callable[[dict], nn.Module]
    width: Callable[[nn.Module], int]
    channels: int
    ndim: int = 4


#: the course's feature spaces, by name (a table: a new world adds a row, e.g. a video feature net)
SPACES: dict[str, SpaceSpec] = {
    "digits": SpaceSpec("digit_classifier", digit_classifier.build, lambda net: net.config.channels[-1], channels=1),
    "faces": SpaceSpec("face_regressor", face_regressor.build, lambda net: net.num_features, channels=3),
    "video_digits": SpaceSpec("video_features", video_features.build, lambda net: net.num_features, channels=1, ndim=5),
}


@lru_cache(maxsize=8)
def _shipped_space(name: str, device: str) -> FeatureSpace:
    if name not in SPACES:
        raise ValueError(f"unknown feature space {name!r}: use one of {tuple(SPACES)} or pass an nn.Module with "
                         "num_features")
    spec = SPACES[name]
    net = load_model(spec.checkpoint, spec.build, device).model
    return FeatureSpace(name, net, spec.width(net), channels=spec.channels, ndim=spec.ndim)


def feature_space(space: str | nn.Module, device: torch.device | str = "cpu") -> nn.Module:
    """The feature network of ``space`` ("digits", "faces", or a module with ``num_features``) on ``device``."""
    if isinstance(space, nn.Module):
        if not isinstance(getattr(space, "num_features", None), int):
            raise TypeError("a custom feature network needs an int attribute num_features (its output width)")
        return space.to(device).eval()
    return _shipped_space(space, str(torch.device(device)))


@dataclass(frozen=True)
class Features:
    """The features of one image set in one space, computed once and reused by several :func:`fid` / :func:`kid`
    calls (a real reference set scored against many generators). values: (N, d) float64 on the CPU."""

    space: str
    values: torch.Tensor

    def __len__(self) -> int:
        return len(self.values)


def _space_name(space: str | nn.Module) -> str:
    return space if isinstance(space, str) else type(space).__name__


@torch.no_grad()
def features(images: torch.Tensor, space: str | nn.Module = "faces", *, batch_size: int = 100,
             device: torch.device | str = "cpu") -> Features:
    """Features of ``images`` (N, C, H, W) -- or clips (N, T, C, H, W) for a video space -- float in [0, 1] in
    ``space``, batch by batch -> :class:`Features`."""
    net = feature_space(space, device)
    out = [net(images[i:i + batch_size].to(device)).double().cpu() for i in range(0, len(images), batch_size)]
    return Features(_space_name(space), torch.cat(out) if out else torch.empty(0, net.num_features))


class _Given(nn.Module):
    """The identity on precomputed features: torchmetrics' statistics run on what :func:`features` computed."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f


def _pair(real, fake, space, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets as (N, d) features of the same space; images are embedded here, Features are taken as they are."""
    sets = [x if isinstance(x, Features) else features(x, space, batch_size=batch_size, device=device)
            for x in (real, fake)]
    want = _space_name(space)
    for f in sets:
        if f.space != want:
            raise ValueError(f"features of space {f.space!r} cannot be compared in space {want!r}")
        if len(f) < 2:
            raise ValueError(f"need at least 2 images per set, got {len(f)}")
    return sets[0].values, sets[1].values


def fid(real: torch.Tensor | Features, fake: torch.Tensor | Features, space: str | nn.Module = "faces", *,
        batch_size: int = 100, device: torch.device | str = "cpu") -> float:
    """FID between two image sets in ``space``'s features -> float >= 0.

    real, fake: images (N, C, H, W) float in [0, 1], or their :class:`Features` in the same space.
    Equal N on both sides make numbers comparable (FID's bias grows as N shrinks); the course uses 1000-5000.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = _pair(real, fake, space, batch_size, device)
    metric = FrechetInceptionDistance(feature=_Given(a.shape[1]), reset_real_features=True)
    metric.update(a, real=True)
    metric.update(b, real=False)
    return max(float(metric.compute()), 0.0)     # tiny negative values are round-off of a zero distance


def kid(real: torch.Tensor | Features, fake: torch.Tensor | Features, space: str | nn.Module = "faces", *,
        subsets: int = 50, subset_size: int | None = None, batch_size: int = 100, seed: int = 0,
        device: torch.device | str = "cpu") -> tuple[float, float]:
    """KID (mean, std over ``subsets`` random subsets of ``subset_size``, default min(N_real, N_fake, 1000)).

    real, fake as in :func:`fid`. The subsets are drawn from a generator seeded with ``seed`` inside a forked RNG, so
    the value is repeatable and the caller's random stream is untouched.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = _pair(real, fake, space, batch_size, device)
    size = subset_size or min(len(a), len(b), 1000)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Given(a.shape[1]), subsets=subsets, subset_size=size)
    metric.update(a, real=True)
    metric.update(b, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)
