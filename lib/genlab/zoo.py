"""The model zoo: named, trainable models ("recipes") behind ``genlab train NAME`` and ``genlab eval NAME``.

A :class:`Recipe` says how to build a model from its config, which config each profile (ci / cpu / gpu) trains, how to
train it (with :func:`genlab.train.fit`), how to evaluate it, and which metrics its shipped checkpoint's provenance
stores (each with the tolerance ``genlab eval`` allows). Recipes live beside their models in ``genlab.models``; this
module only lists where to find them (:data:`RECIPES`), so adding a model is one line here.

    genlab train digit_classifier --profile cpu --ship   # train, evaluate, write data/checkpoints/digit_classifier.*
    genlab eval digit_classifier                         # re-evaluate the shipped file, compare with its provenance
"""
from __future__ import annotations

import importlib
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.checkpoints import (CheckpointError, load_checkpoint, load_pretrained, read_provenance, retrain_command,
                                save_checkpoint, shipped_path, write_provenance)
from genlab.config import Run, choose_device, setup
from genlab.data.paths import sha256
from genlab.train import TrainState, cleanup, init_distributed, is_main_process, prepare_model, unwrap

#: name -> "module:attribute" of its Recipe (imported only when asked for, so `genlab --help` stays instant).
RECIPES: dict[str, str] = {
    "digit_classifier": "genlab.models.digit_classifier:RECIPE",
    "pixelcnn_mnist": "genlab.models.pixelcnn:PIXELCNN_MNIST",
    "gated_pixelcnn_mnist": "genlab.models.pixelcnn:GATED_PIXELCNN_MNIST",
    "gated_pixelcnn_mnist_cond": "genlab.models.pixelcnn:GATED_PIXELCNN_MNIST_COND",
    "gated_pixelcnn_mnist_cond_attn": "genlab.models.pixelcnn:GATED_PIXELCNN_MNIST_COND_ATTN",
    "row_lstm_mnist": "genlab.models.pixelrnn:ROW_LSTM_RECIPE",
    "diagonal_bilstm_mnist": "genlab.models.pixelrnn:DIAGONAL_BILSTM_RECIPE",
    "face_regressor": "genlab.models.face_regressor:RECIPE",
    "dcgan_mnist": "genlab.models.dcgan:DCGAN_MNIST",
    "dcgan_faces32": "genlab.models.dcgan:DCGAN_FACES32",
    **{f"stylegan_faces32_{row}": f"genlab.models.stylegan_zoo:STYLEGAN_{row.upper()}" for row in "abcdef"},
    "stylegan2_faces32": "genlab.models.stylegan_zoo:STYLEGAN2",
    "stylegan2_faces32_nopl": "genlab.models.stylegan_zoo:STYLEGAN2_NOPL",
    "vqvae2_faces64": "genlab.models.vqvae_zoo:VQVAE2_FACES",
    "vqvae2_faces64_noema": "genlab.models.vqvae_zoo:VQVAE2_FACES_NOEMA",
    "vqvae_faces64": "genlab.models.vqvae_zoo:VQVAE_FACES",
    "vqvae2_faces64_bottleneck": "genlab.models.vqvae_zoo:VQVAE2_FACES_BOTTLENECK",
    "vqvae2_photos32": "genlab.models.vqvae_zoo:VQVAE2_PHOTOS",
    "vqvae2_faces64_prior_top": "genlab.models.vqvae_prior:PRIOR_TOP",
    "vqvae2_faces64_prior_bottom": "genlab.models.vqvae_prior:PRIOR_BOTTOM",
}


class UnknownRecipeError(LookupError):
    """No recipe of that name; the message lists the known ones."""


@dataclass
class TrainJob:
    """What ``genlab train`` decided for a recipe's ``train`` function: where, how long, where to checkpoint."""

    profile: str
    device: torch.device
    seed: int
    command: str
    data: str
    checkpoint: Path | None = None
    resume: bool = True
    progress: bool = True

    def meta(self, config: dict) -> dict[str, Any]:
        """Provenance for :func:`genlab.train.fit`'s periodic checkpoints."""
        return {"config": config, "seed": self.seed, "command": self.command, "data": self.data}


