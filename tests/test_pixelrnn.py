"""PixelRNN: exact skewing, no leak from future pixels, the Row LSTM's triangular receptive field (counted
independently of autograd), the Diagonal BiLSTM's full context, the 256-way likelihood, sampling, clear errors."""
from __future__ import annotations

import math

import pytest
import torch

from genlab.models.pixelrnn import (DiagonalBiLSTM, PixelRNNConfig, RowLSTM, causal_context, nll_bits_per_dim,
                                    receptive_field_map, sample, skew, unskew)
from genlab.zoo import get_recipe

SMALL = dict(hidden=6, out_hidden=8)


def _model(cls, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(PixelRNNConfig(**{**SMALL, **kw})).double().eval()


# ---------------------------------------------------------------------------------------------------- skew / unskew
def test_skew_has_the_papers_layout_on_a_hand_made_map():
    x = torch.tensor([[1., 2., 3.],
                      [4., 5., 6.]])[None, None]                     # (1, 1, 2, 3)
    expected = torch.tensor([[1., 2., 3., 0.],
                             [0., 4., 5., 6.]])[None, None]          # row i shifted right by i: width 3 + 2 - 1
    assert torch.equal(skew(x), expected)
    assert torch.equal(unskew(expected), x)


def test_skew_turns_diagonals_into_columns_and_unskew_inverts_it():
    x = torch.randn(2, 3, 4, 5)
    s = skew(x)
    assert s.shape == (2, 3, 4, 8)
    assert torch.equal(unskew(s), x)
    i, j = torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij")
    diag = skew((i + j).float()[None, None])[0, 0]                   # anti-diagonal index i + j of each pixel
    for col in range(8):
        inside = skew(torch.ones(1, 1, 4, 5))[0, 0, :, col] == 1
        # the pixels that land in skewed column `col` are exactly those on the diagonal i + j == col
        assert torch.all(diag[inside, col] == col)
        assert int(inside.sum()) == int(((i + j) == col).sum())


# ---------------------------------------------------------------------------------------------------- causality
@pytest.mark.parametrize("cls", [RowLSTM, DiagonalBiLSTM])
def test_no_leak_from_any_future_pixel(cls):
    """Perturb pixel p: the logits at p and at every pixel before it stay bit-identical; some later one changes."""
    model = _model(cls, layers=2, first_kernel=3)
    h, w = 5, 6
    x = torch.rand(2, 1, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    base = model(x)
    order = torch.arange(h * w).view(h, w)
    with torch.no_grad():
        for p in range(h * w):
            i, j = divmod(p, w)
            x2 = x.clone()
            x2[:, :, i, j] = 1 - x2[:, :, i, j]
            changed = (model(x2) != base).any(dim=2).any(dim=1).any(dim=0)   # (H, W): which pixels' logits moved
            assert not changed[order <= p].any(), f"{cls.__name__}: pixel {(i, j)} leaks into earlier outputs"
            if p < h * w - 1:
                assert changed[order > p].any(), f"{cls.__name__}: pixel {(i, j)} influences nothing after it"


# ---------------------------------------------------------------------------------------------------- receptive fields
def _row_lstm_dependencies(size, first_kernel: int, kernel: int, layers: int) -> dict:
    """Independent count: the set of input pixels each output pixel depends on, by propagating sets through the
    Row LSTM's wiring (no autograd): mask-A first layer, then per layer the state of (r, c) depends on the layer input
    at (r, c - k//2 .. c) (masked 1 x k input-to-state) and on the states of (r - 1, c - k//2 .. c + k//2)."""
    h, w = size
    inside = lambda r, c: 0 <= r < h and 0 <= c < w  # noqa: E731
    a = first_kernel // 2
    feat = {(r, c): {(r2, c2) for r2 in range(r - a, r + 1) for c2 in range(c - a, c + a + 1)
                     if inside(r2, c2) and (r2 < r or c2 < c)}
            for r in range(h) for c in range(w)}
    m = kernel // 2
    for _ in range(layers):
        state = {}
        for r in range(h):
            for c in range(w):
                deps = set().union(*(feat[r, c2] for c2 in range(c - m, c + 1) if inside(r, c2)))
                if r > 0:
                    deps |= set().union(*(state[r - 1, c2] for c2 in range(c - m, c + m + 1) if inside(r - 1, c2)))
                state[r, c] = deps
        feat = {p: feat[p] | state[p] for p in feat}                 # residual connection
    return feat


@pytest.mark.parametrize("first_kernel,layers,size", [(3, 1, (5, 5)), (3, 2, (5, 5)), (5, 1, (9, 9)), (7, 1, (12, 12))])
def test_row_lstm_sees_a_triangle_matching_an_independent_count(first_kernel, layers, size):
    model = _model(RowLSTM, first_kernel=first_kernel, layers=layers)
    pixel = (size[0] // 2, size[1] // 2)
    seen = receptive_field_map(model, size, pixel)
    expected = torch.zeros(size, dtype=torch.bool)
    for r, c in _row_lstm_dependencies(size, first_kernel, 3, layers)[pixel]:
        expected[r, c] = True
    assert torch.equal(seen, expected)
    context = causal_context(size, pixel)
    missing = int((context & ~seen).sum())
    assert missing == int((context & ~expected).sum()) > 0           # incomplete context, exactly as counted
    assert not (seen & ~context).any()                               # and nothing outside the context


def test_row_lstm_centre_of_5x5_misses_the_far_right_pixel_of_the_row_above():
    """The slide's setting (3 x 3 mask A, one Row LSTM layer, k = 3): pixel (2, 2) misses exactly (1, 4)."""
    seen = receptive_field_map(_model(RowLSTM, first_kernel=3), (5, 5), (2, 2))
    missing = causal_context((5, 5), (2, 2)) & ~seen
    assert missing.nonzero().tolist() == [[1, 4]]


@pytest.mark.parametrize("first_kernel,layers", [(3, 1), (3, 2), (7, 1)])
def test_diagonal_bilstm_sees_exactly_the_full_causal_context(first_kernel, layers):
    model = _model(DiagonalBiLSTM, first_kernel=first_kernel, layers=layers)
    for size in [(5, 5), (4, 7)]:
        for i in range(size[0]):
            for j in range(size[1]):
                seen = receptive_field_map(model, size, (i, j))
                assert torch.equal(seen, causal_context(size, (i, j))), (size, (i, j))


def test_causal_context_is_raster_order():
    ctx = causal_context((3, 4), (1, 2))
    assert ctx.int().tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]]


# ---------------------------------------------------------------------------------------------------- likelihood, sampling
@pytest.mark.parametrize("cls", [RowLSTM, DiagonalBiLSTM])
def test_logits_shape_and_uint8_equals_float_input(cls):
    model = _model(cls).float()
    x = torch.randint(0, 256, (3, 1, 6, 7), dtype=torch.uint8)
    logits = model(x)
    assert logits.shape == (3, 256, 1, 6, 7)
    assert torch.allclose(logits, model(x.float() / 255), atol=1e-6)


def test_uniform_logits_give_8_bits_per_dim_and_a_point_mass_0():
    x = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    assert nll_bits_per_dim(torch.zeros(2, 256, 1, 4, 4), x).item() == pytest.approx(8.0, abs=1e-6)
    sure = torch.full((2, 256, 1, 4, 4), -1e4).scatter(1, x.long()[:, None], 1e4)
    assert nll_bits_per_dim(sure, x).item() == pytest.approx(0.0, abs=1e-6)
    # bits/dim = nats / (D ln 2) for any logits
    logits = torch.randn(2, 256, 1, 4, 4)
    nats = -logits.log_softmax(1).gather(1, x.long()[:, None]).sum() / 2
    assert nll_bits_per_dim(logits, x).item() == pytest.approx(nats.item() / (16 * math.log(2)), rel=1e-5)


def test_sampling_is_reproducible_and_completion_keeps_the_given_rows():
    model = _model(RowLSTM).float()
    a = sample(model, 2, (4, 5), generator=torch.Generator().manual_seed(3))
    b = sample(model, 2, (4, 5), generator=torch.Generator().manual_seed(3))
    assert a.dtype == torch.uint8 and a.shape == (2, 1, 4, 5) and torch.equal(a, b)
    start = torch.randint(0, 256, (2, 1, 4, 5), dtype=torch.uint8)
    c = sample(model, 2, (4, 5), start=start, start_row=2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(c[:, :, :2], start[:, :, :2])


def test_a_model_that_always_predicts_one_value_samples_it():
    """Sampling draws from the model's softmax: make the head put all mass on level 200."""
    model = _model(DiagonalBiLSTM).float()
    last = model.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-1e4)
        last.bias[200] = 1e4
    out = sample(model, 1, (3, 3), generator=torch.Generator().manual_seed(0))
    assert torch.all(out == 200)


# ---------------------------------------------------------------------------------------------------- errors, recipes
def test_bad_inputs_raise_clear_errors():
    model = _model(RowLSTM).float()
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.rand(2, 5, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(torch.rand(1, 1, 5, 5) * 255)
    with pytest.raises(TypeError, match="uint8"):
        model(torch.randint(0, 256, (1, 1, 5, 5)))
    with pytest.raises(ValueError, match="PixelCNN"):
        DiagonalBiLSTM(PixelRNNConfig(channels=3))
    with pytest.raises(ValueError, match="odd kernel"):
        RowLSTM(PixelRNNConfig(first_kernel=4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        skew(torch.rand(3, 4))
    with pytest.raises(ValueError, match="not a skewed map"):
        unskew(torch.rand(1, 1, 4, 2))
    with pytest.raises(ValueError, match="outside"):
        receptive_field_map(model, (5, 5), (5, 0))
    with pytest.raises(ValueError, match="start must be uint8"):
        sample(model, 2, (4, 4), start=torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("name,cls", [("row_lstm_mnist", RowLSTM), ("diagonal_bilstm_mnist", DiagonalBiLSTM)])
def test_recipes_are_registered_and_sized_for_a_cpu(name, cls):
    recipe = get_recipe(name)
    cpu = recipe.config("cpu")
    model = recipe.build(cpu["model"])
    assert isinstance(model, cls) and cpu["model"]["layers"] <= 2 and cpu["model"]["hidden"] <= 32
    assert isinstance(recipe.build(recipe.config("ci")["model"]), cls)
    assert set(recipe.metrics) == {"test_bpd"}
