"""The two-player step: which network each half updates, the lazy R1 schedule and weight, the G EMA, exact resume
under fit, a monitor that does not perturb training, and a toy GAN that actually learns a 2-D Gaussian."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from genlab.checkpoints import load_checkpoint
from genlab.train import (GANMonitor, GANStepConfig, discriminator_step, gan_state, generator_step, make_gan_step)
from genlab.losses import get_gan_loss
from genlab.models.dcgan import DCGANConfig, Discriminator, Generator
from genlab.models.toy2d import MLPDiscriminator, MLPGenerator
from genlab.train import StepBatches, fit

pytestmark = pytest.mark.usefixtures("one_thread")

Z = 16


def _dcgan_state(seed: int = 0, ema_decay: float = 0.9, **cfg):
    torch.manual_seed(seed)
    c = DCGANConfig(z_dim=Z, g_width=8, d_width=8, **cfg)
    G, D = Generator(c), Discriminator(c)
    return gan_state(G, D, torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.999)),
                     torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.999)), ema_decay=ema_decay)


def _images(n: int = 32, seed: int = 7) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_d_step_updates_only_d_and_g_step_only_g():
    state = _dcgan_state()
    G, D = state.model["G"], state.model["D"]
    loss, real = get_gan_loss("nonsaturating"), _images(8)
    g0, d0 = _params(G), _params(D)
    logs = discriminator_step(G, D, state.optimizer["D"], real, torch.randn(8, Z), loss)
    assert set(logs) == {"d_loss", "d_real", "d_fake"}
    assert _same(_params(G), g0) and all(p.grad is None for p in G.parameters())   # G made the fakes without a graph
    assert not _same(_params(D), d0)

    d1, d_grads = _params(D), [p.grad.clone() for p in D.parameters()]
    logs = generator_step(G, D, state.optimizer["G"], torch.randn(8, Z), loss)
    assert set(logs) == {"g_loss"}
    assert _same(_params(D), d1)                                                    # D's weights are untouched ...
    assert all(torch.equal(p.grad, g) for p, g in zip(D.parameters(), d_grads))     # ... and so are its gradients
    assert all(p.requires_grad for p in D.parameters())                             # unfrozen afterwards
    assert not _same(_params(G), g0)


def test_step_fn_logs_and_accepts_a_tensor_or_a_tuple_batch():
    real = _images(8)
    results = []
    for batch in (real, (real, torch.zeros(8, dtype=torch.long))):
        state = _dcgan_state()
        torch.manual_seed(3)
        logs = make_gan_step(GANStepConfig(z_dim=Z))(state, batch)
        results.append((logs, _params(state.model)))
    (logs, p_tensor), (logs_tuple, p_tuple) = results
    assert set(logs) == {"d_loss", "d_real", "d_fake", "g_loss"}
    assert all(torch.equal(logs[k], logs_tuple[k]) for k in logs) and _same(p_tensor, p_tuple)


def test_d_steps_updates_d_that_many_times_per_g_update():
    state = _dcgan_state()
    make_gan_step(GANStepConfig(z_dim=Z, d_steps=3))(state, _images(8))
    adam_steps = {k: int(next(iter(opt.state.values()))["step"]) for k, opt in state.optimizer.items()}
    assert adam_steps == {"D": 3, "G": 1}


def test_lazy_r1_on_steps_0_4_8_with_weight_gamma_over_2_times_interval():
    cfg = GANStepConfig(z_dim=Z, r1_gamma=10.0, r1_every=4)
    assert [cfg.r1_weight(s) for s in range(9)] == [20.0, 0, 0, 0, 20.0, 0, 0, 0, 20.0]
    assert GANStepConfig(z_dim=Z, r1_gamma=10.0).r1_weight(3) == 5.0    # every step: gamma/2
    assert GANStepConfig(z_dim=Z).r1_weight(0) == 0.0                   # off
    state, r1_steps = _dcgan_state(d_batchnorm=False), []
    fit(state, make_gan_step(cfg), StepBatches(_images(), batch_size=8), 9, progress=False,
        callback=lambda st, logs: r1_steps.append(st.step - 1) if "r1" in logs else None)  # st.step: steps done
    assert r1_steps == [0, 4, 8] and len(state.history["r1"]) == 3 and len(state.history["d_loss"]) == 9


def test_r1_enters_d_gradient_with_its_weight():
    """A linear D(x) = w . x: R1 = ||w||^2, so the penalty adds exactly weight * 2w to D's weight gradient."""
    torch.manual_seed(0)
    G, D = MLPGenerator(z_dim=2, hidden=8), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))
    opt_D = torch.optim.SGD(D.parameters(), lr=0.0)        # lr 0: the gradients stay, the weights do not move
    real, z, loss = torch.randn(16, 2), torch.randn(16, 2), get_gan_loss("hinge")
    discriminator_step(G, D, opt_D, real, z, loss)
    plain = D[0].weight.grad.clone()
    logs = discriminator_step(G, D, opt_D, real, z, loss, r1_weight=3.0)
    w = D[0].weight.detach()
    assert logs["r1"].item() == pytest.approx(w.square().sum().item())
    torch.testing.assert_close(D[0].weight.grad, plain + 3.0 * 2 * w)


