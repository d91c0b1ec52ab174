"""Bits per dimension and nats per image, exact from 256-way logits (B, 256, C, H, W); clear errors on bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.metrics.likelihood import (bits_per_dim, bits_per_subpixel, evaluate_bits_per_subpixel, evaluate_bpd,
                                      nats_per_image)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see tests/conftest.py


def test_uniform_model_scores_exactly_8_bits_per_dim():
    x = torch.randint(0, 256, (3, 2, 4, 5), dtype=torch.uint8)
    logits = torch.zeros(3, 256, 2, 4, 5)
    assert bits_per_dim(logits, x).item() == pytest.approx(8.0, abs=1e-6)
    assert nats_per_image(logits, x).item() == pytest.approx(2 * 4 * 5 * math.log(256), rel=1e-6)


def test_matches_a_hand_computed_likelihood():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 256, 1, 2, 3, generator=g) * 3
    x = torch.randint(0, 256, (2, 1, 2, 3), generator=g, dtype=torch.uint8)
    nats = torch.zeros(2)
    for b in range(2):
        for r in range(2):
            for c in range(3):
                z = logits[b, :, 0, r, c].double()
                nats[b] += (z.exp().sum().log() - z[int(x[b, 0, r, c])]).item()   # -log softmax(z)[x]
    assert torch.allclose(nats_per_image(logits, x, reduction="none"), nats, atol=1e-4)
    assert bits_per_dim(logits, x).item() == pytest.approx((nats.mean() / (6 * math.log(2))).item(), abs=1e-5)
    assert torch.allclose(bits_per_dim(logits, x, reduction="none"), nats / (6 * math.log(2)), atol=1e-5)
    assert nats_per_image(logits, x, reduction="sum").item() == pytest.approx(nats.sum().item(), abs=1e-3)


def test_confident_correct_model_approaches_zero_and_is_differentiable():
    x = torch.randint(0, 256, (2, 1, 3, 3), dtype=torch.uint8)
    logits = (F.one_hot(x.long(), 256).permute(0, 4, 1, 2, 3).float() * 40).requires_grad_(True)
    bpd = bits_per_dim(logits, x)
    assert bpd.item() < 1e-10
    bpd.backward()
    assert logits.grad is not None and logits.grad.shape == logits.shape


def test_other_integer_dtypes_are_accepted():
    x = torch.randint(0, 256, (1, 1, 2, 2))
    logits = torch.randn(1, 256, 1, 2, 2)
    assert bits_per_dim(logits, x).item() == pytest.approx(bits_per_dim(logits, x.to(torch.uint8)).item())


@pytest.mark.parametrize("logits_shape, x, error, match", [
    ((2, 256, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.uint8), ValueError, r"\(B, 256, C, H, W\)"),
    ((2, 10, 1, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.uint8), ValueError, r"\(B, 256, C, H, W\)"),
    ((2, 256, 1, 4, 4), torch.zeros(2, 1, 4, 4), TypeError, "uint8"),
    ((2, 256, 1, 4, 4), torch.full((2, 1, 4, 4), 256), ValueError, r"\[0, 255\]"),
    ((2, 256, 1, 4, 4), torch.full((2, 1, 4, 4), -1), ValueError, r"\[0, 255\]"),
    ((2, 256, 1, 4, 4), torch.zeros(2, 1, 4, 5, dtype=torch.uint8), ValueError, "describe images of shape"),
    ((2, 256, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.uint8), ValueError, r"\(B, C, H, W\)"),
])
def test_bad_inputs_raise_clear_errors(logits_shape, x, error, match):
    with pytest.raises(error, match=match):
        bits_per_dim(torch.zeros(logits_shape), x)


def test_bad_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction"):
        nats_per_image(torch.zeros(1, 256, 1, 1, 1), torch.zeros(1, 1, 1, 1, dtype=torch.uint8), reduction="avg")


class _Uniform(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, y=None):
        return torch.zeros(x.shape[0], 256, *x.shape[1:]) + self.dummy


def test_evaluate_bpd_over_batches():
    x = torch.randint(0, 256, (7, 1, 3, 3), dtype=torch.uint8)
    assert evaluate_bpd(_Uniform(), x, batch_size=3) == pytest.approx(8.0, abs=1e-6)


def test_bits_per_subpixel_is_exact_per_position_and_averages_to_the_bits_per_dim():
    torch.manual_seed(0)
    logits = torch.randn(3, 256, 2, 4, 5)
    x = torch.randint(0, 256, (3, 2, 4, 5), dtype=torch.uint8)
    bits = bits_per_subpixel(logits, x)
    assert bits.shape == x.shape
    b, c, r, s = 1, 1, 2, 3
    want = -torch.log_softmax(logits[b, :, c, r, s], 0)[x[b, c, r, s].long()] / math.log(2)
    assert float(bits[b, c, r, s]) == pytest.approx(float(want), rel=1e-5)
    assert float(bits.mean()) == pytest.approx(float(bits_per_dim(logits, x)), rel=1e-5)
    with pytest.raises(TypeError, match="integer pixel values"):
        bits_per_subpixel(logits, x.float())


def test_evaluate_bits_per_subpixel_over_batches():
    x = torch.randint(0, 256, (7, 1, 3, 3), dtype=torch.uint8)
    bits = evaluate_bits_per_subpixel(_Uniform(), x, batch_size=3)
    assert bits.shape == (7, 1, 3, 3) and torch.allclose(bits, torch.full_like(bits, 8.0))
