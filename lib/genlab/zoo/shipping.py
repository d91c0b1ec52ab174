"""Train, ship, load and re-evaluate zoo models: ``genlab train NAME``, ``genlab eval NAME``, :func:`load_pretrained`
and :func:`load_or_train` (the notebooks' load-or-train switch).

    genlab train digit_classifier --profile cpu --ship   # train, evaluate, write data/checkpoints/digit_classifier.*
    genlab eval digit_classifier                         # re-evaluate the shipped file, compare with its provenance
"""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genlab.checkpoints import (Checkpoint, CheckpointError, load_checkpoint, load_model, load_seed_model,
                                read_provenance, retrain_command, save_checkpoint, shipped_path, write_provenance,
                                write_seed_run)
from genlab.config import Run, choose_device, setup
from genlab.paths import sha256
from genlab.train import cleanup, init_distributed, is_main_process, prepare_model
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob, UnknownRecipeError, get_recipe, n_params


def load_seed_run(name: str, seed: int, map_location: str | torch.device | None = "cpu") -> Checkpoint:
    """The network of a seed-spread run of recipe ``name`` (``genlab train NAME --seed S --ship``), eval mode."""
    return load_seed_model(name, seed, get_recipe(name).build, map_location)


def load_pretrained(name: str, map_location: str | torch.device | None = "cpu") -> Checkpoint:
    """Load the shipped checkpoint ``name`` and build its model (``.model``, in eval mode) with its recipe's ``build``.

    A missing or damaged file raises :class:`~genlab.checkpoints.CheckpointError` naming the exact retrain command.
    """
    return load_model(name, get_recipe(name).build, map_location)


def load_or_train(name: str, run: Run, *, retrain: bool = False) -> nn.Module:
    """The notebooks' load-or-train switch: the shipped model ``name`` on ``run.device`` (eval mode), or, with
    ``retrain=True``, the same recipe trained now in ``run``'s profile (:func:`train_recipe`; not shipped)."""
    if retrain:
        return train_recipe(name, run)
    return load_pretrained(name, map_location=run.device).model


def _command(name: str, profile: str, ship: bool, world: int) -> str:
    cmd = f"genlab train {shlex.quote(name)} --profile {profile}" + (" --ship" if ship else "")
    if world > 1:
        cmd = f"torchrun --nproc_per_node={world} -m genlab.cli" + cmd.removeprefix("genlab")
    return cmd


def _ship(recipe: Recipe, model: nn.Module, config: RecipeConfig, metrics: dict, job: TrainJob, seconds: float,
          extra: dict) -> Path:
    """Write data/checkpoints/NAME.pt (half precision if that keeps every metric within tolerance) + NAME.json."""
    path = shipped_path(recipe.name)
    dtype = recipe.ship_dtype
    shipped_metrics = metrics
    if dtype is not None:
        half = recipe.build(config.as_dict()["model"]).to(job.device)
        half.load_state_dict({k: v.to(dtype).to(v.dtype) if v.is_floating_point() else v
                              for k, v in model.state_dict().items()})
        shipped_metrics = recipe.evaluate(half.eval(), job.device)
        drift = {m: abs(shipped_metrics[m] - metrics[m]) for m in recipe.metrics}
        if any(drift[m] > tol for m, tol in recipe.metrics.items()):
            print(f"[genlab] {dtype} moves the metrics ({drift}); shipping float32", file=sys.stderr)
            dtype, shipped_metrics = None, metrics
    extra = {**extra, "profile": job.profile, "metrics_float32": metrics}
    save_checkpoint(path, model_state=model.state_dict(), config=config.as_dict(), metrics=shipped_metrics,
                    seed=job.seed, command=job.command, data=job.data, train_seconds=seconds, extra=extra, dtype=dtype)
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
    state = recipe.train(prepare_model(recipe.build(config.as_dict()["model"]), job.device), config, job)
    return recipe.export(state).eval()


def train_main(args) -> int:
    """``genlab train NAME [--profile P] [--resume/--no-resume] [--ship] [--out DIR]``; returns the exit code."""
    try:
        recipe = get_recipe(args.name)
    except UnknownRecipeError as e:
        print(f"genlab train: {e}", file=sys.stderr)
        return 2
    seed = recipe.seed if getattr(args, "seed", None) is None else args.seed
    spread = seed != recipe.seed                        # a seed-spread run: never replaces the shipped checkpoint
    run = setup(args.profile, seed)
    dist_info = init_distributed(run.device.type)
    command = _command(recipe.name, run.profile, args.ship, dist_info.world_size) + (f" --seed {seed}" if spread else "")
    folder = Path(args.out) / recipe.name / run.profile / (f"seed{seed}" if spread else "")
    job = TrainJob(profile=run.profile, device=dist_info.device, seed=seed, data=recipe.data, command=command,
                   checkpoint=folder / "last.pt", resume=args.resume)
    try:
        config = recipe.config(run.profile)
        model = prepare_model(recipe.build(config.as_dict()["model"]), job.device)
        state = recipe.train(model, config, job)
        if not is_main_process():
            return 0
        final = recipe.export(state).eval()
        metrics = recipe.evaluate(final, job.device)
        extra = {"params": n_params(final), "steps": state.step}
        out = save_checkpoint(job.checkpoint.with_name("final.pt"), model_state=final.state_dict(),
                              config=config.as_dict(), metrics=metrics, seed=job.seed, command=job.command,
                              data=job.data, train_seconds=state.seconds, extra=extra)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"[genlab] {recipe.name} ({run.profile}): {state.step} steps, {state.seconds:.0f} s, {shown} -> {out}")
        if args.ship and spread:
            path = write_seed_run(recipe.name, seed, load_checkpoint(out).meta, final.state_dict())
            print(f"[genlab] recorded the seed-{seed} run in {path} (provenance, metrics and half-precision weights)")
        elif args.ship:
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
