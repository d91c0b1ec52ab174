"""GAN losses and regularizers, on raw discriminator logits l = D(x) (before any sigmoid).

Every loss is a small object with ``d_loss(real_logits, fake_logits)`` (what D minimises) and ``g_loss(fake_logits)``
(what G minimises), both the mean over the batch; logits are (B,) or (B, 1). Where the paper writes D(x) as a
probability, D(x) = sigmoid(l), and the logs are written in their numerically stable softplus form:

    -log sigmoid(l) = softplus(-l)          -log(1 - sigmoid(l)) = softplus(l)

* :class:`SaturatingLoss` ("saturating", alias "minimax"): the minimax game of Goodfellow et al. 2014, Eq. 1.
  G's loss log(1 - D(G(z))) saturates when D confidently rejects the fakes: its gradient vanishes early in training.
* :class:`NonSaturatingLoss` ("nonsaturating"): the same D loss, G maximises log D(G(z)) instead (Goodfellow 2014,
  Sec. 3), which has the same fixed point and strong gradients when D wins.
* :class:`HingeLoss` ("hinge"): geometric GAN (Lim & Ye 2017), as used with spectral norm (Miyato et al. 2018).
* :class:`LeastSquaresLoss` ("lsgan"): LSGAN (Mao et al. 2017, Eq. 2) with targets a = 0 (fake), b = 1 (real) for D
  and c = 1 for G.

:func:`r1_penalty` is the R1 gradient penalty on real data (Mescheder et al. 2018, Eq. 9), used by StyleGAN/StyleGAN2.
:func:`path_length_penalty` is StyleGAN2's path-length regularizer (Karras et al. 2020, Sec. 3.2, Eq. 4).

Conditional image and video synthesis (pix2pixHD, vid2vid, Everybody Dance Now) add non-adversarial terms:
:func:`feature_matching` (pix2pixHD Eq. 4), :func:`flow_loss` and :func:`warp_loss` (vid2vid's L_W, Sec. 3.2).
"""
from __future__ import annotations

from typing import Protocol

import math

import torch
import torch.nn.functional as F

from genlab.nn.warp import warp


class GANLoss(Protocol):
    """What the two-player step (genlab.train.gan) needs of a loss: D's and G's objective on raw logits, batch means."""

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor: ...

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor: ...


class SaturatingLoss:
    """Minimax GAN (Goodfellow et al. 2014, Eq. 1): min_G max_D E[log D(x)] + E[log(1 - D(G(z)))]."""

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """real_logits, fake_logits: (B,) or (B, 1) -> scalar."""
        # -[log D(x) + log(1 - D(G(z)))] = softplus(-l_real) + softplus(l_fake)
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """fake_logits: (B,) or (B, 1) -> scalar."""
        return -F.softplus(fake_logits).mean()          # log(1 - D(G(z))) = -softplus(l_fake)


class NonSaturatingLoss(SaturatingLoss):
    """Non-saturating GAN (Goodfellow et al. 2014, Sec. 3): D as in the minimax game, G maximises log D(G(z))."""

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """fake_logits: (B,) or (B, 1) -> scalar."""
        return F.softplus(-fake_logits).mean()          # -log D(G(z)) = softplus(-l_fake)


class HingeLoss:
    """Hinge GAN (Lim & Ye 2017; Miyato et al. 2018): a margin of 1 on each side for D, G raises D's score."""

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """real_logits, fake_logits: (B,) or (B, 1) -> scalar."""
        # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """fake_logits: (B,) or (B, 1) -> scalar."""
        return -fake_logits.mean()                      # -E[D(G(z))]


class LeastSquaresLoss:
    """LSGAN (Mao et al. 2017, Eq. 2), a = 0, b = 1, c = 1: D regresses real to 1 and fake to 0; G pulls fakes to 1."""

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """real_logits, fake_logits: (B,) or (B, 1) -> scalar."""
        # 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]
        return 0.5 * ((real_logits - 1).square().mean() + fake_logits.square().mean())

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """fake_logits: (B,) or (B, 1) -> scalar."""
        return 0.5 * (fake_logits - 1).square().mean()  # 1/2 E[(D(G(z)) - c)^2]


GAN_LOSSES: dict[str, GANLoss] = {"saturating": SaturatingLoss(), "nonsaturating": NonSaturatingLoss(),
                                  "hinge": HingeLoss(), "lsgan": LeastSquaresLoss()}
_ALIASES = {"minimax": "saturating"}


