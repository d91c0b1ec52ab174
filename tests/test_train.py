"""Training core: EMA formula, exact resume after an interruption, NaN detection, CPU no-ops, step-indexed batches."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.checkpoints import CheckpointError, load_checkpoint
from genlab.train import (NonFiniteLossError, StepBatches, TrainState, autocast, fit, init_distributed,
                          is_main_process, make_ema, prepare_model, resume_from, to_device, warmup_cosine)


def test_ema_follows_its_formula_on_a_hand_made_sequence():
    net = nn.Linear(1, 1, bias=False)
    net.register_buffer("running", torch.zeros(1))
    decay = 0.9
    ema = make_ema(net, decay)
    values = [2.0, -1.0, 4.0, 0.5, 3.0]
    expected = None
    for v in values:
        with torch.no_grad():
            net.weight.fill_(v)
            net.running.fill_(10 * v)
        ema.update_parameters(net)
        # W_ema = W_1 at the first update, then W_ema <- decay * W_ema + (1 - decay) * W_t
        expected = v if expected is None else decay * expected + (1 - decay) * v
        assert ema.module.weight.item() == pytest.approx(expected, abs=1e-6)
        assert ema.module.running.item() == pytest.approx(10 * expected, abs=1e-5)  # buffers are averaged too
    assert expected == pytest.approx(1.9083)  # 2 -> 1.7 -> 1.93 -> 1.787 -> 1.9083
    assert ema.module is not net and net.weight.item() == 3.0  # the average lives in its own copy


# ------------------------------------------------------------------------------------------------ resume
def _make_run(seed: int):
    """A tiny classifier with dropout (draws from the global RNG) + Adam + EMA, and its step-indexed data."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    state = TrainState(model=net, optimizer=opt, ema=make_ema(net, 0.8))
    g = torch.Generator().manual_seed(123)
    data = StepBatches(torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g), batch_size=8, seed=5)
    return state, data


def _step(state, batch):
    x, y = batch
    noise = torch.randn(()) * 1e-3 + float(np.random.rand()) * 1e-3  # global torch and NumPy RNGs are restored too
    loss = F.cross_entropy(state.model(x), y) + noise
    state.optimizer.zero_grad()
    loss.backward()
    state.optimizer.step()
    return {"loss": loss}


class Interrupted(Exception):
    pass


def test_resume_after_interruption_gives_the_same_final_weights(tmp_path):
    steps, meta = 13, {"config": {"lr": 1e-2}, "seed": 0, "command": "test", "data": "random"}
    torch.manual_seed(99)
    np.random.seed(99)
    ref, data = _make_run(seed=0)
    fit(ref, _step, data, steps, progress=False)

    torch.manual_seed(99)
    np.random.seed(99)
    first, data = _make_run(seed=0)
    ckpt = tmp_path / "run" / "last.pt"

    def crashing_step(state, batch):
        if state.step == 9:  # dies after the checkpoint at step 8, losing step 9's work
            raise Interrupted
        return _step(state, batch)

    with pytest.raises(Interrupted):
        fit(first, crashing_step, data, steps, checkpoint=ckpt, checkpoint_every=4, meta=meta, progress=False)
    assert load_checkpoint(ckpt).states["train"]["step"] == 8

    torch.manual_seed(12345)  # a fresh process: other initial weights, other RNG states
    np.random.seed(12345)
    resumed, data = _make_run(seed=1)
    fit(resumed, _step, data, steps, checkpoint=ckpt, checkpoint_every=4, meta=meta, progress=False)

    assert resumed.step == steps
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert ref.history["loss"] == resumed.history["loss"]
    assert load_checkpoint(ckpt).states["train"]["step"] == steps  # the final state is saved too


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    state, data = _make_run(seed=0)
    ckpt = tmp_path / "last.pt"
    fit(state, _step, data, 2, checkpoint=ckpt, meta={"config": {"lr": 1e-2}}, progress=False)
    other, _ = _make_run(seed=0)
    with pytest.raises(CheckpointError, match="another config.*--no-resume"):
        resume_from(other, ckpt, config={"lr": 1.0})
    assert resume_from(other, ckpt, config={"lr": 1e-2}) and other.step == 2
    fresh, _ = _make_run(seed=0)
    fit(fresh, _step, data, 1, checkpoint=ckpt, resume=False, meta={"config": {"lr": 1.0}}, progress=False)
    assert fresh.step == 1  # --no-resume starts afresh (and overwrites the old checkpoint)
    assert load_checkpoint(ckpt).config == {"lr": 1.0}


