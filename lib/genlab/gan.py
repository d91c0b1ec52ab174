"""The generic two-player GAN training step, for :func:`genlab.train.fit`: DCGAN now, StyleGAN/StyleGAN2 later.

One call of the step function is one iteration of Goodfellow et al. 2014, Algorithm 1: ``d_steps`` updates of D on
the real batch against fresh fakes G(z) (G frozen: the fakes are made without a graph), then one update of G through
D (D's weights frozen, so G's backward pass leaves D's gradients alone). The loss is any of genlab.losses.GAN_LOSSES.
Optionally D is regularised with the R1 penalty gamma/2 * ||grad_x D(x)||^2 on real data (Mescheder et al. 2018,
Eq. 9), lazily every ``r1_every`` steps with the weight multiplied by ``r1_every`` so that its average strength is
unchanged (StyleGAN2, Karras et al. 2020, Sec. 3.1). fit keeps an EMA of G (as ProGAN does, Karras et al. 2018).
StyleGAN2's path-length regularization of G (Sec. 3.2) is a separate, lazy G update every ``pl_every`` steps (the
official "Greg" phase) on a batch shrunk by ``pl_batch_shrink``, weighted by ``pl_weight * pl_every``; it needs a G
with ``map(z) -> ws``, ``synthesis(ws) -> images`` and a ``pl_mean`` buffer (genlab.models.stylegan2.Generator).
A ``prepare(state, real) -> real`` hook runs first in every step: progressive growing sets the growth stage of G and D
there and resizes the real batch (genlab.models.stylegan).

Randomness: z is drawn with ``torch.randn`` on the batch's device, i.e. from the global RNG that fit's checkpoints
restore, so an interrupted run resumes exactly. :class:`GANMonitor` samples from its own fixed z and leaves the
global RNG as it found it, so monitoring does not change training.

Typical use::

    cfg = DCGANConfig()
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999)),
                      torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999)))
    monitor = GANMonitor(every=200, z_dim=cfg.z_dim)
    fit(state, make_gan_step(GANStepConfig(z_dim=cfg.z_dim)), StepBatches(x * 2 - 1, batch_size=64), 2000,
        callback=monitor)
    show_grid(monitor.samples, value_range=(-1, 1))
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from genlab.losses import GANLoss, get_gan_loss, path_length_penalty, r1_penalty
from genlab.nn.eval_mode import evaluating
from genlab.train import TrainState, autocast, get_world_size, make_ema, unwrap, wrap_ddp
from genlab.viz import image_grid


@dataclass
class GANStepConfig:
    """loss: a name in genlab.losses.GAN_LOSSES; z_dim: latent size; r1_gamma: R1 weight gamma (0: off);
    r1_every: apply R1 on the steps that are multiples of it (1: every step); d_steps: D updates per G update;
    pl_weight: path-length weight (0: off; StyleGAN2 uses 2), applied on steps that are multiples of pl_every (4)
    with weight pl_weight * pl_every; pl_decay: the running mean's decay (0.01); pl_batch_shrink: the
    regularization batch is B // pl_batch_shrink (2)."""

    loss: str = "nonsaturating"
    z_dim: int = 64
    r1_gamma: float = 0.0
    r1_every: int = 1
    d_steps: int = 1
    pl_weight: float = 0.0
    pl_every: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2

    def __post_init__(self):
        get_gan_loss(self.loss)                          # unknown names fail here, with the list of valid ones
        if self.r1_gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0 (0 turns R1 off), got {self.r1_gamma!r}")
        if self.pl_weight < 0 or not 0 < self.pl_decay <= 1:
            raise ValueError(f"need pl_weight >= 0 and pl_decay in (0, 1], got {self.pl_weight!r}, {self.pl_decay!r}")
        for name in ("z_dim", "r1_every", "d_steps", "pl_every", "pl_batch_shrink"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")

    def r1_weight(self, step: int) -> float:
        """Weight of the mean R1 penalty at 0-based ``step``: gamma/2 * r1_every on multiples of r1_every, else 0."""
        if self.r1_gamma == 0 or step % self.r1_every:
            return 0.0
        return self.r1_gamma / 2 * self.r1_every          # lazy regularisation keeps the average weight gamma/2

    def pl_step_weight(self, step: int) -> float:
        """Weight of the mean path-length penalty at 0-based ``step``: pl_weight * pl_every on its steps, else 0."""
        if self.pl_weight == 0 or step % self.pl_every:
            return 0.0
        return self.pl_weight * self.pl_every


def gan_state(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
              ema_decay: float = 0.999) -> TrainState:
    """A :class:`TrainState` for a GAN: model {"G", "D"}, optimizer {"G", "D"}, an EMA of G that fit updates.

    G, D: the plain (unwrapped) networks, already on their device. Under torchrun the step function wraps each in
    DDP itself (:func:`make_gan_step`); the state keeps the plain ones, so checkpoints have the same keys with or
    without DDP.
    """
    G, D = unwrap(G), unwrap(D)
    return TrainState(model=nn.ModuleDict({"G": G, "D": D}), optimizer={"G": opt_G, "D": opt_D},
                      ema=make_ema(G, ema_decay), ema_source=G)


def discriminator_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, real: torch.Tensor, z: torch.Tensor,
                       loss: GANLoss, r1_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """One update of D: real (B, ...) against G(z), z (B', z_dim), with G frozen; plus r1_weight * mean R1 if > 0.

    Returns detached scalars: d_loss, d_real / d_fake (mean logits on real / fake), and r1 (mean ||grad_x D(x)||^2,
    unweighted) when the penalty was applied.
    """
    device = real.device
    with torch.no_grad(), autocast(device):
        fake = G(z)
    real = real.detach().requires_grad_(r1_weight > 0)   # R1 differentiates D's output w.r.t. the real images
    with autocast(device):
        real_logits, fake_logits = D(real).float(), D(fake).float()
    d_loss = loss.d_loss(real_logits, fake_logits)
    logs = {"d_loss": d_loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
    total = d_loss
    if r1_weight > 0:
        r1 = r1_penalty(real_logits, real).mean()
        total = total + r1_weight * r1                   # gamma/2 * E[||grad_x D(x)||^2]  (Mescheder 2018, Eq. 9)
        logs["r1"] = r1.detach()
    opt_D.zero_grad(set_to_none=True)
    total.backward()
    opt_D.step()
    return logs


def generator_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor,
                   loss: GANLoss) -> dict[str, torch.Tensor]:
    """One update of G on loss.g_loss(D(G(z))), z (B, z_dim), with D's weights frozen (D's .grad is left untouched).

    Returns {"g_loss": detached scalar}.
    """
    frozen = [p for p in D.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with autocast(z.device):
            fake_logits = D(G(z)).float()
        g_loss = loss.g_loss(fake_logits)
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_G.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return {"g_loss": g_loss.detach()}


def path_length_step(G: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor, weight: float,
                     decay: float = 0.01) -> dict[str, torch.Tensor]:
    """The lazy path-length update of G (StyleGAN2's "Greg" phase): weight * mean (||J_w^T y|| - a)^2 on z (B, z_dim).

    G is the plain (unwrapped) generator: the double backward runs outside DDP, whose gradients are averaged over
    the ranks here by hand. Updates G.pl_mean. Returns detached pl_penalty and pl_length (means).
    """
    ws = G.map(z)
    with autocast(z.device):
        images = G.synthesis(ws).float()
    penalty, lengths, new_mean = path_length_penalty(images, ws, G.pl_mean, decay=decay)
    opt_G.zero_grad(set_to_none=True)
    (weight * penalty.mean()).backward()
    world = get_world_size()
    if world > 1:
        for p in G.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world
        dist.all_reduce(new_mean)
        new_mean /= world
    opt_G.step()
    G.pl_mean.copy_(new_mean)
    return {"pl_penalty": penalty.detach().mean(), "pl_length": lengths.mean()}


def make_gan_step(config: GANStepConfig,
                  sample_z: Callable[[int, torch.device], torch.Tensor] | None = None, *,
                  prepare: Callable[[TrainState, torch.Tensor], torch.Tensor] | None = None
                  ) -> Callable[[TrainState, Any], dict[str, torch.Tensor]]:
    """The step function ``step_fn(state, batch)`` for fit, for a state made by :func:`gan_state`.

    batch: real images (B, C, H, W) in [-1, 1], or a tuple/list whose first element they are (labels are ignored).
    sample_z(batch_size, device) -> z: the latent prior, default ``torch.randn(batch_size, config.z_dim)``; it must
    draw from the global RNG (or none) for exact resume.
    Each of the ``d_steps`` D updates sees the same real batch and fresh z; R1 (if on) is applied on the 0-based steps
    ``state.step`` that are multiples of ``r1_every`` (steps 0, 4, 8, ... for r1_every=4), to every D update of
    such a step, weighted gamma/2 * r1_every. With pl_weight > 0, on the steps that are multiples of pl_every a
    separate path-length update of G follows (:func:`path_length_step`). ``prepare(state, real) -> real`` runs first.
    Logs: d_loss, d_real, d_fake, g_loss, and r1 / pl_penalty, pl_length on the steps they are applied.
    Under torchrun G and D are wrapped in DDP at the first call; D is called unwrapped in the G step (D is frozen
    there, and DDP would wait for gradients that never come), G unwrapped when it only makes D's fakes.
    """
    loss = get_gan_loss(config.loss)
    sample_z = sample_z or (lambda n, device: torch.randn(n, config.z_dim, device=device))
    ddp: dict[str, nn.Module] = {}

    def players(state: TrainState) -> tuple[nn.Module, nn.Module]:
        G, D = state.model["G"], state.model["D"]
        if get_world_size() == 1:
            return G, D
        if ddp.get("model") is not state.model:           # a new state: wrap its networks once
            ddp.update(model=state.model, G=wrap_ddp(G), D=wrap_ddp(D))
        return ddp["G"], ddp["D"]

    def step_fn(state: TrainState, batch: Any) -> dict[str, torch.Tensor]:
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        if prepare is not None:
            real = prepare(state, real)
        G, D = players(state)
        opt = state.optimizer
        n, device = real.shape[0], real.device
        r1_weight = config.r1_weight(state.step)
        for _ in range(config.d_steps):
            logs = discriminator_step(unwrap(G), D, opt["D"], real, sample_z(n, device), loss, r1_weight)
        logs.update(generator_step(G, unwrap(D), opt["G"], sample_z(n, device), loss))
        pl_weight = config.pl_step_weight(state.step)
        if pl_weight > 0:
            m = max(n // config.pl_batch_shrink, 1)
            logs.update(path_length_step(unwrap(G), opt["G"], sample_z(m, device), pl_weight, config.pl_decay))
        return logs

    return step_fn


class GANMonitor:
    """A ``callback`` for fit: every ``every`` steps, sample the EMA generator at a fixed z and evaluate a metric.

    z: the fixed latents (n, z_dim); default ``n`` of them drawn once from ``torch.Generator().manual_seed(seed)``.
    metric_fn(generator) -> float: e.g. an FID-style score or the fraction of covered modes; called with the EMA
        generator in eval mode (the training G when the state has no EMA).
    After a call: ``samples`` (n, ...) on the CPU (images in [-1, 1]), ``grid`` an image_grid of them for 4-D samples
    (else None), ``step`` the step they come from, ``metrics`` a list of (step, value).
    Sampling and the metric run under ``torch.random.fork_rng``: the global RNG is restored afterwards, so a monitored
    run trains exactly like an unmonitored one.
    """

    def __init__(self, every: int, z_dim: int | None = None, *, z: torch.Tensor | None = None, n: int = 64,
                 seed: int = 0, metric_fn: Callable[[nn.Module], float] | None = None, nrow: int = 8):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every!r}")
        if z is None:
            if z_dim is None:
                raise ValueError("GANMonitor needs z_dim (or a fixed z)")
            z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
        self.every, self.z, self.metric_fn, self.nrow = every, z, metric_fn, nrow
        self.samples: torch.Tensor | None = None
        self.grid: torch.Tensor | None = None
        self.step: int | None = None
        self.metrics: list[tuple[int, float]] = []

    def __call__(self, state: TrainState, logs: Mapping[str, float]) -> None:
        if state.step % self.every == 0:
            self.update(state)

    @torch.no_grad()
    def update(self, state: TrainState) -> None:
        """Sample (and evaluate) now, whatever the step."""
        G = state.ema.module if state.ema is not None else unwrap(state.model["G"])
        device = next(G.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), evaluating(G):
            self.samples = G(self.z.to(device)).float().cpu()
            value = None if self.metric_fn is None else float(self.metric_fn(G))
        self.step = state.step
        self.grid = image_grid(self.samples, nrow=self.nrow, value_range=(-1, 1)) if self.samples.dim() == 4 else None
        if value is not None:
            self.metrics.append((state.step, value))
