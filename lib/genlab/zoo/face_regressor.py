"""Zoo recipe ``face_regressor``: the factor regressor of genlab.models.face_regressor trained on the faces world.

Trained with mean squared error on freshly rendered faces (every step draws new factors and detail seeds as a function
of the step: unlimited data, exact resume), half rendered at 32x32 and upsampled; evaluated on the fixed test split
(per-factor R^2). Its shipped checkpoint is the feature space "faces" of genlab.metrics.fid. Its config is typed:
:class:`~genlab.models.face_regressor.FaceRegressorConfig` and the training settings :class:`FaceRegressorTrain`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.face_regressor import FaceRegressor, FaceRegressorConfig, build, r2_per_factor, resize
from genlab.nn.inference import batched
from genlab.train import TrainState, autocast
from genlab.worlds.faces import FACTOR_NAMES, denormalize_factors, faces, normalize_factors, render_faces, sample_factors
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob
from genlab.zoo.supervised import fit_supervised

DATA = ("genlab.data.faces: training faces rendered afresh each step (factors ~ sample_factors, new detail seeds, step-"
        "indexed generator), half at 32x32 upsampled to 64; test split faces('test') (first 2000) for the R^2 metrics")
N_TEST = 2000


def predict_factors(model: FaceRegressor, x: torch.Tensor, *, batch_size: int = 100) -> torch.Tensor:
    """Factors in their own units (B, N_FACTORS) for images (B, 3, H, W) in [0, 1] of any square size >= 16."""
    return denormalize_factors(batched(model, x, batch_size=batch_size).clamp(-1, 1))


@dataclass(frozen=True)
class FaceRegressorTrain:
    """The training settings of ``face_regressor``: ``steps`` of AdamW(``lr``, ``weight_decay``) with a warm-up over
    the first ``warmup`` share of the steps then cosine decay, batches of ``batch_size`` fresh faces of which a
    ``low_res_share`` is rendered at half resolution and upsampled, the weight EMA's decay."""

    steps: int
    batch_size: int
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.02
    ema_decay: float = 0.995
    low_res_share: float = 0.5


def config(profile: str) -> RecipeConfig:
    """cpu and gpu train the same network (gpu longer); ci a narrow one for a few steps (a smoke run of the recipe:
    notebooks and metrics load the shipped cpu checkpoint in every profile)."""
    model = FaceRegressorConfig(channels=(4, 8, 8, 16)) if profile == "ci" else FaceRegressorConfig()
    steps = {"ci": 4, "cpu": 3000, "gpu": 20000}[profile]
    return RecipeConfig(model, FaceRegressorTrain(steps=steps, batch_size={"ci": 8, "cpu": 64, "gpu": 256}[profile]))


def training_batch(step: int, batch_size: int, resolution: int, low_res_share: float, seed: int = 0):
    """The batch of ``step``: fresh factors and detail seeds from a generator seeded by (seed, step), so a resumed run
    sees exactly the batches of an uninterrupted one. Returns images (B, 3, R, R) in [0, 1], normalized factors."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    f = sample_factors(batch_size, generator=g)
    detail = torch.randint(0, 2**31 - 1, (batch_size,), generator=g)
    x = render_faces(f, resolution, detail_seeds=detail)
    n_low = int(round(low_res_share * batch_size))
    if n_low:
        x[:n_low] = resize(resize(x[:n_low], resolution // 2), resolution)   # a 32x32 face as the metrics see it
    return x, normalize_factors(f)


def train(model: FaceRegressor, config: RecipeConfig, job: TrainJob) -> TrainState:
    """AdamW with warm-up + cosine decay on the mean squared error of the normalized factors, weight EMA."""
    t, r = config.train, config.model.resolution

    def loss_fn(state: TrainState, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, f = batch
        with autocast(job.device):
            loss = F.mse_loss(state.model(x).float(), f)
        return loss, {"mse": loss}

    def data(step: int):
        return training_batch(step, t.batch_size, r, t.low_res_share, job.seed)

    return fit_supervised(model, config, job, loss_fn, data, desc="face_regressor")


def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    """R^2 per factor on the first 2000 test faces at 64x64 (``test_r2_<factor>``), their mean (``test_r2_mean``), and
    the mean at 32x32 (``test_r2_mean_32``: the same faces rendered at 32, as a 32x32 generator is read)."""
    model = model.to(device)
    out = {}
    for res in (64, 32):
        x, f = faces("test", n=N_TEST, resolution=res)
        r2 = r2_per_factor(predict_factors(model, x), f)
        if res == 64:
            out.update({f"test_r2_{name}": float(v) for name, v in zip(FACTOR_NAMES, r2)})
            out["test_r2_mean"] = float(r2.mean())
        else:
            out["test_r2_mean_32"] = float(r2.mean())
    return out


RECIPE = Recipe(
    name="face_regressor",
    summary="small CNN regressing the procedural faces' factors; FID-faces feature net and factor ruler",
    build=build, config=config, train=train, evaluate=evaluate,
    metrics={"test_r2_mean": 0.002, "test_r2_mean_32": 0.002},
    data=DATA, seed=0, ship_dtype=torch.float16,
)
