"""The registry of the zoo: what a recipe is (:class:`Recipe`), where each one lives (:data:`RECIPES`), lookup by name.

A :class:`Recipe` says how to build a model from its config, which config each profile (ci / cpu / gpu) trains, how to
train it (with :func:`genlab.train.fit`), how to evaluate it, and which metrics its shipped checkpoint's provenance
stores (each with the tolerance ``genlab eval`` allows). Recipes live in one module per family under ``genlab.zoo``;
this module only lists where to find them, so adding a model is one line here.

Configs are typed: ``recipe.config(profile)`` is a :class:`RecipeConfig` holding the family's model config dataclass
and the recipe's frozen training-settings dataclass, read by attribute (``config.train.lr``: a misspelt setting fails
where it is read); :meth:`RecipeConfig.as_dict` is the plain form written to checkpoints and provenance files.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.train import TrainState, unwrap

#: name -> "module:attribute" of its Recipe (imported only when asked for, so `genlab --help` stays instant).
RECIPES: dict[str, str] = {
    "digit_classifier": "genlab.zoo.digit_classifier:RECIPE",
    "pixelcnn_mnist": "genlab.zoo.pixelcnn:PIXELCNN_MNIST",
    "gated_pixelcnn_mnist": "genlab.zoo.pixelcnn:GATED_PIXELCNN_MNIST",
    "gated_pixelcnn_mnist_cond": "genlab.zoo.pixelcnn:GATED_PIXELCNN_MNIST_COND",
    "gated_pixelcnn_mnist_cond_attn": "genlab.zoo.pixelcnn:GATED_PIXELCNN_MNIST_COND_ATTN",
    "gated_pixelcnn_mnist_cfg": "genlab.zoo.pixelcnn:GATED_PIXELCNN_MNIST_CFG",
    "row_lstm_mnist": "genlab.zoo.pixelrnn:ROW_LSTM_RECIPE",
    "diagonal_bilstm_mnist": "genlab.zoo.pixelrnn:DIAGONAL_BILSTM_RECIPE",
    "face_regressor": "genlab.zoo.face_regressor:RECIPE",
    "keypoint_regressor": "genlab.zoo.dancers:KEYPOINT_REGRESSOR",
    "video_features": "genlab.zoo.video_features:RECIPE",
    "dcgan_mnist": "genlab.zoo.dcgan:DCGAN_MNIST",
    "dcgan_faces32": "genlab.zoo.dcgan:DCGAN_FACES32",
    **{f"stylegan_faces32_{row}": f"genlab.zoo.stylegan:STYLEGAN_{row.upper()}" for row in "abcdef"},
    "stylegan2_faces32": "genlab.zoo.stylegan:STYLEGAN2",
    "stylegan2_faces32_nopl": "genlab.zoo.stylegan:STYLEGAN2_NOPL",
    "vqvae2_faces64": "genlab.zoo.vqvae:VQVAE2_FACES",
    "vqvae2_faces64_noema": "genlab.zoo.vqvae:VQVAE2_FACES_NOEMA",
    "vqvae2_faces64_norestart": "genlab.zoo.vqvae:VQVAE2_FACES_NORESTART",
    "vqvae_faces64": "genlab.zoo.vqvae:VQVAE_FACES",
    "vqvae2_faces64_bottleneck": "genlab.zoo.vqvae:VQVAE2_FACES_BOTTLENECK",
    "vqvae2_photos32": "genlab.zoo.vqvae:VQVAE2_PHOTOS",
    "vqvae2_faces64_prior_top": "genlab.zoo.vqvae_prior:PRIOR_TOP",
    "vqvae2_faces64_prior_bottom": "genlab.zoo.vqvae_prior:PRIOR_BOTTOM",
    "videogan_single_z": "genlab.zoo.videogan:SINGLE_Z",
    "videogan_per_frame": "genlab.zoo.videogan:PER_FRAME",
    "dvdgan_digits": "genlab.zoo.videogan:DVDGAN",
    "dvdgan_digits_ds": "genlab.zoo.videogan:DVDGAN_DS",
    "dvdgan_digits_dt": "genlab.zoo.videogan:DVDGAN_DT",
    "street_segmenter": "genlab.zoo.streets:SEGMENTER",
    "pix2pixhd_streets": "genlab.zoo.streets:PIX2PIXHD",
    "vid2vid_streets": "genlab.zoo.streets:VID2VID",
    "vid2vid_streets_L0": "genlab.zoo.streets:VID2VID_L0",
    "vid2vid_streets_L1": "genlab.zoo.streets:VID2VID_L1",
    "vid2vid_streets_nodv": "genlab.zoo.streets:VID2VID_NODV",
    "vid2vid_streets_noflow": "genlab.zoo.streets:VID2VID_NOFLOW",
    "dvp_portraits": "genlab.zoo.portraits:DVP",
    "dvp_portraits_nw1": "genlab.zoo.portraits:DVP_NW1",
    "dvp_portraits_f25": "genlab.zoo.portraits:DVP_F25",
    "dvp_portraits_f100": "genlab.zoo.portraits:DVP_F100",
    "dvp_portraits_jit": "genlab.zoo.portraits:DVP_JIT",
    "dvp_portraits_nw1_jit": "genlab.zoo.portraits:DVP_NW1_JIT",
    "edn_framewise": "genlab.zoo.dance:EDN_FRAMEWISE",
    "edn_temporal": "genlab.zoo.dance:EDN_TEMPORAL",
    "edn_temporal_fd": "genlab.zoo.dance:EDN_TEMPORAL_FD",
    "edn_face": "genlab.zoo.dance:EDN_FACE",
}


class UnknownRecipeError(LookupError):
    """No recipe of that name; the message lists the known ones."""


def _plain(settings: Any) -> dict[str, Any]:
    """The stored dict form of a config dataclass: its own ``to_dict()`` if it defines one, else ``asdict``."""
    to_dict = getattr(settings, "to_dict", None)
    return to_dict() if callable(to_dict) else dataclasses.asdict(settings)


@dataclass(frozen=True)
class RecipeConfig:
    """A recipe's config for one profile: ``model`` (the family's model config dataclass, e.g. DCGANConfig) and
    ``train`` (the recipe's training settings dataclass). Read by attribute, so a misspelt setting fails where it is
    read. ``as_dict()`` is the plain form stored in checkpoints and provenance files (what `genlab eval` and the tests
    compare)."""

    model: Any
    train: Any

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{"model": {...}, "train": {...}}`` with plain values (tuples stay tuples; JSON makes them lists)."""
        return {"model": _plain(self.model), "train": _plain(self.train)}


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

    def meta(self, config: RecipeConfig) -> dict[str, Any]:
        """Provenance for :func:`genlab.train.fit`'s periodic checkpoints (the config in its stored dict form)."""
        return {"config": config.as_dict(), "seed": self.seed, "command": self.command, "data": self.data}


@dataclass(frozen=True)
class Recipe:
    """A named trainable model.

    config(profile) -> :class:`RecipeConfig` (typed: ``config.model.z_dim``, ``config.train.lr``)
    build(model_config) -> nn.Module, from the *stored dict form* ``config.as_dict()["model"]`` (what a shipped
        checkpoint's provenance holds, so loading and training build through the same path)
    train(model, config, job) -> TrainState (the model already on ``job.device``; ``config`` a RecipeConfig)
    evaluate(model, device) -> {metric: float}, deterministic for a given machine
    metrics: metric name -> tolerance that ``genlab eval`` allows between the provenance and a re-evaluation
    data: what it trains and evaluates on (recorded in the provenance)
    ship_dtype: dtype for the shipped file (float16 halves it) -- used only if the metrics stay within tolerance
    """

    name: str
    summary: str
    build: Callable[[dict], nn.Module]
    config: Callable[[str], RecipeConfig]
    train: Callable[[nn.Module, RecipeConfig, TrainJob], TrainState]
    evaluate: Callable[[nn.Module, torch.device], dict[str, float]]
    metrics: dict[str, float]
    data: str
    seed: int = 0
    ship_dtype: torch.dtype | None = torch.float16
    export: Callable[[TrainState], nn.Module] = field(default=lambda s: s.ema.module if s.ema is not None
                                                      else unwrap(s.model))


def export_inner_generator(state: TrainState) -> nn.Module:
    """The export of conditional GANs trained through a packed-batch adapter (``state.model["G"].inner``): the adapted
    generator of the EMA when there is one, else of the raw G."""
    return (state.ema.module if state.ema is not None else state.model["G"]).inner


def known_names() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe registered as ``name``; :class:`UnknownRecipeError` lists the known names."""
    if name not in RECIPES:
        raise UnknownRecipeError(f"no model named {name!r} in the zoo; known models: {', '.join(known_names())} "
                                 "(recipes are listed in genlab.zoo.registry.RECIPES)")
    module, attr = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
