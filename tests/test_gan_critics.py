"""GAN objectives as a list of critics: the one-critic configuration is exactly Algorithm 1 written by hand (the
regression net for DCGAN/StyleGAN), and several critics each see their own view, get their own update and their
weighted share of G's loss; conditional inputs and extra G terms reach the step."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.train import Critic, GANStepConfig, StepBatches, fit, gan_state, make_gan_step

pytestmark = pytest.mark.usefixtures("one_thread")

Z = 4


def _nets(seed: int = 0):
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(Z, 16), nn.Tanh(), nn.Linear(16, 6))               # "clips" of 3 frames x 2 values
    D = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Flatten(0))
    return G, D


def _real(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(3)) * 0.5 + 1.0


def test_one_critic_step_is_algorithm_1_by_hand():
    """make_gan_step with its default critic == D step then G step written out with softplus losses and Adam."""
    G, D = _nets()
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 1e-2), torch.optim.Adam(D.parameters(), 1e-2))
    G2, D2 = _nets()
    opt_g, opt_d = torch.optim.Adam(G2.parameters(), 1e-2), torch.optim.Adam(D2.parameters(), 1e-2)
    real = _real()
    step = make_gan_step(GANStepConfig(z_dim=Z))
    for _ in range(3):
        torch.manual_seed(11)
        logs = step(state, real)
        state.step += 1
        torch.manual_seed(11)
        z = torch.randn(8, Z)
        with torch.no_grad():
            fake = G2(z)
        d_loss = F.softplus(-D2(real)).mean() + F.softplus(D2(fake)).mean()      # -log D(x) - log(1 - D(G(z)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D2(G2(torch.randn(8, Z)))).mean()                  # non-saturating: -log D(G(z))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        assert torch.allclose(logs["d_loss"], d_loss.detach(), atol=1e-6)
        assert torch.allclose(logs["g_loss"], g_loss.detach(), atol=1e-6)
    for a, b in zip([*G.parameters(), *D.parameters()], [*G2.parameters(), *D2.parameters()]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_two_critics_see_their_views_and_share_g_loss():
    G, D1 = _nets()
    torch.manual_seed(5)
    D2 = nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))                             # sees one "frame"
    seen = {"D_full": [], "D_frame": []}

    def full(x, batch):
        seen["D_full"].append(tuple(x.shape))
        return x

    def frame(x, batch):
        seen["D_frame"].append(tuple(x.shape))
        return x[:, 2:4]                                                           # frame 1 of 3

    critics = [Critic("D_full", view=full), Critic("D_frame", view=frame, weight=0.5, loss="hinge")]
    opts = {"D_full": torch.optim.SGD(D1.parameters(), 0.1), "D_frame": torch.optim.SGD(D2.parameters(), 0.1)}
    state = gan_state(G, {"D_full": D1, "D_frame": D2}, torch.optim.SGD(G.parameters(), 0.1), opts)
    before = {k: [p.detach().clone() for p in state.model[k].parameters()] for k in ("G", "D_full", "D_frame")}
    logs = make_gan_step(GANStepConfig(z_dim=Z), critics=critics)(state, _real())
    assert set(state.model.keys()) == {"G", "D_full", "D_frame"}
    for k in ("G", "D_full", "D_frame"):
        assert any(not torch.equal(a, b) for a, b in zip(before[k], state.model[k].parameters())), f"{k} not updated"
    # each critic sees real and fake in its D update, and the fake once more in G's update
    assert seen == {"D_full": [(8, 6)] * 3, "D_frame": [(8, 6)] * 3}
    assert {"d_loss_D_full", "d_loss_D_frame", "g_loss_D_full", "g_loss_D_frame", "g_loss"} <= set(logs)
    total = logs["g_loss_D_full"] + 0.5 * logs["g_loss_D_frame"]
    assert torch.allclose(logs["g_loss"], total, atol=1e-6)


def test_conditional_input_and_extra_g_terms_reach_the_step():
    """g_input builds G's input from the batch (a label), g_extra adds a named term to G's loss (here an L1)."""
    torch.manual_seed(0)
    G = nn.Linear(Z + 1, 6)
    D = nn.Sequential(nn.Linear(6 + 1, 1), nn.Flatten(0))
    labels = torch.arange(8, dtype=torch.float32)[:, None] / 8
    critic = Critic("D", view=lambda x, batch: torch.cat([x, batch[1]], 1))        # a conditional critic
    g_input = lambda batch, n, device: torch.cat([torch.randn(n, Z, device=device), batch[1]], 1)   # noqa: E731
    l1 = lambda fake, batch: {"l1": 10 * (fake - batch[0]).abs().mean()}           # noqa: E731
    state = gan_state(G, D, torch.optim.SGD(G.parameters(), 0.05), torch.optim.SGD(D.parameters(), 0.05))
    step = make_gan_step(GANStepConfig(z_dim=Z), critics=[critic], g_input=g_input, g_extra=l1)
    real = _real()
    first = step(state, (real, labels))
    assert "l1" in first and first["g_loss"] > first["l1"] > 0
    out = fit(state, step, StepBatches(real, labels, batch_size=8), 60, progress=False)
    assert out.history["l1"][-1] < 0.5 * out.history["l1"][0]                      # the extra term is optimized


def test_bad_critic_lists_fail_clearly():
    with pytest.raises(ValueError, match="distinct names"):
        make_gan_step(GANStepConfig(z_dim=Z), critics=[Critic("D"), Critic("D")])
    with pytest.raises(ValueError, match="one optimizer per critic"):
        G, D = _nets()
        gan_state(G, {"D_S": D}, torch.optim.SGD(G.parameters(), 0.1), {"D_T": torch.optim.SGD(D.parameters(), 0.1)})
    with pytest.raises(ValueError, match="weight > 0"):
        Critic("D", weight=0.0)


def test_monitor_shows_clips_one_per_row():
    from genlab.train import GANMonitor

    class ClipG(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(Z, 3 * 1 * 4 * 4)

        def forward(self, z):
            return torch.tanh(self.lin(z)).view(-1, 3, 1, 4, 4)                  # (B, T=3, C=1, 4, 4)

    G, D = ClipG(), nn.Linear(1, 1)
    state = gan_state(G, D, torch.optim.SGD(G.parameters(), 0.1), torch.optim.SGD(D.parameters(), 0.1))
    monitor = GANMonitor(every=1, z_dim=Z, n=2)
    monitor.update(state)
    assert monitor.samples.shape == (2, 3, 1, 4, 4)
    assert monitor.grid.shape == (3, 2 * 6 + 2, 3 * 6 + 2)                         # 2 rows (clips) x 3 columns (frames)