def test_ema_of_g_follows_its_formula_during_fit():
    decay, seen = 0.7, []
    state = _dcgan_state(ema_decay=decay)
    fit(state, make_gan_step(GANStepConfig(z_dim=Z)), StepBatches(_images(), batch_size=8), 5, progress=False,
        callback=lambda st, logs: seen.append(_params(st.model["G"])))
    expected = seen[0]                                     # W_ema = W_1, then decay * W_ema + (1 - decay) * W_t
    for params in seen[1:]:
        expected = [decay * e + (1 - decay) * p for e, p in zip(expected, params)]
    for e, p in zip(expected, state.ema.module.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-5, atol=1e-7)
    assert isinstance(state.ema.module, Generator)
    g_now = _params(state.model["G"])
    gap_start = sum((a - b).norm() for a, b in zip(seen[0], g_now))
    gap_ema = sum((a - b).norm() for a, b in zip(state.ema.module.parameters(), g_now))
    assert gap_ema < gap_start                             # the average has moved from the start toward G


class Interrupted(Exception):
    pass


def test_resume_after_interruption_gives_the_same_gan(tmp_path):
    steps, ckpt = 7, tmp_path / "gan" / "last.pt"
    cfg = GANStepConfig(z_dim=Z, r1_gamma=1.0, r1_every=2)
    meta = {"config": {"gan": "test"}, "seed": 0, "command": "test", "data": "random"}
    data = StepBatches(_images(), batch_size=8, seed=3)

    torch.manual_seed(99)
    ref = fit(_dcgan_state(seed=0), make_gan_step(cfg), data, steps, progress=False)

    torch.manual_seed(99)
    step = make_gan_step(cfg)

    def crashing(state, batch):
        if state.step == 5:                               # dies after the checkpoint at step 3
            raise Interrupted
        return step(state, batch)

    with pytest.raises(Interrupted):
        fit(_dcgan_state(seed=0), crashing, data, steps, checkpoint=ckpt, checkpoint_every=3, meta=meta,
            progress=False)
    assert load_checkpoint(ckpt).states["train"]["step"] == 3

    torch.manual_seed(12345)                               # a fresh process: other weights, other RNG state
    resumed = fit(_dcgan_state(seed=1), make_gan_step(cfg), data, steps, checkpoint=ckpt, checkpoint_every=3,
                  meta=meta, progress=False)
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert ref.history == resumed.history and len(ref.history["r1"]) == 4   # steps 0, 2, 4, 6
    assert set(load_checkpoint(ckpt).states) >= {"model", "optim.G", "optim.D", "ema", "rng"}


def test_monitor_samples_the_ema_at_a_fixed_z_and_leaves_training_unchanged():
    def run(monitor):
        torch.manual_seed(5)
        return fit(_dcgan_state(), make_gan_step(GANStepConfig(z_dim=Z)), StepBatches(_images(), batch_size=8), 6,
                   progress=False, callback=monitor)

    def metric(G):                                         # draws from the global RNG: the monitor must restore it
        return G(torch.randn(4, Z)).mean().item()

    plain = run(None)
    monitor = GANMonitor(every=2, z_dim=Z, n=6, nrow=3, seed=1, metric_fn=metric)
    z0 = monitor.z.clone()
    watched = run(monitor)
    assert _same(_params(plain.model), _params(watched.model))
    assert plain.history == watched.history
    assert [s for s, _ in monitor.metrics] == [2, 4, 6] and monitor.step == 6
    assert torch.equal(monitor.z, z0) and torch.equal(z0, torch.randn(6, Z, generator=torch.Generator().manual_seed(1)))
    ema = watched.ema.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(monitor.samples, ema(monitor.z))
    assert watched.ema.module.training is False and monitor.grid.shape == (3, 2 * 30 + 2, 3 * 30 + 2)
    assert monitor.grid.min() >= 0 and monitor.grid.max() <= 1


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown GAN loss 'wasserstein'.*'hinge'"):
        GANStepConfig(loss="wasserstein")
    with pytest.raises(ValueError, match="r1_every must be a positive int"):
        GANStepConfig(r1_every=0)
    with pytest.raises(ValueError, match="r1_gamma must be >= 0"):
        GANStepConfig(r1_gamma=-1.0)


def test_non_saturating_gan_learns_a_2d_gaussian():
    """It actually learns: G's samples move from near the origin to the data's mean (2, 2)."""
    torch.manual_seed(0)
    data = torch.randn(2048, 2) * 0.3 + torch.tensor([2.0, 2.0])
    G, D = MLPGenerator(z_dim=2, hidden=32), MLPDiscriminator(hidden=32)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.999)),
                      torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.999)), ema_decay=0.99)
    with torch.no_grad():
        start = G(torch.randn(1000, 2)).mean(0)
    assert (start - 2).norm() > 2.0
    fit(state, make_gan_step(GANStepConfig(loss="nonsaturating", z_dim=2)), StepBatches(data, batch_size=64), 400,
        progress=False)
    with torch.no_grad():
        mean = state.ema.module(torch.randn(2000, 2)).mean(0)
    assert (mean - 2).norm() < 0.3, mean


