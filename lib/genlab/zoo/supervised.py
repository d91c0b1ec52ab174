"""Zoo helper :func:`fit_supervised`: the training loop of the zoo's one-network, one-loss recipes, written once.

A recipe gives its loss and its data; the helper does the rest the same way for every such recipe: AdamW at
``config.train.lr`` (weight decay ``config.train.weight_decay``), the rate set before each forward to ``lr *``
:func:`~genlab.train.warmup_cosine` of the step (warm-up over the ``config.train.warmup`` share of
``config.train.steps``, then cosine decay), zero_grad, backward, optional gradient-norm clipping, the optimizer step,
a weight EMA of decay ``config.train.ema_decay``, and :func:`~genlab.train.fit` (periodic checkpoints, exact resume,
progress bar) driven by the :class:`~genlab.zoo.registry.TrainJob`. The loss runs as written: a recipe that wants bf16
on CUDA opens :func:`~genlab.train.autocast` itself, around the part it chooses.

Two-player recipes (the GANs: :func:`genlab.train.make_gan_step`) and recipes with a step of another shape (VQ-VAE's
dead-code restarts after the optimizer step, no EMA) keep their own ``step_fn``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from genlab.train import TrainState, fit, make_ema, warmup_cosine, wrap_ddp
from genlab.zoo.registry import RecipeConfig, TrainJob

#: loss_fn(state, batch) -> (loss to back-propagate, {name: value} logged in state.history)
LossFn = Callable[[TrainState, Any], tuple[torch.Tensor, Mapping[str, Any]]]


def fit_supervised(model: nn.Module, config: RecipeConfig, job: TrainJob, loss_fn: LossFn, data: Any, *, desc: str,
                   weight_decay: float | None = None, optimizer: torch.optim.Optimizer | None = None,
                   clip: float | None = None, checkpoint_every: int | None = None,
                   callback: Callable[[TrainState, dict[str, float]], None] | None = None) -> TrainState:
    """Train ``model`` (already on ``job.device``) for ``config.train.steps`` steps of ``loss_fn``; returns the state.

    config.train must have ``steps``, ``lr``, ``warmup`` and ``ema_decay`` (and ``weight_decay`` unless given here).
    loss_fn(state, batch) -> (loss, logs): the forward through ``state.model`` (DDP-wrapped when distributed) and the
        loss; ``logs`` is what the step logs (:func:`~genlab.train.fit` checks it for NaN/inf and keeps it in
        ``state.history``). It runs after the learning rate is set and before zero_grad / backward / step.
    data: :func:`~genlab.train.fit`'s ``data`` (``data(step) -> batch``, e.g. StepBatches, for exact resume).
    desc: the progress bar's label.
    weight_decay: AdamW's weight decay; default ``config.train.weight_decay``.
    optimizer: another optimizer over ``model``'s parameters instead of AdamW (e.g. ``Adam(params, lr=t.lr)``); its
        learning rate is overwritten each step like AdamW's. Not together with ``weight_decay``.
    clip: if given, the gradient norm is clipped at ``clip`` between backward and the optimizer step.
    checkpoint_every: steps between periodic checkpoints; default ``max(steps // 10, 1)``.
    callback: :func:`~genlab.train.fit`'s ``callback(state, logs)``, after every step (and the EMA update).
    """
    t = config.train
    if optimizer is not None and weight_decay is not None:
        raise ValueError("fit_supervised: give either optimizer or weight_decay (AdamW's), not both")
    opt = optimizer if optimizer is not None else torch.optim.AdamW(
        model.parameters(), lr=t.lr, weight_decay=t.weight_decay if weight_decay is None else weight_decay)
    state = TrainState(model=wrap_ddp(model), optimizer=opt, ema=make_ema(model, t.ema_decay))

    def step_fn(state: TrainState, batch: Any) -> Mapping[str, Any]:
        for group in opt.param_groups:
            group["lr"] = t.lr * warmup_cosine(state.step, t.steps, warmup=t.warmup)
        loss, logs = loss_fn(state, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return logs

    return fit(state, step_fn, data, t.steps, device=job.device, checkpoint=job.checkpoint,
               checkpoint_every=max(t.steps // 10, 1) if checkpoint_every is None else checkpoint_every,
               resume=job.resume, meta=job.meta(config), progress=job.progress, desc=desc, callback=callback)
