"""GAN objectives for :func:`genlab.train.fit`: one generator against a list of critics.

One call of the step function is one iteration of Goodfellow et al. 2014, Algorithm 1: ``d_steps`` updates of every
critic on the real batch against fresh fakes (G frozen: the fakes are made without a graph), then one update of G
through all critics (their weights frozen, so G's backward pass leaves their gradients alone), minimizing
sum_c weight_c * L_G^c(D_c(view_c(G(z)))). A :class:`Critic` is a discriminator (by its key in the state), the *view*
of a batch it scores (the whole batch; k random frames of a clip, DVD-GAN's D_S; the clip pooled 2x, its D_T; a pair
of consecutive frames with their conditions, Everybody Dance Now's D), its loss and weight. DCGAN and StyleGAN are
the configuration with one critic "D" that sees the whole batch; conditional GANs add ``g_input`` (what G is called
with, e.g. label maps from the batch) and ``g_extra`` (more G loss terms: L1, feature matching, flow). Each loss is
any of genlab.losses.GAN_LOSSES.
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from genlab.losses import GANLoss, get_gan_loss, path_length_penalty, r1_penalty
from genlab.nn.eval_mode import evaluating
from genlab.tensors import image_grid
from genlab.train.loop import TrainState, autocast, get_world_size, make_ema, unwrap, wrap_ddp


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
        return lazy_weight(self.r1_gamma / 2, self.r1_every, step)

    def pl_step_weight(self, step: int) -> float:
        """Weight of the mean path-length penalty at 0-based ``step``: pl_weight * pl_every on its steps, else 0."""
        return lazy_weight(self.pl_weight, self.pl_every, step)


def lazy_weight(weight: float, every: int, step: int) -> float:
    """Lazy regularization (StyleGAN2, Sec. 3.1): apply a penalty only on 0-based steps that are multiples of
    ``every``, weighted ``weight * every`` so that its average strength stays ``weight``; 0 when off (weight 0)."""
    if weight == 0 or step % every:
        return 0.0
    return weight * every


def gan_state(G: nn.Module, D: nn.Module | Mapping[str, nn.Module], opt_G: torch.optim.Optimizer,
              opt_D: torch.optim.Optimizer | Mapping[str, torch.optim.Optimizer], ema_decay: float = 0.999) -> TrainState:
    """A :class:`TrainState` for a GAN: model {"G", "D"}, optimizer {"G", "D"}, an EMA of G that fit updates.

    G, D: the plain (unwrapped) networks, already on their device. Several critics: D and opt_D are dicts by critic
    name (e.g. {"D_S": ..., "D_T": ...}), the keys the :class:`Critic` list names. Under torchrun the step function
    wraps each network in DDP itself (:func:`make_gan_step`); the state keeps the plain ones, so checkpoints have the
    same keys with or without DDP.
    """
    critics = dict(D) if isinstance(D, Mapping) else {"D": D}
    opts = dict(opt_D) if isinstance(opt_D, Mapping) else {"D": opt_D}
    if set(critics) != set(opts) or "G" in critics:
        raise ValueError(f"one optimizer per critic, named as the critics (not 'G'): got {sorted(critics)} and "
                         f"{sorted(opts)}")
    G = unwrap(G)
    return TrainState(model=nn.ModuleDict({"G": G, **{k: unwrap(v) for k, v in critics.items()}}),
                      optimizer={"G": opt_G, **opts}, ema=make_ema(G, ema_decay), ema_source=G)


@dataclass(frozen=True)
class Critic:
    """One discriminator of a GAN objective.

    name: its key in ``state.model`` / ``state.optimizer`` ("D" for single-critic GANs);
    view(x, batch) -> what it scores: x real or fake (B, ...), batch the full training batch (for conditions);
        None is the whole x. A view may draw random numbers (k random frames) from the global RNG (exact resume).
    loss: a name in genlab.losses.GAN_LOSSES; weight: its share of G's loss;
    r1_gamma, r1_every: R1 on this critic's real view (0: off), lazily every r1_every steps (as in GANStepConfig).
    """

    name: str = "D"
    view: Callable[[torch.Tensor, Any], torch.Tensor] | None = None
    loss: str = "nonsaturating"
    weight: float = 1.0
    r1_gamma: float = 0.0
    r1_every: int = 1

    def __post_init__(self):
        get_gan_loss(self.loss)
        if self.weight <= 0 or self.r1_gamma < 0 or int(self.r1_every) < 1:
            raise ValueError(f"critic {self.name!r}: need weight > 0, r1_gamma >= 0, r1_every >= 1")

    def see(self, x: torch.Tensor, batch: Any) -> torch.Tensor:
        return x if self.view is None else self.view(x, batch)

    def r1_weight(self, step: int) -> float:
        """gamma/2 * r1_every on multiples of r1_every, else 0 (:func:`lazy_weight`)."""
        return lazy_weight(self.r1_gamma / 2, self.r1_every, step)


def critic_step(D: nn.Module, opt_D: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor, loss: GANLoss,
                r1_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """One update of a critic D on real vs fake inputs (what it sees, already made; fake without a graph).

    Adds r1_weight * mean R1 if > 0. Returns detached scalars: d_loss, d_real / d_fake (mean logits on real / fake),
    and r1 (mean ||grad_x D(x)||^2, unweighted) when the penalty was applied.
    """
    device = real.device
    real = real.detach().requires_grad_(r1_weight > 0)   # R1 differentiates D's output w.r.t. the real input
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


def discriminator_step(G: nn.Module, D: nn.Module, opt_D: torch.optim.Optimizer, real: torch.Tensor, z: torch.Tensor,
                       loss: GANLoss, r1_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """One update of D: real (B, ...) against G(z), z (B', z_dim), with G frozen; plus r1_weight * mean R1 if > 0
    (:func:`critic_step` on the whole batch). Returns detached d_loss, d_real, d_fake (and r1)."""
    with torch.no_grad(), autocast(real.device):
        fake = G(z)
    return critic_step(D, opt_D, real, fake, loss, r1_weight)


def _call(G: nn.Module, g_in: Any) -> torch.Tensor:
    return G(*g_in) if isinstance(g_in, tuple) else G(g_in)


def critics_generator_step(G: nn.Module, players: Sequence[tuple[Critic, nn.Module, GANLoss]],
                           opt_G: torch.optim.Optimizer, g_in: Any, batch: Any = None,
                           g_extra: Callable[[torch.Tensor, Any], Mapping[str, torch.Tensor]] | None = None
                           ) -> dict[str, torch.Tensor]:
    """One update of G on sum_c weight_c * L_G^c(D_c(view_c(G(g_in)))) + sum of ``g_extra(fake, batch)``'s terms, with
    every critic's weights frozen (their .grad is left untouched).

    g_in: G's input (z, or a tuple of arguments, e.g. (z, labels)); players: (critic, its network, its loss).
    Returns detached scalars: g_loss (the total); with several critics g_loss_NAME per critic; every g_extra term.
    """
    frozen = [p for _, D, _ in players for p in D.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        device = next(G.parameters()).device
        logs: dict[str, torch.Tensor] = {}
        total = None
        with autocast(device):
            fake = _call(G, g_in)
            logits = [D(critic.see(fake, batch)).float() for critic, D, _ in players]
        for (critic, _, loss), lg in zip(players, logits):
            term = loss.g_loss(lg)
            if len(players) > 1:
                logs[f"g_loss_{critic.name}"] = term.detach()
            term = term if critic.weight == 1 else critic.weight * term
            total = term if total is None else total + term
        for name, term in (g_extra(fake, batch) if g_extra is not None else {}).items():
            logs[name] = term.detach()
            total = total + term
        opt_G.zero_grad(set_to_none=True)
        total.backward()
        opt_G.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return {"g_loss": total.detach(), **logs}


def generator_step(G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, z: torch.Tensor,
                   loss: GANLoss) -> dict[str, torch.Tensor]:
    """One update of G on loss.g_loss(D(G(z))), z (B, z_dim), with D's weights frozen (D's .grad is left untouched):
    :func:`critics_generator_step` with one critic that sees the whole image. Returns {"g_loss": detached scalar}."""
    return critics_generator_step(G, [(Critic("D"), D, loss)], opt_G, z)


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
                  prepare: Callable[[TrainState, torch.Tensor], torch.Tensor] | None = None,
                  critics: Sequence[Critic] | None = None,
                  g_input: Callable[[Any, int, torch.device], Any] | None = None,
                  g_extra: Callable[[torch.Tensor, Any], Mapping[str, torch.Tensor]] | None = None,
                  ) -> Callable[[TrainState, Any], dict[str, torch.Tensor]]:
    """The step function ``step_fn(state, batch)`` for fit, for a state made by :func:`gan_state`.

    batch: real data (B, ...) (images in [-1, 1], or clips (B, T, C, H, W)), or a tuple/list whose first element it
    is (the rest: conditions, which views, ``g_input`` and ``g_extra`` may read; unconditional GANs ignore them).
    critics: the discriminators and what each sees (default: one critic "D" on the whole batch with config's loss
    and R1 settings -- DCGAN, StyleGAN). g_input(batch, n, device) -> G's input (default: sample_z(n, device));
    sample_z(n, device) -> z: the latent prior, default ``torch.randn(n, config.z_dim)``; both must draw from the
    global RNG (or none) for exact resume. g_extra(fake, batch) -> {name: loss term} adds terms to G's loss.
    Each of the ``d_steps`` critic updates sees the same real batch and fresh fakes (one G pass feeds every critic);
    R1 (if on) is applied on the 0-based steps ``state.step`` that are multiples of ``r1_every``, weighted
    gamma/2 * r1_every. With pl_weight > 0, on the steps that are multiples of pl_every a separate path-length update
    of G follows (:func:`path_length_step`). ``prepare(state, real) -> real`` runs first (e.g. sets a growth stage,
    resizes or crops the real batch); the rest of the step sees its result in place of the batch's real part.
    Logs: d_loss, d_real, d_fake, g_loss (and r1, pl_penalty, pl_length on the steps they are applied); with several
    critics the critic's name is appended (d_loss_D_S, ...), plus g_loss_NAME per critic and the g_extra terms.
    Under torchrun G and the critics are wrapped in DDP at the first call; critics are called unwrapped in the G step
    (they are frozen there, and DDP would wait for gradients that never come), G unwrapped when it only makes fakes.
    """
    critics = list(critics) if critics is not None else [Critic("D", loss=config.loss, r1_gamma=config.r1_gamma,
                                                                r1_every=config.r1_every)]
    if not critics or len({c.name for c in critics}) != len(critics) or any(c.name == "G" for c in critics):
        raise ValueError(f"need one or more critics with distinct names other than 'G', got {[c.name for c in critics]}")
    losses = {c.name: get_gan_loss(c.loss) for c in critics}
    sample_z = sample_z or (lambda n, device: torch.randn(n, config.z_dim, device=device))
    g_input = g_input or (lambda batch, n, device: sample_z(n, device))
    suffix = (lambda name: "") if len(critics) == 1 else (lambda name: f"_{name}")
    ddp: dict[str, nn.Module] = {}

    def players(state: TrainState) -> dict[str, nn.Module]:
        nets = {k: state.model[k] for k in ("G", *(c.name for c in critics))}
        if get_world_size() == 1:
            return nets
        if ddp.get("model") is not state.model:           # a new state: wrap its networks once
            ddp.clear()
            ddp.update(model=state.model, **{k: wrap_ddp(v) for k, v in nets.items()})
        return {k: ddp[k] for k in nets}

    def step_fn(state: TrainState, batch: Any) -> dict[str, torch.Tensor]:
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        if prepare is not None:                          # views, g_input and g_extra see the prepared batch
            real = prepare(state, real)
            batch = (real, *batch[1:]) if isinstance(batch, (tuple, list)) else real
        nets = players(state)
        G, opt = nets["G"], state.optimizer
        n, device = real.shape[0], real.device
        logs: dict[str, torch.Tensor] = {}
        for _ in range(config.d_steps):
            with torch.no_grad(), autocast(device):
                fake = _call(unwrap(G), g_input(batch, n, device))
            for c in critics:
                out = critic_step(nets[c.name], opt[c.name], c.see(real, batch), c.see(fake, batch), losses[c.name],
                                  c.r1_weight(state.step))
                logs.update({k + suffix(c.name): v for k, v in out.items()})
        logs.update(critics_generator_step(G, [(c, unwrap(nets[c.name]), losses[c.name]) for c in critics], opt["G"],
                                           g_input(batch, n, device), batch, g_extra))
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
    After a call: ``samples`` (n, ...) on the CPU (images or clips in [-1, 1]), ``grid`` an image_grid of them (images:
    ``nrow`` per row; clips (n, T, C, H, W): one clip per row, its frames across; else None), ``step`` the step they
    come from, ``metrics`` a list of (step, value).
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
        if self.samples.dim() == 4:                                # images: nrow per row
            self.grid = image_grid(self.samples, nrow=self.nrow, value_range=(-1, 1))
        elif self.samples.dim() == 5:                              # clips (n, T, C, H, W): one row per clip, frames across
            self.grid = image_grid(self.samples.flatten(0, 1), nrow=self.samples.shape[1], value_range=(-1, 1))
        else:
            self.grid = None
        if value is not None:
            self.metrics.append((state.step, value))