@dataclass(frozen=True)
class Recipe:
    """A named trainable model.

    build(model_config) -> nn.Module;  config(profile) -> {"model": {...}, "train": {...}} (plain values only)
    train(model, config, job) -> TrainState (the model already on ``job.device``)
    evaluate(model, device) -> {metric: float}, deterministic for a given machine
    metrics: metric name -> tolerance that ``genlab eval`` allows between the provenance and a re-evaluation
    data: what it trains and evaluates on (recorded in the provenance)
    ship_dtype: dtype for the shipped file (float16 halves it) -- used only if the metrics stay within tolerance
    """

    name: str
    summary: str
    build: Callable[[dict], nn.Module]
    config: Callable[[str], dict]
    train: Callable[[nn.Module, dict, TrainJob], TrainState]
    evaluate: Callable[[nn.Module, torch.device], dict[str, float]]
    metrics: dict[str, float]
    data: str
    seed: int = 0
    ship_dtype: torch.dtype | None = torch.float16
    export: Callable[[TrainState], nn.Module] = field(default=lambda s: s.ema.module if s.ema is not None
                                                      else unwrap(s.model))


def known_names() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe registered as ``name``; :class:`UnknownRecipeError` lists the known names."""
    if name not in RECIPES:
        raise UnknownRecipeError(f"no model named {name!r} in the zoo; known models: {', '.join(known_names())} "
                                 "(recipes are listed in genlab.zoo.RECIPES)")
    module, attr = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _command(name: str, profile: str, ship: bool, world: int) -> str:
    cmd = f"genlab train {shlex.quote(name)} --profile {profile}" + (" --ship" if ship else "")
    if world > 1:
        cmd = f"torchrun --nproc_per_node={world} -m genlab.cli" + cmd.removeprefix("genlab")
    return cmd


def _ship(recipe: Recipe, model: nn.Module, config: dict, metrics: dict, job: TrainJob, seconds: float,
          extra: dict) -> Path:
    """Write data/checkpoints/NAME.pt (half precision if that keeps every metric within tolerance) + NAME.json."""
    path = shipped_path(recipe.name)
    dtype = recipe.ship_dtype
    shipped_metrics = metrics
    if dtype is not None:
        half = recipe.build(config["model"]).to(job.device)
        half.load_state_dict({k: v.to(dtype).to(v.dtype) if v.is_floating_point() else v
                              for k, v in model.state_dict().items()})
        shipped_metrics = recipe.evaluate(half.eval(), job.device)
        drift = {m: abs(shipped_metrics[m] - metrics[m]) for m in recipe.metrics}
        if any(drift[m] > tol for m, tol in recipe.metrics.items()):
            print(f"[genlab] {dtype} moves the metrics ({drift}); shipping float32", file=sys.stderr)
            dtype, shipped_metrics = None, metrics
    extra = {**extra, "profile": job.profile, "metrics_float32": metrics}
    save_checkpoint(path, model_state=model.state_dict(), config=config, metrics=shipped_metrics, seed=job.seed,
                    command=job.command, data=job.data, train_seconds=seconds, extra=extra, dtype=dtype)
    meta = load_checkpoint(path).meta  # the provenance file repeats exactly what the checkpoint holds
    write_provenance(recipe.name, {"name": recipe.name, "file": path.name, "sha256": sha256(path),
                                   "bytes": path.stat().st_size, **meta})
    return path


def train_recipe(name: str, run: Run | None = None, *, out: str | os.PathLike = "runs", resume: bool = True,
                 progress: bool = True) -> nn.Module:
    """Train the zoo model ``name`` in ``run``'s profile and device and return it in eval mode (not shipped).

    The notebooks' *load-or-train* switch calls this (``train_from_scratch = True``); ``genlab train NAME`` is the same
    run from the shell. Periodic checkpoints go to ``out/NAME/PROFILE/last.pt`` and an interrupted run resumes there.
    """
    recipe = get_recipe(name)
    run = run if run is not None else setup("auto", recipe.seed)
    job = TrainJob(profile=run.profile, device=run.device, seed=recipe.seed, data=recipe.data,
                   command=_command(recipe.name, run.profile, False, 1),
                   checkpoint=Path(out) / recipe.name / run.profile / "last.pt", resume=resume, progress=progress)
    config = recipe.config(run.profile)
    state = recipe.train(prepare_model(recipe.build(config["model"]), job.device), config, job)
    return recipe.export(state).eval()


def train_main(args) -> int:
    """``genlab train NAME [--profile P] [--resume/--no-resume] [--ship] [--out DIR]``; returns the exit code."""
    try:
        recipe = get_recipe(args.name)
    except UnknownRecipeError as e:
        print(f"genlab train: {e}", file=sys.stderr)
        return 2
    run = setup(args.profile, recipe.seed)
    dist_info = init_distributed(run.device.type)
    job = TrainJob(profile=run.profile, device=dist_info.device, seed=recipe.seed, data=recipe.data,
                   command=_command(recipe.name, run.profile, args.ship, dist_info.world_size),
                   checkpoint=Path(args.out) / recipe.name / run.profile / "last.pt", resume=args.resume)
    try:
        config = recipe.config(run.profile)
        model = prepare_model(recipe.build(config["model"]), job.device)
        state = recipe.train(model, config, job)
        if not is_main_process():
            return 0
        final = recipe.export(state).eval()
        metrics = recipe.evaluate(final, job.device)
        extra = {"params": n_params(final), "steps": state.step}
        out = save_checkpoint(job.checkpoint.with_name("final.pt"), model_state=final.state_dict(), config=config,
                              metrics=metrics, seed=job.seed, command=job.command, data=job.data,
                              train_seconds=state.seconds, extra=extra)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"[genlab] {recipe.name} ({run.profile}): {state.step} steps, {state.seconds:.0f} s, {shown} -> {out}")
        if args.ship:
            path = _ship(recipe, final, config, metrics, job, state.seconds, extra)
            print(f"[genlab] shipped {path} ({path.stat().st_size / 1024:.0f} KiB) + {path.with_suffix('.json').name}")
        return 0
    except CheckpointError as e:
        print(f"genlab train: {e}", file=sys.stderr)
        return 2
    finally:
        cleanup()


@dataclass
class MetricCheck:
    """One metric of a shipped checkpoint: the value in its provenance, the value measured now, the tolerance."""

    name: str
    stored: float
    measured: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.measured - self.stored) <= self.tolerance


def evaluate_shipped(name: str, device: torch.device | str | None = None) -> list[MetricCheck]:
    """Re-evaluate the shipped checkpoint ``name`` and compare each recipe metric with its provenance."""
    recipe = get_recipe(name)
    device = torch.device(device) if device is not None else choose_device()
    provenance = read_provenance(name)
    ckpt = load_pretrained(name, map_location=device)
    measured = recipe.evaluate(ckpt.model, device)
    missing = [m for m in recipe.metrics if m not in provenance["metrics"]]
    if missing:
        raise CheckpointError(f"the provenance of {name} lacks the metric(s) {missing}: retrain with "
                              f"`{retrain_command(name)}`")
    return [MetricCheck(m, float(provenance["metrics"][m]), float(measured[m]), tol)
            for m, tol in recipe.metrics.items()]


def eval_main(args) -> int:
    """``genlab eval NAME``: 0 if every metric matches the provenance within tolerance, 1 if one drifts, 2 on error."""
    try:
        checks = evaluate_shipped(args.name)
    except (UnknownRecipeError, CheckpointError) as e:
        print(f"genlab eval: {e}", file=sys.stderr)
        return 2
    for c in checks:
        print(f"{args.name} {c.name}: provenance {c.stored:.6g}, measured {c.measured:.6g}, "
              f"tolerance {c.tolerance:g} -> {'ok' if c.ok else 'DRIFT'}")
    if all(c.ok for c in checks):
        return 0
    print(f"genlab eval: {args.name} no longer reproduces its provenance: if the model or data changed on purpose, "
          f"retrain with `{retrain_command(args.name)}`", file=sys.stderr)
    return 1
