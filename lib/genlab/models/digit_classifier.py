"""A small CNN that classifies MNIST digits: the course's judge of class-conditional samples and its digits feature net.

Later notebooks use it to score samples ("is this a 7?": the accuracy of class-conditional PixelCNN / GAN samples) and
its penultimate embedding (:meth:`DigitClassifier.features`) as the feature space of FID/KID-style metrics on digits,
reported as e.g. ``fid_digits`` -- never passed off as Inception FID (DESIGN.md, "Embedded data").

Architecture (VGG-style, Simonyan & Zisserman 2015, with batch norm, Ioffe & Szegedy 2015): three stages of 3x3 convs
28 -> 14 -> 7, global average pooling to a ``channels[-1]``-dim embedding, one linear layer to 10 logits.
Trained on genlab.data.mnist5k("train") (4000 digits) with light random affine augmentation; evaluated on "test"
(1000 digits). Registered in the zoo as ``digit_classifier``; the shipped checkpoint is loaded with
``load_pretrained("digit_classifier").model``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data.mnist import mnist5k
from genlab.nn.eval_mode import evaluating
from genlab.train import StepBatches, TrainState, autocast, fit, make_ema, warmup_cosine, wrap_ddp
from genlab.zoo import Recipe, TrainJob

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # pixel statistics of MNIST's training set, in [0, 1] units


@dataclass
class DigitClassifierConfig:
    """channels: output channels of the three conv stages (the last is the embedding size); dropout before the head."""

    channels: tuple[int, int, int] = (32, 64, 128)
    dropout: float = 0.1


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DigitClassifier(nn.Module):
    """x: (B, 1, 28, 28) in [0, 1] -> logits (B, 10). Inputs are standardized inside, so callers pass raw pixels."""

    def __init__(self, config: DigitClassifierConfig | None = None):
        super().__init__()
        self.config = config = config or DigitClassifierConfig()
        c1, c2, c3 = config.channels
        self.trunk = nn.Sequential(
            _conv_bn(1, c1), _conv_bn(c1, c1), nn.MaxPool2d(2),    # 28 -> 14
            _conv_bn(c1, c2), _conv_bn(c2, c2), nn.MaxPool2d(2),   # 14 -> 7
            _conv_bn(c2, c3),                                      # 7x7, receptive field covers the digit
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c3, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: (B, 1, 28, 28) in [0, 1] -> (B, channels[-1]), >= 0 (ReLU, then average pooling)."""
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"DigitClassifier expects images of shape (B, 1, 28, 28) in [0, 1], got {tuple(x.shape)}"
                             " (resize/crop to 28x28 and add the channel axis first)")
        h = self.trunk((x - MNIST_MEAN) / MNIST_STD)
        return h.mean(dim=(2, 3))                              # global average pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def random_affine(x: torch.Tensor, *, degrees: float = 10.0, scale: float = 0.1, shift: float = 2.0) -> torch.Tensor:
    """Light augmentation: per image a random rotation (+-degrees), zoom (1 +- scale) and shift (+-shift pixels).

    x: (B, C, H, W) -> (B, C, H, W), zero (black) fill. Draws from torch's global RNG, which checkpoints restore.
    """
    b, _, h, w = x.shape
    u = torch.rand(b, 4, device=x.device) * 2 - 1                               # U(-1, 1)
    angle, zoom = u[:, 0] * math.radians(degrees), 1 + u[:, 1] * scale
    tx, ty = u[:, 2] * shift * 2 / w, u[:, 3] * shift * 2 / h                  # pixels -> [-1, 1] grid units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 100) -> float:
    """Fraction of ``x`` (N, 1, 28, 28) classified as ``y`` (N,), in eval mode, batch by batch."""
    device = next(model.parameters()).device
    correct = 0
    with evaluating(model):
        for i in range(0, len(x), batch_size):
            correct += (model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
    return correct / len(x)


# ------------------------------------------------------------------------------------------------------ recipe
DATA = "genlab.data.mnist5k: train split (4000 digits) for training, test split (1000 digits) for test_accuracy"


def build(model_config: dict) -> DigitClassifier:
    cfg = dict(model_config)
    cfg["channels"] = tuple(cfg["channels"])
    return DigitClassifier(DigitClassifierConfig(**cfg))


def config(profile: str) -> dict:
    """cpu and gpu train the same network (gpu longer); ci trains a narrow one for a few steps: a smoke run of the
    recipe, not a usable judge (notebooks load the shipped cpu checkpoint in every profile)."""
    model = DigitClassifierConfig(channels=(8, 16, 32)) if profile == "ci" else DigitClassifierConfig()
    steps = {"ci": 8, "cpu": 400, "gpu": 2000}[profile]
    return {"model": asdict(model),
            "train": {"steps": steps, "batch_size": 128, "lr": 3e-3, "weight_decay": 5e-4, "warmup": 0.03,
                      "ema_decay": 0.99, "augment": {"degrees": 10.0, "scale": 0.1, "shift": 2.0}}}


def train(model: DigitClassifier, config: dict, job: TrainJob) -> TrainState:
    """AdamW with warm-up + cosine decay, cross-entropy, random affine augmentation, weight EMA."""
    t = config["train"]
    x, y = mnist5k("train")
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    state = TrainState(model=wrap_ddp(model), optimizer=opt, ema=make_ema(model, t["ema_decay"]))

    def step_fn(state: TrainState, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        xb, yb = batch
        lr = t["lr"] * warmup_cosine(state.step, t["steps"], warmup=t["warmup"])
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(job.device):
            loss = F.cross_entropy(state.model(random_affine(xb, **t["augment"])), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss}

    data = StepBatches(x, y, batch_size=t["batch_size"], seed=job.seed)
    return fit(state, step_fn, data, t["steps"], device=job.device, checkpoint=job.checkpoint,
               checkpoint_every=max(t["steps"] // 5, 1), resume=job.resume, meta=job.meta(config),
               progress=job.progress, desc="digit_classifier")


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