# ------------------------------------------------------------------------------------------------ NaN
def test_non_finite_loss_stops_with_the_step_number():
    state, data = _make_run(seed=0)

    def step_fn(state, batch):
        logs = _step(state, batch)
        return {"loss": logs["loss"] * (math.inf if state.step == 4 else 1.0), "lr": 1e-2}

    with pytest.raises(NonFiniteLossError, match=r"loss is inf at step 5.*learning rate.*data") as e:
        fit(state, step_fn, data, 10, progress=False)
    assert (e.value.step, e.value.name) == (5, "loss")
    assert state.step == 4 and len(state.history["loss"]) == 4  # the bad step is not counted


def test_nan_in_any_logged_value_is_caught_too():
    state, data = _make_run(seed=0)
    with pytest.raises(NonFiniteLossError, match="grad_norm is nan at step 1"):
        fit(state, lambda s, b: {"loss": 1.0, "grad_norm": torch.tensor(float("nan"))}, data, 3, progress=False)


# ------------------------------------------------------------------------------------------- devices
def test_autocast_and_channels_last_are_no_ops_on_cpu():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
        out = a @ b
    assert out.dtype == torch.float32 and torch.equal(out, a @ b)
    conv = prepare_model(nn.Conv2d(3, 4, 3), "cpu")
    assert conv.weight.is_contiguous()  # default layout, not channels_last
    x = to_device((torch.rand(2, 3, 8, 8), {"y": torch.arange(2)}), "cpu")
    assert x[0].is_contiguous() and torch.equal(x[1]["y"], torch.arange(2))


def test_single_process_run_is_rank_zero_of_one(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_distributed, info.device.type) == (0, 1, False, "cpu")
    assert is_main_process() and not torch.distributed.is_initialized()


# ---------------------------------------------------------------------------------------------- data
def test_step_batches_slice_the_global_batch_across_ranks_and_cover_each_epoch():
    idx = torch.arange(20)
    single = StepBatches(idx, batch_size=4, seed=3, rank=0, world_size=1)
    ranks = [StepBatches(idx, batch_size=4, seed=3, rank=r, world_size=2) for r in range(2)]
    assert len(single) == 5
    epoch0 = []
    for step in range(5):
        (g,) = single(step)
        parts = [r(step)[0] for r in ranks]
        assert torch.equal(torch.cat(parts), g) and all(len(p) == 2 for p in parts)
        epoch0.append(g)
    assert sorted(torch.cat(epoch0).tolist()) == list(range(20))  # each epoch sees every example once
    assert not torch.equal(single(5)[0], epoch0[0])  # a new permutation next epoch
    assert torch.equal(StepBatches(idx, batch_size=4, seed=3, rank=0, world_size=1)(7)[0], single(7)[0])
    with pytest.raises(ValueError, match="divisible by the world size"):
        StepBatches(idx, batch_size=5, rank=0, world_size=2)


def test_warmup_cosine_schedule():
    total = 100
    assert warmup_cosine(0, total, warmup=0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, total, warmup=0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, total, warmup=0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, total, warmup=0.1) == pytest.approx(0.5)  # halfway through the cosine
    assert warmup_cosine(100, total, warmup=0.1) == pytest.approx(0.0, abs=1e-12)
