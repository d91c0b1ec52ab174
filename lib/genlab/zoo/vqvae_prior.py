"""Zoo recipes of the VQ-VAE-2 code priors (genlab.models.vqvae_prior) over the shipped ``vqvae2_faces64``'s codes,
and :func:`prior_bits` (mean bits per code).

AdamW with warm-up + cosine decay on bits per code, gradient clipping, weight EMA. The codes are encoded once per
process (:func:`codes`): the faces train split without its last N_VAL faces for training, those for validation, the
first 2000 test faces for the test metric. A recipe's config is typed: the model's
:class:`~genlab.models.vqvae_prior.CodePriorConfig` and the training settings :class:`PriorTrain`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from genlab.metrics.likelihood import bits_per_code
from genlab.models.vqvae_prior import CodePrior, CodePriorConfig, build
from genlab.nn.eval_mode import evaluating
from genlab.train import StepBatches, TrainState
from genlab.zoo.registry import Recipe, RecipeConfig
from genlab.zoo.shipping import load_pretrained
from genlab.zoo.supervised import fit_supervised
from genlab.zoo.vqvae import encode_codes, training_images

VQVAE = "vqvae2_faces64"      # the shipped VQ-VAE-2 whose codes the priors model
N_VAL = 1000                  # the last 1000 train faces' codes: held out from prior training (not used to select)


_CODES: dict[str, dict[str, torch.Tensor]] = {}


@torch.no_grad()
def codes(split: str) -> dict[str, torch.Tensor]:
    """{"top": (N, 8, 8), "bottom": (N, 16, 16)} int64 codes from the shipped VQ-VAE-2, encoded once per process:
    split "train" (the faces train split without its last N_VAL faces), "val" (those N_VAL) or "test" (the first
    2000 test faces)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if split not in _CODES:
        images = training_images("faces64", "test" if split == "test" else "train")
        images = {"train": images[:-N_VAL], "val": images[-N_VAL:], "test": images}[split]
        _CODES[split] = encode_codes(load_pretrained(VQVAE).model, images)
    return _CODES[split]


@dataclass(frozen=True)
class PriorTrain:
    """The training settings of a code prior: ``steps`` of AdamW(``lr``) with a warm-up over the first ``warmup`` share
    of the steps then cosine decay, batches of ``batch_size`` code maps, gradient norm clipped at ``clip``, the weight
    EMA's decay, and the ``level`` modelled ("top", or "bottom" given the top codes)."""

    steps: int
    batch_size: int
    lr: float = 2e-3
    warmup: float = 0.02
    ema_decay: float = 0.995
    clip: float = 1.0
    level: str = field(kw_only=True)   # keyword-only: no default, yet stored last as it always was


def prior_config(profile: str, level: str) -> RecipeConfig:
    top = level == "top"
    model = (CodePriorConfig(channels=64, n_layers=8, first_kernel=5, head_channels=128, attention_heads=4) if top
             else CodePriorConfig(channels=48, n_layers=6, first_kernel=7, head_channels=96, cond_codes=256))
    if profile == "ci":
        model = CodePriorConfig(channels=8, n_layers=2, first_kernel=3, head_channels=8, code_embedding=8,
                                attention_heads=2 if top else 0, cond_codes=0 if top else 256, cond_channels=8,
                                cond_res=1)
    elif profile == "gpu":
        model = CodePriorConfig(channels=128, n_layers=16, first_kernel=5 if top else 7, head_channels=256,
                                attention_heads=8 if top else 0, cond_codes=0 if top else 256, cond_channels=64)
    steps, batch_size = {"ci": (4, 8), "cpu": (2000, 64 if top else 32), "gpu": (30000, 128)}[profile]
    return RecipeConfig(model, PriorTrain(steps=steps, batch_size=batch_size, level=level))


def _train(model: CodePrior, config: RecipeConfig, job, name: str):
    t = config.train
    c = codes("train")
    top, bottom = c["top"], c["bottom"]

    def loss_fn(state: TrainState, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tb, bb = batch
        logits = state.model(tb) if t.level == "top" else state.model(bb, tb)
        loss = bits_per_code(logits.float(), tb if t.level == "top" else bb)     # -log2 p(code), averaged
        return loss, {"bits": loss}

    data = StepBatches(top, bottom, batch_size=t.batch_size, seed=job.seed)
    return fit_supervised(model, config, job, loss_fn, data, desc=name, weight_decay=0.0, clip=t.clip)


@torch.no_grad()
def prior_bits(model: CodePrior, top: torch.Tensor, bottom: torch.Tensor | None = None,
               batch_size: int = 64) -> float:
    """Mean bits per code of the top codes (bottom None) or of the bottom codes given the top ones."""
    device = next(model.parameters()).device
    total, n = 0.0, 0
    with evaluating(model):
        for i in range(0, len(top), batch_size):
            tb = top[i:i + batch_size].to(device)
            if bottom is None:
                bits = bits_per_code(model(tb).float(), tb)
            else:
                bb = bottom[i:i + batch_size].to(device)
                bits = bits_per_code(model(bb, tb).float(), bb)
            total, n = total + float(bits) * len(tb), n + len(tb)
    return total / n


def _evaluate_fn(level: str):
    def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
        test, val = codes("test"), codes("val")
        if level == "top":
            return {"test_bits_per_code": prior_bits(model.to(device), test["top"]),
                    "val_bits_per_code": prior_bits(model, val["top"])}
        return {"test_bits_per_code": prior_bits(model.to(device), test["top"], test["bottom"]),
                "val_bits_per_code": prior_bits(model, val["top"], val["bottom"])}
    return evaluate


_DATA = (f"codes of the shipped {VQVAE} checkpoint: faces train split at 64x64 without its last {N_VAL} faces for "
         f"training, those {N_VAL} for val_bits_per_code, the first 2000 test faces for test_bits_per_code")


def _recipe(level: str):
    name = f"vqvae2_faces64_prior_{level}"
    summary = ("top prior: Gated PixelCNN + causal self-attention over the 8x8 top codes" if level == "top" else
               "bottom prior: Gated PixelCNN over the 16x16 bottom codes, conditioned on the top codes")
    return Recipe(name=name, summary=summary, build=build, config=lambda p: prior_config(p, level),
                  train=lambda m, c, j: _train(m, c, j, name), evaluate=_evaluate_fn(level),
                  metrics={"test_bits_per_code": 0.003, "val_bits_per_code": 0.003}, data=_DATA)


PRIOR_TOP, PRIOR_BOTTOM = _recipe("top"), _recipe("bottom")
