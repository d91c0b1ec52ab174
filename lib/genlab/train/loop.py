"""Training-loop utilities in plain PyTorch: one loop every model of the course reuses, no framework in between.

What :func:`fit` adds around a user-supplied ``step_fn`` (which does forward, backward and the optimizer step(s), so a
GAN can play its two-player step):

* a progress bar (:func:`genlab.progress.progress_bar`: its stored notebook text is the final state; main process only);
* an EMA of the weights (``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``; see :func:`make_ema`);
* NaN/inf detection on everything ``step_fn`` logs: :class:`NonFiniteLossError` names the step;
* periodic checkpoints (model, optimizer(s), EMA, step, RNG states, loss history) and exact resume after an
  interruption, when the data source is a function of the step (:class:`StepBatches`);
* DDP when launched by ``torchrun``: :func:`init_distributed` (gloo on CPU, nccl on CUDA), :func:`wrap_ddp`,
  rank-sliced batches, only rank 0 writes checkpoints and draws the bar.

bf16 autocast and channels_last are used only on CUDA (:func:`autocast`, :func:`prepare_model`); on CPU they are no-ops.

Typical use::

    model = prepare_model(Net(), device)
    state = TrainState(model=model, optimizer=torch.optim.AdamW(model.parameters(), 1e-3), ema=make_ema(model))
    def step_fn(state, batch):
        x, y = batch
        with autocast(device):
            loss = F.cross_entropy(state.model(x), y)
        state.optimizer.zero_grad(set_to_none=True); loss.backward(); state.optimizer.step()
        return {"loss": loss}
    fit(state, step_fn, StepBatches(x_train, y_train, batch_size=128, seed=0), steps=1000,
        checkpoint="runs/net/last.pt", checkpoint_every=200)
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from genlab.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from genlab.progress import progress_bar


class NonFiniteLossError(FloatingPointError):
    """A logged training quantity became NaN or inf; ``step`` (the k-th optimizer step, counting from 1), ``name`` and
    ``value`` say where."""

    def __init__(self, step: int, name: str, value: float, last_checkpoint: str | None = None):
        self.step, self.name, self.value = step, name, value
        resume = f"; the last good checkpoint is {last_checkpoint}" if last_checkpoint else ""
        super().__init__(
            f"{name} is {value} at step {step}: training diverged. Lower the learning rate (or add warm-up / gradient "
            f"clipping), and check the data for NaN/inf values or a wrong value range{resume}.")


# ------------------------------------------------------------------------------------------------ devices, precision
def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op context anywhere else (CPU autocast is slow and changes numerics)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move ``model`` to ``device``; on CUDA also to channels_last memory format (faster convs with bf16)."""
    device = torch.device(device)
    if device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move a batch (tensor, or nested tuple/list/dict of tensors) to ``device``; 4-D float tensors (B, C, H, W)
    become channels_last on CUDA."""
    device = torch.device(device)
    if isinstance(batch, torch.Tensor):
        if device.type == "cuda" and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


# ---------------------------------------------------------------------------------------------------------- EMA
def make_ema(module: nn.Module, decay: float = 0.999) -> AveragedModel:
    """Exponential moving average of ``module``'s parameters and buffers (e.g. StyleGAN's G EMA, Karras 2019 App. B).

    W_ema <- W after the first update, then W_ema <- decay * W_ema + (1 - decay) * W   (torch's get_ema_multi_avg_fn)
    ``ema.module`` is the averaged network; call ``ema.update_parameters(module)`` after each optimizer step
    (:func:`fit` does).
    """
    return AveragedModel(unwrap(module), multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def warmup_cosine(step: int, total: int, warmup: float = 0.0) -> float:
    """Learning-rate multiplier for 0-based ``step`` of ``total``: linear warm-up over the first ``warmup`` fraction,
    then cosine decay to 0 (SGDR without restarts, Loshchilov & Hutter 2017, Eq. 5).

    A pure function of the step (no scheduler state), so a resumed run gets the same rates.
    """
    n_warm = int(warmup * total)
    if step < n_warm:
        return (step + 1) / n_warm
    progress = (step - n_warm) / max(total - n_warm, 1)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))   # eta_t = eta_max * (1 + cos(pi * T_cur / T)) / 2


# ------------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) run: rank, world size, local rank, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device | str | None = None, backend: str | None = None) -> DistInfo:
    """Join the process group ``torchrun`` set up (env RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    Without those variables (a plain ``python`` run) this returns rank 0 of 1 and starts nothing.
    device: the device family to use; default cuda if available (rank r uses cuda:LOCAL_RANK), else cpu.
    backend: default nccl on CUDA, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        dev = torch.device("cuda", local if world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed: run without torchrun")
        dist.init_process_group(backend=backend or ("nccl" if dev.type == "cuda" else "gloo"),
                                device_id=dev if dev.type == "cuda" else None)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def is_main_process() -> bool:
    """True on rank 0 of a distributed run, and always in a single-process run."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def get_world_size() -> int:
    """Number of ranks (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def cleanup() -> None:
    """Leave the process group (call at the end of a torchrun script); a no-op when not distributed."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module) -> nn.Module:
    """DistributedDataParallel around ``model`` when a process group is running, else ``model`` unchanged.

    DDP averages gradients over ranks, so each rank's mean loss over its slice of the global batch gives the same
    update as one process computing the mean over the whole global batch.
    """
    if get_world_size() == 1:
        return model
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP (or torch.compile) wrapper; ``model`` itself if unwrapped."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


# ---------------------------------------------------------------------------------------------------------- data
class StepBatches:
    """The batch of each training step as a function of the step number: resume-exact and DDP-ready.

    Each epoch is a fresh permutation of the N examples drawn from ``seed`` and the epoch number; step s takes the
    global batch ``perm[i*B:(i+1)*B]`` (incomplete last batches are dropped), and rank r of W takes the r-th of W equal
    slices of it. Hence W ranks together see exactly the global batch a single process sees, and a resumed run sees
    exactly the batches the uninterrupted one would have.

    tensors: (N, ...) each, same N.  batches(step) -> tuple of (B/W, ...) tensors (on the tensors' device).
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("StepBatches needs one or more tensors with the same first dimension")
        self.tensors, self.batch_size, self.seed = tensors, batch_size, seed
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        if batch_size % self.world_size:
            raise ValueError(f"global batch_size {batch_size} must be divisible by the world size {self.world_size}")
        if batch_size > len(tensors[0]):
            raise ValueError(f"batch_size {batch_size} exceeds the number of examples {len(tensors[0])}")
        self._epoch, self._perm = -1, None

    def __len__(self) -> int:
        """Steps per epoch."""
        return len(self.tensors[0]) // self.batch_size

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        epoch, i = divmod(step, len(self))
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(len(self.tensors[0]), generator=g)
        per_rank = self.batch_size // self.world_size
        start = i * self.batch_size + self.rank * per_rank
        idx = self._perm[start:start + per_rank].to(self.tensors[0].device)
        return tuple(t[idx] for t in self.tensors)


# ----------------------------------------------------------------------------------------------------- state
def _rng_state() -> dict[str, Any]:
    """Every RNG a step may draw from (torch CPU + CUDA, Python, NumPy), as weights_only-loadable values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


@dataclass
class TrainState:
    """Everything a training run is made of, and everything a checkpoint must hold to resume it exactly.

    model: the network (DDP-wrapped when distributed); for several networks an ``nn.ModuleDict`` (GAN: G and D).
    optimizer: one optimizer, or a dict of them (GAN: {"G": ..., "D": ...}).
    ema: an :func:`make_ema` average of ``ema_source`` (default: the unwrapped ``model``), updated after every step.
    step: optimizer steps done; seconds: training wall time so far; history: logged values per step.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer | dict[str, torch.optim.Optimizer] | None = None
    ema: AveragedModel | None = None
    ema_source: nn.Module | None = None
    step: int = 0
    seconds: float = 0.0
    history: dict[str, list[float]] = field(default_factory=dict)

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self.optimizer is None:
            return {}
        return dict(self.optimizer) if isinstance(self.optimizer, Mapping) else {"optimizer": self.optimizer}

    def state_dicts(self) -> dict[str, Any]:
        """Named states for :func:`save_checkpoint`: model, optimizer(s), ema, training counters and RNG states."""
        states: dict[str, Any] = {"model": unwrap(self.model).state_dict()}
        for name, opt in self._optimizers().items():
            states[f"optim.{name}"] = opt.state_dict()
        if self.ema is not None:
            states["ema"] = self.ema.state_dict()
        states["train"] = {"step": self.step, "seconds": self.seconds, "history": self.history}
        states["rng"] = _rng_state()
        return states

    def load_state_dicts(self, states: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dicts` (restores the RNGs too, so the next step draws what it would have)."""
        unwrap(self.model).load_state_dict(states["model"])
        for name, opt in self._optimizers().items():
            opt.load_state_dict(states[f"optim.{name}"])
        if self.ema is not None:
            self.ema.load_state_dict(states["ema"])
        train = states["train"]
        self.step, self.seconds = int(train["step"]), float(train["seconds"])
        self.history = {k: list(v) for k, v in train["history"].items()}
        _set_rng_state(states["rng"])


def _as_float(v: Any) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


def resume_from(state: TrainState, path: str | os.PathLike, *, config: dict | None = None) -> bool:
    """Restore ``state`` from the periodic checkpoint at ``path`` if it exists; return whether it did.

    config: if given, must equal the checkpoint's config (resuming a run with other settings would silently mix them).
    """
    path = Path(path)
    if not path.exists():
        return False
    fix = f"delete {path} (or pass --no-resume) to start the run afresh"
    ckpt = load_checkpoint(path, map_location=next(unwrap(state.model).parameters()).device, fix=fix)
    if config is not None and ckpt.config != config:
        raise CheckpointError(f"{path} was written by a run with another config ({ckpt.config}) than this one "
                              f"({config}): {fix}")
    missing = {"model", "train", "rng"} - set(ckpt.states)
    if missing:
        raise CheckpointError(f"{path} lacks {sorted(missing)}: it is not a training checkpoint; {fix}")
    state.load_state_dicts(ckpt.states)
    return True


def fit(state: TrainState, step_fn: Callable[[TrainState, Any], Mapping[str, Any]],
        data: Callable[[int], Any] | Iterable, steps: int, *, device: torch.device | str | None = None,
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 0, resume: bool = True,
        meta: Mapping[str, Any] | None = None, progress: bool = True, desc: str | None = None,
        log_every: int = 10, callback: Callable[[TrainState, dict[str, float]], None] | None = None) -> TrainState:
    """Run ``step_fn`` until ``state.step == steps``; returns ``state``.

    step_fn(state, batch) -> {name: scalar}: does forward, backward and optimizer step(s) itself; every returned value
        is logged into ``state.history`` and checked for NaN/inf (:class:`NonFiniteLossError` names the step).
    data: ``data(step) -> batch`` (e.g. :class:`StepBatches`; exact resume) or an iterable of batches (resume then
        continues with whatever the iterable yields next). Batches are moved to ``device`` (default: the model's).
    checkpoint: path of the periodic training checkpoint, written atomically by rank 0 every ``checkpoint_every``
        steps (0: only at the end); with ``resume`` an existing one is loaded first and training continues from it.
    meta: provenance stored with the checkpoint: ``config``, ``seed``, ``command``, ``data`` (see save_checkpoint).
    callback(state, logs): called after every step on every rank (evaluation, sample grids, ...).
    """
    meta = dict(meta or {})
    device = torch.device(device) if device is not None else next(unwrap(state.model).parameters()).device
    if checkpoint is not None and resume:
        resume_from(state, checkpoint, config=meta.get("config"))
    main = is_main_process()
    ema_source = state.ema_source if state.ema_source is not None else unwrap(state.model)
    batches = None if callable(data) else iter(data)

    def save() -> None:
        if checkpoint is None or not main:
            return
        save_checkpoint(checkpoint, states=state.state_dicts(), config=meta.get("config", {}),
                        metrics={k: v[-1] for k, v in state.history.items() if v}, seed=meta.get("seed"),
                        command=meta.get("command", ""), data=meta.get("data", ""), train_seconds=state.seconds)

    bar = progress_bar(total=steps, initial=state.step, desc=desc, disable=not (progress and main), dynamic_ncols=True)
    try:
        while state.step < steps:
            t0 = time.perf_counter()
            batch = data(state.step) if batches is None else next(batches)
            logs = {k: _as_float(v) for k, v in step_fn(state, to_device(batch, device)).items()}
            bad = next(((k, v) for k, v in logs.items() if not math.isfinite(v)), None)
            if get_world_size() > 1:  # every rank must stop together, or the others hang in the next all-reduce
                flag = torch.tensor([float(bad is not None)], device=device if dist.get_backend() == "nccl" else "cpu")
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                if flag.item() and bad is None:
                    bad = ("loss on another rank", math.nan)
            if bad is not None:
                last = str(checkpoint) if checkpoint is not None and Path(checkpoint).exists() else None
                raise NonFiniteLossError(state.step + 1, bad[0], bad[1], last)
            if state.ema is not None:
                state.ema.update_parameters(ema_source)
            state.step += 1
            state.seconds += time.perf_counter() - t0
            for k, v in logs.items():
                state.history.setdefault(k, []).append(v)
            if callback is not None:
                callback(state, logs)
            bar.update(1)
            if state.step % max(log_every, 1) == 0 or state.step == steps:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
            if checkpoint_every and state.step % checkpoint_every == 0 and state.step < steps:
                save()
        save()
    finally:
        bar.close()
    return state