def get_gan_loss(name: str) -> GANLoss:
    """The loss object registered as ``name`` in :data:`GAN_LOSSES` ("minimax" is an alias of "saturating")."""
    key = _ALIASES.get(name, name)
    if key not in GAN_LOSSES:
        valid = sorted(GAN_LOSSES) + sorted(_ALIASES)
        raise ValueError(f"unknown GAN loss {name!r}: use one of {valid}")
    return GAN_LOSSES[key]


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 = ||grad_x D(x)||^2 at real data, per sample (Mescheder et al. 2018, Eq. 9); the caller weights it gamma/2.

    real_logits: (B,) or (B, 1), computed by D from ``real_images``; real_images: (B, ...), which must have had
    ``requires_grad=True`` *before* D was called on them (``x = x.detach().requires_grad_(True)``).
    Returns (B,). The gradient is taken with ``create_graph=True``, so backpropagating the penalty reaches D's weights.
    Summing the logits gives every sample's own gradient at once, as sample i's logit depends only on x_i (true for
    a D without batch statistics; with batch norm in D it is the gradient of the batch's summed logit).
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty needs the gradient w.r.t. the real images: call "
                         "x = x.detach().requires_grad_(True) before computing real_logits = D(x)")
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.square().flatten(1).sum(1)              # ||grad_x D(x)||^2 per sample


def path_length_penalty(images: torch.Tensor, ws: torch.Tensor, pl_mean: torch.Tensor, *, decay: float = 0.01,
                        y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """StyleGAN2's path-length penalty (Karras et al. 2020, Eq. 4): E_{w,y} (||J_w^T y||_2 - a)^2.

    images (B, C, H, W) = g(ws) with a graph to ws (B, L, w_dim); y ~ N(0, I) / sqrt(H W) (drawn here unless given,
    so the penalty does not depend on the resolution); a = ``pl_mean``, the running mean of the lengths, updated as
    a <- a + decay (mean length - a). J_w^T y is one vector-Jacobian product, ``autograd.grad(sum(g(w) * y), w)``,
    made with create_graph so the penalty can be back-propagated. As the official code, the length sums over w_dim and
    averages over the L layers: ||J^T y|| = sqrt(mean_l sum_d (J^T y)_{l,d}^2).
    Returns (penalty per sample (B,), lengths (B,) detached, the new pl_mean (detached)).
    """
    if y is None:
        h, w = images.shape[-2:]
        y = torch.randn_like(images) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()                      # ||J_w^T y|| per sample
    new_mean = pl_mean.detach().lerp(lengths.detach().mean().to(pl_mean.dtype), decay)   # a += decay (mean - a)
    return (lengths - new_mean).square(), lengths.detach(), new_mean


def feature_matching(real_features, fake_features) -> torch.Tensor:
    """pix2pixHD's feature-matching loss (Wang et al. 2018, Eq. 4), summed over the scales k of a multi-scale D:

        L_FM = sum_k sum_{i=1}^{T} 1/N_i || D_k^(i)(s, x) - D_k^(i)(s, G(s)) ||_1

    over D's intermediate layers i (the logit layer excluded), 1/N_i being the mean over each map's elements.
    real_features, fake_features: per scale, the list of maps from ``MultiscaleDiscriminator.features`` (the real
    ones are detached here: this term trains G only). Returns a scalar.
    """
    total = None
    for real_maps, fake_maps in zip(real_features, fake_features):
        for r, f in zip(real_maps[:-1], fake_maps[:-1]):
            term = F.l1_loss(f, r.detach())
            total = term if total is None else total + term
    if total is None:
        raise ValueError("feature_matching needs at least one scale with an intermediate layer")
    return total


def flow_loss(flow: torch.Tensor, reference: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """vid2vid's flow term, 1/(T-1) sum_t ||w~_t - w_t||_1: estimated vs reference flow, both (N, 2, H, W) in pixels
    (genlab.nn.warp convention); ``valid`` (N, 1, H, W) weights pixels (e.g. 1 - occlusion; None: all). Scalar."""
    err = (flow - reference).abs()
    if valid is None:
        return err.mean()
    return (err * valid).sum() / (valid.sum() * 2).clamp_min(1.0)


def warp_loss(previous: torch.Tensor, current: torch.Tensor, flow: torch.Tensor,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """vid2vid's warping term, 1/(T-1) sum_t ||w~_t(x_{t-1}) - x_t||_1: the *real* previous frame warped by the
    *estimated* flow should be the real current frame. previous, current (N, C, H, W); flow (N, 2, H, W); valid as in
    :func:`flow_loss`. Scalar."""
    err = (warp(previous, flow) - current).abs()
    if valid is None:
        return err.mean()
    return (err * valid).sum() / (valid.sum() * current.shape[1]).clamp_min(1.0)
