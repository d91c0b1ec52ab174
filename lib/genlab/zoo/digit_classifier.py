"""Zoo recipe ``digit_classifier``: the MNIST judge of genlab.models.digit_classifier, and :func:`judge_digits`.

AdamW with warm-up + cosine decay, cross-entropy, light random affine augmentation, weight EMA; trained on the
MNIST-5k train split, scored on its test split. Its shipped checkpoint judges class-conditional samples and is the
feature space "digits" of genlab.metrics.fid. Its config is typed: :class:`~genlab.models.digit_classifier.
DigitClassifierConfig` and the training settings :class:`DigitClassifierTrain`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data.mnist import mnist5k
from genlab.models.digit_classifier import DigitClassifier, DigitClassifierConfig, accuracy, build, random_affine
from genlab.train import StepBatches, TrainState, autocast
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob
from genlab.zoo.shipping import load_pretrained
from genlab.zoo.supervised import fit_supervised

DATA = "genlab.data.mnist5k: train split (4000 digits) for training, test split (1000 digits) for test_accuracy"


@dataclass(frozen=True)
class Augment:
    """The random affine augmentation of the training batches (the keyword arguments of ``random_affine``): rotation
    up to ``degrees``, scaling by up to 1 +- ``scale``, shifts up to ``shift`` pixels."""

    degrees: float = 10.0
    scale: float = 0.1
    shift: float = 2.0


@dataclass(frozen=True)
class DigitClassifierTrain:
    """The training settings of ``digit_classifier``: ``steps`` of AdamW(``lr``, ``weight_decay``) with a warm-up over
    the first ``warmup`` share of the steps then cosine decay, batches of ``batch_size``, the weight EMA's decay and the
    augmentation."""

    steps: int
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup: float = 0.03
    ema_decay: float = 0.99
    augment: Augment = Augment()


def config(profile: str) -> RecipeConfig:
    """cpu and gpu train the same network (gpu longer); ci trains a narrow one for a few steps: a smoke run of the
    recipe, not a usable judge (notebooks load the shipped cpu checkpoint in every profile)."""
    model = DigitClassifierConfig(channels=(8, 16, 32)) if profile == "ci" else DigitClassifierConfig()
    steps = {"ci": 8, "cpu": 400, "gpu": 2000}[profile]
    return RecipeConfig(model, DigitClassifierTrain(steps=steps))


def train(model: DigitClassifier, config: RecipeConfig, job: TrainJob) -> TrainState:
    """AdamW with warm-up + cosine decay, cross-entropy, random affine augmentation, weight EMA."""
    t = config.train
    augment = asdict(t.augment)
    x, y = mnist5k("train")

    def loss_fn(state: TrainState, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        xb, yb = batch
        with autocast(job.device):
            loss = F.cross_entropy(state.model(random_affine(xb, **augment)), yb)
        return loss, {"loss": loss}

    data = StepBatches(x, y, batch_size=t.batch_size, seed=job.seed)
    return fit_supervised(model, config, job, loss_fn, data, desc="digit_classifier",
                          checkpoint_every=max(t.steps // 5, 1))


def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    x, y = mnist5k("test")
    return {"test_accuracy": accuracy(model.to(device), x, y)}


RECIPE = Recipe(
    name="digit_classifier",
    summary="small CNN classifying MNIST-5k digits; judge of class-conditional samples and digits feature net",
    build=build, config=config, train=train, evaluate=evaluate,
    metrics={"test_accuracy": 0.001},   # 0.1 percentage point = 1 of the 1000 test digits
    data=DATA, seed=0, ship_dtype=torch.float16,
)


@torch.no_grad()
def judge_digits(samples: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu") -> float:
    """Fraction of ``samples`` (N, 1, 28, 28) uint8 that the shipped digit classifier reads as ``labels`` (N,)."""
    judge = load_pretrained("digit_classifier", map_location=device).model
    pred = judge(samples.to(device).float() / 255.0).argmax(1).cpu()
    return float((pred == labels.cpu()).float().mean())
