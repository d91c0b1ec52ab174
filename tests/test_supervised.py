"""genlab.zoo.supervised.fit_supervised, the loop of the one-network recipes, on a tiny nn.Linear and synthetic data:
the rate follows warmup_cosine, the EMA follows its formula, the loss's logs land in the history, clipping and the
optimizer options act, and a resumed run ends with the weights of an uninterrupted one."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.checkpoints import load_checkpoint
from genlab.train import StepBatches, unwrap, warmup_cosine
from genlab.zoo.registry import RecipeConfig, TrainJob
from genlab.zoo.supervised import fit_supervised

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class TinyModel:
    features: int = 3


@dataclass(frozen=True)
class TinyTrain:
    steps: int = 20
    lr: float = 0.1
    warmup: float = 0.2
    weight_decay: float = 0.01
    ema_decay: float = 0.8


def _config(**train) -> RecipeConfig:
    return RecipeConfig(TinyModel(), TinyTrain(**train))


def _job(checkpoint=None) -> TrainJob:
    return TrainJob(profile="ci", device=torch.device("cpu"), seed=0, command="test", data="synthetic",
                    checkpoint=checkpoint, progress=False)


def _model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(3, 1)


def _data() -> StepBatches:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(64, 3, generator=g)
    return StepBatches(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3, batch_size=8, seed=0)


def _mse(state, batch):
    x, y = batch
    loss = F.mse_loss(state.model(x), y)
    return loss, {"mse": loss, "twice": 2 * loss.detach()}


def test_rate_follows_warmup_cosine_and_logs_land_in_the_history():
    seen = []

    def loss_fn(state, batch):
        seen.append(state.optimizer.param_groups[0]["lr"])          # the rate in force for this step's update
        return _mse(state, batch)

    config = _config()
    state = fit_supervised(_model(), config, _job(), loss_fn, _data(), desc="tiny")
    t = config.train
    assert state.step == t.steps
    assert seen == [t.lr * warmup_cosine(s, t.steps, warmup=t.warmup) for s in range(t.steps)]
    assert seen[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])   # 4 warm-up steps (0.2 of 20), then cosine decay
    assert seen[-1] < 0.01 and seen == sorted(seen[:4]) + sorted(seen[4:], reverse=True)
    assert set(state.history) == {"mse", "twice"} and len(state.history["mse"]) == t.steps
    assert state.history["twice"] == pytest.approx([2 * v for v in state.history["mse"]])
    assert state.history["mse"][-1] < state.history["mse"][0]
    opt = state.optimizer
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == t.weight_decay


def test_ema_is_updated_after_every_step_with_its_decay():
    weights = []
    config = _config(steps=6)
    state = fit_supervised(_model(), config, _job(), _mse, _data(), desc="tiny",
                           callback=lambda s, logs: weights.append(unwrap(s.model).weight.detach().clone()))
    expected = weights[0]
    for w in weights[1:]:
        expected = config.train.ema_decay * expected + (1 - config.train.ema_decay) * w
    assert int(state.ema.n_averaged) == 6
    assert torch.allclose(state.ema.module.weight, expected, atol=1e-6)
    assert not torch.allclose(state.ema.module.weight, weights[-1])   # an average, not the last weights


def test_clip_and_optimizer_options():
    norms = []

    def loss_fn(state, batch):
        x, y = batch
        return F.mse_loss(state.model(x), 100 * y), {}

    model = _model()
    fit_supervised(model, _config(steps=3), _job(), loss_fn, _data(), desc="tiny", clip=0.5,
                   callback=lambda s, logs: norms.append(torch.cat([p.grad.flatten() for p in model.parameters()])
                                                         .norm().item()))
    assert max(norms) == pytest.approx(0.5, rel=1e-4)                # clipped before the step (grads are kept)

    model = _model()
    adam = torch.optim.Adam(model.parameters(), lr=123.0)
    state = fit_supervised(model, _config(steps=3), _job(), _mse, _data(), desc="tiny", optimizer=adam)
    assert state.optimizer is adam and adam.param_groups[0]["lr"] == pytest.approx(0.1 * warmup_cosine(2, 3, 0.2))
    state = fit_supervised(_model(), _config(steps=3), _job(), _mse, _data(), desc="tiny", weight_decay=0.0)
    assert state.optimizer.param_groups[0]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="not both"):
        fit_supervised(_model(), _config(), _job(), _mse, _data(), desc="tiny", optimizer=adam, weight_decay=0.0)


class Interrupted(Exception):
    pass


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    config = _config()
    ref = fit_supervised(_model(seed=0), config, _job(), _mse, _data(), desc="tiny")

    ckpt = tmp_path / "tiny" / "last.pt"

    def crashing(state, batch):
        if state.step == 9:            # dies after the checkpoint at step 8 (every max(20 // 10, 1) = 2 steps)
            raise Interrupted
        return _mse(state, batch)

    with pytest.raises(Interrupted):
        fit_supervised(_model(seed=0), config, _job(ckpt), crashing, _data(), desc="tiny")
    assert load_checkpoint(ckpt).states["train"]["step"] == 8

    resumed = fit_supervised(_model(seed=1), config, _job(ckpt), _mse, _data(), desc="tiny")   # other init weights
    assert resumed.step == config.train.steps
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert ref.history == resumed.history
    assert load_checkpoint(ckpt).states["train"]["step"] == config.train.steps