# ----------------------------------------------------------------------------------------------------------- DDP
def _toy_ddp_run(out) -> dict:
    """A few R1-regularised steps of the toy GAN over a global batch of 16, in this process or as one of the ranks of
    a torchrun job; each rank draws the global batch's z and takes its slice, so every world size sees the same z."""
    from genlab.train import cleanup, get_rank, get_world_size, init_distributed

    init_distributed("cpu")
    rank, world = get_rank(), get_world_size()
    torch.manual_seed(0)
    G, D = MLPGenerator(z_dim=2, hidden=16), MLPDiscriminator(hidden=16)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 1e-2), torch.optim.Adam(D.parameters(), 1e-2), 0.5)
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) + 2

    def sample_z(n, device):
        return torch.randn(n * world, 2, device=device)[rank * n:(rank + 1) * n]

    step = make_gan_step(GANStepConfig(z_dim=2, r1_gamma=1.0, r1_every=2), sample_z=sample_z)
    fit(state, step, StepBatches(data, batch_size=16, seed=2), 5, progress=False)
    result = {"world_size": world, "model": {k: v.clone() for k, v in state.model.state_dict().items()},
              "history": state.history}
    torch.save(result, f"{out}/rank{rank}.pt")
    cleanup()
    return result


def _stylegan2_ddp_run(out) -> dict:
    """A few steps of a tiny StyleGAN2 with lazy R1 and path-length regularization (every 2 steps) per rank."""
    from genlab.models import stylegan2
    from genlab.train import cleanup, get_rank, get_world_size, init_distributed

    init_distributed("cpu")
    rank, world = get_rank(), get_world_size()
    torch.manual_seed(rank)                                   # different z, noise and y on each rank
    c = stylegan2.StyleGAN2Config(resolution=8, max_channels=8, channel_base=32, mapping_layers=2, z_dim=8, w_dim=8)
    G, D = stylegan2.Generator(c), stylegan2.Discriminator(c)
    torch.manual_seed(0)
    G.load_state_dict(stylegan2.Generator(c).state_dict())    # identical initial weights on every rank
    D.load_state_dict(stylegan2.Discriminator(c).state_dict())
    torch.manual_seed(rank)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 1e-2, betas=(0.0, 0.99)),
                      torch.optim.Adam(D.parameters(), 1e-2, betas=(0.0, 0.99)))
    data = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    step = make_gan_step(GANStepConfig(z_dim=8, r1_gamma=1.0, r1_every=2, pl_weight=2.0, pl_every=2))
    fit(state, step, StepBatches(data, batch_size=8, seed=2), 4, progress=False)
    result = {"world_size": world, "model": {k: v.clone() for k, v in state.model.state_dict().items()},
              "history": state.history}
    torch.save(result, f"{out}/rank{rank}.pt")
    cleanup()
    return result


def _torchrun(tmp_path, worker: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "GENLAB_DEVICE")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", __file__, str(tmp_path), worker]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_gloo_ranks_keep_stylegan2_in_sync_under_path_length_regularization(tmp_path):
    _torchrun(tmp_path, "stylegan2")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world_size"] == 2 and len(r0["history"]["pl_length"]) == 2     # steps 0 and 2
    # each rank drew its own z, noise and y: only the all-reduce of the path-length gradients keeps the weights (and
    # the running mean length) equal; w_avg is a per-rank running statistic, as in the official code
    for k, v in r0["model"].items():
        if not k.endswith("w_avg"):
            torch.testing.assert_close(r1["model"][k], v, rtol=1e-5, atol=1e-6, msg=f"ranks disagree on {k}")
    assert r0["model"]["G.pl_mean"] > 0


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_gloo_ranks_train_the_gan_like_one_process_over_the_global_batch(tmp_path, monkeypatch):
    _torchrun(tmp_path, "toy")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    single = _toy_ddp_run(tmp_path)                       # world size 1: writes rank0.pt again, after reading it
    assert (r0["world_size"], r1["world_size"], single["world_size"]) == (2, 2, 1)
    assert len(single["history"]["r1"]) == 3              # steps 0, 2, 4: R1's double backward ran under DDP too
    for k, v in single["model"].items():
        assert torch.equal(r0["model"][k], r1["model"][k]), f"ranks disagree on {k}"
        torch.testing.assert_close(r0["model"][k], v, rtol=1e-5, atol=1e-6)


if __name__ == "__main__":                                 # the torchrun workers of the tests above
    {"toy": _toy_ddp_run, "stylegan2": _stylegan2_ddp_run}[sys.argv[2]](sys.argv[1])
