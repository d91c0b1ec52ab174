"""Zoo recipe ``video_features``: the (2+1)D feature net of genlab.models.video_features trained on moving digits.

Every step draws fresh 1-digit clips (16 frames, 32x32) of the train split -- clips ``step * B .. step * B + B - 1``,
so a resumed run sees exactly the batches of an uninterrupted one -- and minimizes cross-entropy on the digit plus
the squared error of (|v_x|, |v_y|) / 3 (speeds are at most 3 px/frame). AdamW, warm-up + cosine decay, weight EMA.
Evaluated on 1000 test-split clips (digits the net never saw): digit accuracy and the mean absolute speed error.
Its shipped checkpoint is the feature space "video_digits" of genlab.metrics.fid (FVD-digits / KVD-digits).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.video_features import VideoFeatureConfig, build
from genlab.nn.inference import batched
from genlab.train import TrainState, autocast
from genlab.worlds.moving_digits import moving_digits
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob
from genlab.zoo.supervised import fit_supervised

FRAMES, SIZE, N_TEST = 16, 32, 1000
SPEED_SCALE = 3.0      # the world's maximum speed: the motion head predicts |v| / 3
DATA = (f"genlab.worlds.moving_digits: 1-digit clips of the train split ({FRAMES} frames, {SIZE}x{SIZE}), fresh clips "
        f"every step (clip index = step * batch + i); the first {N_TEST} test-split clips for the metrics")


@dataclass(frozen=True)
class VideoFeatureTrain:
    """``steps`` of AdamW(``lr``, ``weight_decay``) on batches of ``batch_size`` fresh clips, linear warm-up over the
    ``warmup`` share of the steps then cosine decay, an EMA of the weights (what is shipped)."""

    steps: int
    batch_size: int
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.03
    ema_decay: float = 0.99


def config(profile: str) -> RecipeConfig:
    """cpu and gpu train the same network (gpu longer); ci a narrow one for a few steps (a smoke run: notebooks and
    metrics load the shipped cpu checkpoint in every profile)."""
    model = VideoFeatureConfig(channels=(4, 8, 8, 16)) if profile == "ci" else VideoFeatureConfig()
    return RecipeConfig(model, VideoFeatureTrain(steps={"ci": 4, "cpu": 1500, "gpu": 6000}[profile],
                                                 batch_size=8 if profile == "ci" else 32))


def training_batch(step: int, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips (B, T, 1, 32, 32), digit labels (B,), |velocity| / SPEED_SCALE (B, 2) of ``step``'s batch."""
    c = moving_digits("train", batch_size, start=step * batch_size, frames=FRAMES, size=SIZE, digits=1, seed=seed)
    return c.videos, c.labels[:, 0], c.velocities[:, 0, 0].abs() / SPEED_SCALE


def train(model: nn.Module, config: RecipeConfig, job: TrainJob) -> TrainState:
    t = config.train

    def loss_fn(state: TrainState, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y, v = batch
        with autocast(job.device):
            logits, speed = state.model(x)
        ce = F.cross_entropy(logits.float(), y)
        mse = F.mse_loss(speed.float(), v)
        return ce + mse, {"ce": ce, "speed_mse": mse}

    return fit_supervised(model, config, job, loss_fn, lambda step: training_batch(step, t.batch_size, job.seed),
                          desc="video_features")


def test_clips(n: int = N_TEST):
    """The first ``n`` 1-digit test-split clips (16 frames, 32x32): what the metrics and notebook 07 use."""
    return moving_digits("test", n, frames=FRAMES, size=SIZE, digits=1)


test_clips.__test__ = False  # a data helper, not a pytest test


def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    """test_accuracy (digit) and test_speed_mae (mean |error| of |v_x|, |v_y| in px/frame) on N_TEST test clips."""
    c = test_clips()
    model = model.to(device)
    out = batched(lambda x: torch.cat(model(x), 1), c.videos, batch_size=50, module=model)
    acc = (out[:, :10].argmax(1) == c.labels[:, 0]).float().mean()
    mae = (out[:, 10:] * SPEED_SCALE - c.velocities[:, 0, 0].abs()).abs().mean()
    return {"test_accuracy": float(acc), "test_speed_mae": float(mae)}


RECIPE = Recipe(
    name="video_features",
    summary="(2+1)D CNN reading digit and speed from moving-digits clips; the FVD-digits / KVD-digits feature space",
    build=build, config=config, train=train, evaluate=evaluate,
    metrics={"test_accuracy": 0.002, "test_speed_mae": 0.002}, data=DATA, seed=0, ship_dtype=torch.float16,
)
