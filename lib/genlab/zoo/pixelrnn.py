"""Zoo recipes of PixelRNN (genlab.models.pixelrnn): Row LSTM and Diagonal BiLSTM on MNIST 5k, and
:func:`test_split_bpd`.

Adam with warm-up + cosine decay on the 256-way cross-entropy (bits/dim), gradient clipping (LSTMs); the shipped
model is the raw trained network (see :func:`_export`). A recipe's config is typed: the model's
:class:`~genlab.models.pixelrnn.PixelRNNConfig` and the training settings :class:`PixelRNNTrain`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.data.mnist import mnist5k
from genlab.metrics.likelihood import bits_per_dim, evaluate_bpd
from genlab.models.pixelrnn import DiagonalBiLSTM, PixelRNNConfig, RowLSTM
from genlab.train import StepBatches, TrainState, autocast, unwrap
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob
from genlab.zoo.supervised import fit_supervised

DATA = ("genlab.data.mnist5k(as_uint8=True): train split (4000 digits) for training, test split (1000 digits) for "
        "test_bpd")


@dataclass(frozen=True)
class PixelRNNTrain:
    """The training settings of the PixelRNN recipes: ``steps`` of Adam(``lr``) with a warm-up over the first
    ``warmup`` share of the steps then cosine decay, batches of ``batch_size``, gradient norm clipped at ``clip_grad``,
    the weight EMA's decay (kept in the training checkpoints; the shipped model is the raw network)."""

    steps: int
    batch_size: int = 32
    lr: float = 2e-3
    warmup: float = 0.02
    ema_decay: float = 0.999
    clip_grad: float = 1.0


def _config(profile: str, *, ci_steps: int, cpu_steps: int, gpu_steps: int) -> RecipeConfig:
    model = (PixelRNNConfig(hidden=8, out_hidden=16) if profile == "ci"
             else PixelRNNConfig(hidden=64, layers=2, out_hidden=128) if profile == "gpu" else PixelRNNConfig())
    steps = {"ci": ci_steps, "cpu": cpu_steps, "gpu": gpu_steps}[profile]
    return RecipeConfig(model, PixelRNNTrain(steps=steps))


def _train(model: nn.Module, config: RecipeConfig, job: TrainJob, desc: str) -> TrainState:
    """Adam with warm-up + cosine decay on the 256-way cross-entropy, gradient clipping (LSTMs), weight EMA."""
    t = config.train
    x, _ = mnist5k("train", as_uint8=True)

    def loss_fn(state: TrainState, batch: tuple[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        (xb,) = batch
        with autocast(job.device):
            loss = bits_per_dim(state.model(xb), xb)
        return loss, {"bpd": loss}

    data = StepBatches(x, batch_size=t.batch_size, seed=job.seed)
    return fit_supervised(model, config, job, loss_fn, data, desc=desc,
                          optimizer=torch.optim.Adam(model.parameters(), lr=t.lr), clip=t.clip_grad,
                          checkpoint_every=max(t.steps // 20, 1))


def test_split_bpd(model: nn.Module, device: torch.device | str | None = None, n: int | None = None) -> float:
    """Bits per dimension of ``model`` on the first ``n`` (default: all 1000) digits of the MNIST-5k test split."""
    x, _ = mnist5k("test", as_uint8=True)
    if device is not None:
        model = model.to(device)
    return evaluate_bpd(model, x[:n])


test_split_bpd.__test__ = False  # a metric, not a pytest test


#: the shipped checkpoints' provenance also scores the first QUICK_N test digits, which the unit tests re-evaluate
#: (a Diagonal BiLSTM pass over all 1000 digits takes tens of seconds on a busy 2-core machine; `genlab eval` does it)
QUICK_N = 250


@torch.no_grad()
def _evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    """test_bpd over all 1000 test digits, and over the first QUICK_N of them (one pass)."""
    x, _ = mnist5k("test", as_uint8=True)
    model = model.to(device).eval()
    bits = torch.cat([bits_per_dim(model(xb.to(device)), xb.to(device), reduction="none")   # (B,) bits/dim per image
                      for xb in x.split(QUICK_N)])
    return {"test_bpd": bits.mean().item(), f"test_bpd_first{QUICK_N}": bits[:QUICK_N].mean().item()}


def _export(state: TrainState) -> nn.Module:
    """The shipped model is the raw trained network, not the weight EMA the training checkpoints also keep: after the
    cpu profile's few hundred to few thousand steps an EMA with decay 0.999 still carries a large share of the random
    initialisation (0.999^600 = 0.55), which costs several bits/dim."""
    return unwrap(state.model)


def build_row_lstm(model_config: dict) -> RowLSTM:
    return RowLSTM(PixelRNNConfig(**model_config))


def build_diagonal_bilstm(model_config: dict) -> DiagonalBiLSTM:
    return DiagonalBiLSTM(PixelRNNConfig(**model_config))


def row_lstm_config(profile: str) -> RecipeConfig:
    """cpu: 1 Row LSTM layer, 32 hidden units (the shipped model); ci: a tiny smoke run; gpu: 2 layers, 64 units."""
    return _config(profile, ci_steps=4, cpu_steps=1500, gpu_steps=20000)


def diagonal_bilstm_config(profile: str) -> RecipeConfig:
    """cpu: 1 Diagonal BiLSTM layer, 32 hidden units (the shipped model); ci: a tiny smoke run; gpu: 2 layers, 64."""
    return _config(profile, ci_steps=4, cpu_steps=600, gpu_steps=20000)


def _recipe(name: str, summary: str, build, config) -> Recipe:
    return Recipe(name=name, summary=summary, build=build, config=config,
                  train=lambda model, cfg, job: _train(model, cfg, job, name), evaluate=_evaluate,
                  metrics={"test_bpd": 0.005, f"test_bpd_first{QUICK_N}": 0.005}, data=DATA, seed=0,
                  ship_dtype=torch.float16, export=_export)


ROW_LSTM_RECIPE = _recipe("row_lstm_mnist", "PixelRNN Row LSTM on MNIST-5k (256-way softmax); triangular receptive "
                          "field", build_row_lstm, row_lstm_config)
DIAGONAL_BILSTM_RECIPE = _recipe("diagonal_bilstm_mnist", "PixelRNN Diagonal BiLSTM on MNIST-5k (256-way softmax); "
                                 "full causal context", build_diagonal_bilstm, diagonal_bilstm_config)
