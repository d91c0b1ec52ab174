"""GAN losses equal their formulas on hand-computed values; stable softplus forms; saturation of the minimax G loss;
R1 equals closed-form and autograd.functional gradients and backpropagates into D."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genlab.losses import (GAN_LOSSES, HingeLoss, LeastSquaresLoss, NonSaturatingLoss, SaturatingLoss, get_gan_loss,
                           r1_penalty)

pytestmark = pytest.mark.usefixtures("one_thread")

REAL = torch.tensor([-2.0, 0.0, 3.0])
FAKE = torch.tensor([1.0, -1.0, 0.5])


def test_minimax_and_non_saturating_match_hand_computed_values():
    # mean softplus(-real) = (softplus(2) + softplus(0) + softplus(-3)) / 3 = (2.126928 + 0.693147 + 0.048587) / 3
    # mean softplus(fake)  = (softplus(1) + softplus(-1) + softplus(0.5)) / 3 = (1.313262 + 0.313262 + 0.974077) / 3
    d = 0.9562208477 + 0.8668667864
    for loss in (SaturatingLoss(), NonSaturatingLoss()):
        assert loss.d_loss(REAL, FAKE).item() == pytest.approx(d, abs=1e-6)
    assert SaturatingLoss().g_loss(FAKE).item() == pytest.approx(-0.8668667864, abs=1e-6)   # log(1 - D(G(z)))
    assert NonSaturatingLoss().g_loss(FAKE).item() == pytest.approx(0.7002001197, abs=1e-6)  # -log D(G(z))


def test_softplus_forms_equal_the_naive_log_sigmoid_formulas_in_float64():
    real, fake = torch.linspace(-8, 8, 41, dtype=torch.float64), torch.linspace(-7, 9, 41, dtype=torch.float64)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    naive_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())   # Goodfellow 2014, Eq. 1 (negated)
    for loss in (SaturatingLoss(), NonSaturatingLoss()):
        torch.testing.assert_close(loss.d_loss(real, fake), naive_d, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(SaturatingLoss().g_loss(fake), torch.log(1 - d_fake).mean(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(NonSaturatingLoss().g_loss(fake), -torch.log(d_fake).mean(), rtol=1e-12, atol=1e-12)


def test_stable_forms_stay_finite_where_the_naive_ones_overflow():
    big = torch.tensor([200.0])                                            # float32: sigmoid(-200) == 0
    assert torch.isinf(-torch.log(torch.sigmoid(-big))).all()              # the naive form breaks ...
    assert SaturatingLoss().d_loss(-big, big).item() == pytest.approx(400.0)  # ... softplus(200) + softplus(200)
    assert NonSaturatingLoss().g_loss(-big).item() == pytest.approx(200.0)
    assert SaturatingLoss().g_loss(-big).item() == pytest.approx(0.0, abs=1e-30)


def test_hinge_and_least_squares_match_hand_computed_values():
    hinge, ls = HingeLoss(), LeastSquaresLoss()
    # relu(1 - real) = [3, 1, 0] -> 4/3; relu(1 + fake) = [2, 0, 1.5] -> 3.5/3
    assert hinge.d_loss(REAL, FAKE).item() == pytest.approx(4 / 3 + 3.5 / 3)
    assert hinge.g_loss(FAKE).item() == pytest.approx(-0.5 / 3)
    # (real - 1)^2 = [9, 1, 4] -> 14/3; fake^2 = [1, 1, 0.25] -> 0.75; halved
    assert ls.d_loss(REAL, FAKE).item() == pytest.approx((14 / 3 + 0.75) / 2)
    # (fake - 1)^2 = [0, 4, 0.25] -> 4.25/3; halved
    assert ls.g_loss(FAKE).item() == pytest.approx(4.25 / 6)


@pytest.mark.parametrize("name", sorted(GAN_LOSSES))
def test_logits_of_shape_b1_give_the_same_losses(name):
    loss = get_gan_loss(name)
    assert loss.d_loss(REAL[:, None], FAKE[:, None]).item() == pytest.approx(loss.d_loss(REAL, FAKE).item())
    assert loss.g_loss(FAKE[:, None]).item() == pytest.approx(loss.g_loss(FAKE).item())


def test_minimax_g_loss_saturates_where_the_non_saturating_one_does_not():
    """A confident D (fake logit -10): d/dl log(1 - sigmoid(l)) = -sigmoid(l) ~ 4.5e-5, d/dl -log sigmoid(l) =
    -sigmoid(-l) ~ -1; both push l up, and their ratio is sigmoid(l) / sigmoid(-l) = e^l."""
    grads = {}
    for name in ("saturating", "nonsaturating"):
        logit = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
        get_gan_loss(name).g_loss(logit).backward()
        grads[name] = logit.grad.item()
    assert grads["saturating"] == pytest.approx(-torch.sigmoid(torch.tensor(-10.0, dtype=torch.float64)).item())
    assert grads["nonsaturating"] == pytest.approx(-1.0, abs=1e-4)
    assert grads["saturating"] / grads["nonsaturating"] == pytest.approx(math.exp(-10.0), rel=1e-9)


def test_registry_names_alias_and_error():
    assert set(GAN_LOSSES) == {"saturating", "nonsaturating", "hinge", "lsgan"}
    assert get_gan_loss("minimax") is get_gan_loss("saturating")
    assert isinstance(get_gan_loss("lsgan"), LeastSquaresLoss)
    with pytest.raises(ValueError, match=r"unknown GAN loss 'wgan'.*'hinge', 'lsgan', 'nonsaturating', "
                                         r"'saturating', 'minimax'"):
        get_gan_loss("wgan")


# ------------------------------------------------------------------------------------------------------------ R1
class LinearD(nn.Module):
    """D(x) = w . flatten(x) + b, so grad_x D = w for every x and R1 = ||w||^2 per sample."""

    def __init__(self, n: int):
        super().__init__()
        self.lin = nn.Linear(n, 1)

    def forward(self, x):
        return self.lin(x.flatten(1)).squeeze(1)


def test_r1_of_a_linear_d_is_the_squared_weight_norm_and_reaches_the_weights():
    torch.manual_seed(0)
    D = LinearD(12)
    x = torch.randn(5, 3, 2, 2, requires_grad=True)
    r1 = r1_penalty(D(x), x)
    w2 = D.lin.weight.detach().square().sum()
    assert r1.shape == (5,)
    torch.testing.assert_close(r1, w2.expand(5))
    r1.mean().backward()                                    # d||w||^2 / dw = 2w, through create_graph=True
    torch.testing.assert_close(D.lin.weight.grad, 2 * D.lin.weight.detach())
    assert D.lin.bias.grad is None or D.lin.bias.grad.abs().max() == 0


def test_r1_of_a_quadratic_d_matches_autograd_functional_per_sample():
    torch.manual_seed(1)
    n = 6
    A, c = torch.randn(n, n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)

    def d_one(v):                                           # D(v) = v^T A v + c^T v + sin(v_0)
        return v @ A @ v + c @ v + torch.sin(v[0])

    x = torch.randn(4, n, dtype=torch.float64, requires_grad=True)
    logits = torch.stack([d_one(v) for v in x])
    expected = torch.stack([torch.autograd.functional.jacobian(d_one, v.detach()).square().sum() for v in x])
    torch.testing.assert_close(r1_penalty(logits, x), expected)
    closed = ((A + A.T) @ x.detach().T).T + c               # grad of the quadratic part: (A + A^T) v + c
    closed[:, 0] += torch.cos(x.detach()[:, 0])
    torch.testing.assert_close(expected, closed.square().sum(1))


def test_r1_needs_images_that_require_grad():
    D = LinearD(4)
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match=r"requires_grad_\(True\) before"):
        r1_penalty(D(x), x)
