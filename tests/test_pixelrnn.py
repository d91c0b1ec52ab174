"""PixelRNN: exact skewing, no leak from future pixels, the Row LSTM's triangular receptive field (counted
independently of autograd), the Diagonal BiLSTM's full context, the 256-way likelihood, sampling, clear errors."""
from __future__ import annotations

import pytest
import torch

from genlab.checkpoints import read_provenance, shipped_path
from genlab.zoo import load_pretrained
from genlab.paths import sha256
from genlab.metrics.likelihood import bits_per_dim
from genlab.metrics.receptive_field import causal_context, receptive_field
from genlab.models.pixelrnn import DiagonalBiLSTM, PixelRNNConfig, RowLSTM, sample, skew, unskew
from genlab.zoo.pixelrnn import QUICK_N, test_split_bpd
from genlab.zoo import get_recipe

SMALL = dict(hidden=6, out_hidden=16)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see tests/conftest.py


def _model(cls, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(PixelRNNConfig(**{**SMALL, **kw})).double().eval()


def _seen_by_every_pixel(model: torch.nn.Module, size: tuple[int, int], probes: int = 3) -> torch.Tensor:
    """Autograd, all pixels at once: (H, W, H, W) bool, [i, j] = input pixels with a non-zero gradient on the logits
    at (i, j) for any of ``probes`` random images (several images, so no dependency hides behind a dead ReLU)."""
    h, w = size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(h * w * probes, 1, h, w, dtype=torch.float64, generator=g).requires_grad_(True)
    logits = model(x)                                                  # (HW*P, 256, 1, H, W)
    k = torch.arange(h * w).repeat_interleave(probes)                  # probe -> output pixel
    out = logits[torch.arange(len(k)), :, 0, k // w, k % w]            # (HW*P, 256)
    (grad,) = torch.autograd.grad((out * torch.randn(out.shape, dtype=out.dtype, generator=g)).sum(), x)
    return (grad[:, 0] != 0).view(h * w, probes, h, w).any(1).view(h, w, h, w)


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
    x = torch.rand(1, 1, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    perturbed = x.repeat(h * w, 1, 1, 1)
    for p in range(h * w):                                             # copy p has pixel p changed
        perturbed[p, 0, p // w, p % w] = 1 - x[0, 0, p // w, p % w]
    with torch.no_grad():
        base, out = model(x), model(perturbed)
    changed = (out != base).flatten(1, 2).any(1)                      # (HW, H, W): whose logits moved, per copy
    order = torch.arange(h * w).view(h, w)
    for p in range(h * w):
        assert not changed[p][order <= p].any(), f"{cls.__name__}: pixel {divmod(p, w)} leaks into earlier outputs"
        if p < h * w - 1:
            assert changed[p][order > p].any(), f"{cls.__name__}: pixel {divmod(p, w)} influences nothing after it"


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


@pytest.mark.parametrize("first_kernel,layers,size", [(3, 1, (5, 5)), (3, 2, (5, 5)), (5, 1, (9, 9)), (7, 1, (28, 28))])
def test_row_lstm_sees_a_triangle_matching_an_independent_count(first_kernel, layers, size):
    model = _model(RowLSTM, first_kernel=first_kernel, layers=layers).float()
    pixel = (size[0] // 2, size[1] // 2)
    rf = receptive_field(model, size, pixel)
    seen = rf.seen
    expected = torch.zeros(size, dtype=torch.bool)
    for r, c in _row_lstm_dependencies(size, first_kernel, 3, layers)[pixel]:
        expected[r, c] = True
    assert torch.equal(seen, expected)
    context = causal_context(size, pixel)
    assert rf.blind_pixels == int((context & ~expected).sum()) > 0   # incomplete context, exactly as counted
    assert rf.leaks == 0                                             # and nothing outside the context


def test_row_lstm_centre_of_5x5_misses_the_far_right_pixel_of_the_row_above():
    """The slide's setting (3 x 3 mask A, one Row LSTM layer, k = 3): pixel (2, 2) misses exactly (1, 4)."""
    rf = receptive_field(_model(RowLSTM, first_kernel=3).float(), (5, 5), (2, 2))
    assert rf.blind.nonzero().tolist() == [[1, 4]]


@pytest.mark.parametrize("first_kernel,layers", [(3, 1), (3, 2), (7, 1)])
def test_diagonal_bilstm_sees_exactly_the_full_causal_context(first_kernel, layers):
    model = _model(DiagonalBiLSTM, first_kernel=first_kernel, layers=layers)
    for size in [(5, 5), (4, 7)]:
        seen = _seen_by_every_pixel(model, size)
        for i in range(size[0]):
            for j in range(size[1]):
                assert torch.equal(seen[i, j], causal_context(size, (i, j))), (size, (i, j))
    rf = receptive_field(model.float(), (5, 5), (2, 2))                 # the course's metric agrees: 0 blind, 0 leaks
    assert (rf.blind_pixels, rf.leaks, rf.n_seen) == (0, 0, 12)


def test_the_right_to_left_direction_needs_the_image_input_for_the_last_pixel_of_the_row_above():
    """Ablation: zero the right-to-left LSTM's weights on the image channel and (i-1, W-1) becomes blind."""
    model = _model(DiagonalBiLSTM, first_kernel=3)
    with torch.no_grad():
        model.recurrent[0].input_to_state_rl.weight[:, -1] = 0
    seen = _seen_by_every_pixel(model, (5, 5))
    assert not seen[2, 2, 1, 4] and seen[2, 2, 1, 3]


# ---------------------------------------------------------------------------------------------- likelihood, sampling
@pytest.mark.parametrize("cls", [RowLSTM, DiagonalBiLSTM])
def test_logits_shape_and_uint8_equals_float_input(cls):
    model = _model(cls).float()
    x = torch.randint(0, 256, (3, 1, 6, 7), dtype=torch.uint8)
    logits = model(x)
    assert logits.shape == (3, 256, 1, 6, 7)
    assert torch.allclose(logits, model(x.float() / 255), atol=1e-6)


def test_a_uniform_head_scores_8_bits_per_dim_and_a_point_mass_0():
    x = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    model = _model(RowLSTM).float()
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.zero_()                                  # every level equally likely
    assert bits_per_dim(model(x), x).item() == pytest.approx(8.0, abs=1e-6)
    with torch.no_grad():
        model.head[-1].bias[77] = 1e4                                # all mass on level 77
    assert bits_per_dim(model(torch.full_like(x, 77)), torch.full_like(x, 77)).item() == pytest.approx(0.0, abs=1e-6)


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
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        RowLSTM(PixelRNNConfig(first_kernel=4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        skew(torch.rand(3, 4))
    with pytest.raises(ValueError, match="not a skewed map"):
        unskew(torch.rand(1, 1, 4, 2))
    with pytest.raises(ValueError, match="start must be uint8"):
        sample(model, 2, (4, 4), start=torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("name,cls", [("row_lstm_mnist", RowLSTM), ("diagonal_bilstm_mnist", DiagonalBiLSTM)])
def test_recipes_are_registered_and_sized_for_a_cpu(name, cls):
    recipe = get_recipe(name)
    cpu = recipe.config("cpu")
    model = recipe.build(cpu.as_dict()["model"])
    assert isinstance(model, cls) and cpu.model.layers <= 2 and cpu.model.hidden <= 32
    assert isinstance(recipe.build(recipe.config("ci").as_dict()["model"]), cls)
    assert set(recipe.metrics) == {"test_bpd", f"test_bpd_first{QUICK_N}"}


@pytest.mark.parametrize("cls", [RowLSTM, DiagonalBiLSTM])
def test_cropping_the_rows_below_does_not_change_the_logits_above(cls):
    """What the sampler relies on: the logits of rows 0..i computed on the image cropped to those rows are the same."""
    model = _model(cls, layers=2)
    x = torch.rand(2, 1, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(x)
        for i in range(6):
            assert torch.allclose(model(x[:, :, :i + 1]), full[..., :i + 1, :], atol=1e-12)


# ---------------------------------------------------------------------------------------------- shipped checkpoints
@pytest.mark.parametrize("name,cls", [("row_lstm_mnist", RowLSTM), ("diagonal_bilstm_mnist", DiagonalBiLSTM)])
def test_shipped_checkpoint_reproduces_its_test_bpd(name, cls, cores):
    """Re-evaluate the shipped model on the first QUICK_N test digits and compare with the value its provenance
    stores for them (``genlab eval NAME`` re-checks all 1000); fail if it drifts."""
    prov = read_provenance(name)
    assert prov["command"] == f"genlab train {name} --profile cpu --ship" and prov["seed"] == 0
    assert prov["sha256"] == sha256(shipped_path(name)) and prov["train_seconds"] > 0
    model = load_pretrained(name).model
    assert isinstance(model, cls) and not model.training
    torch.set_num_threads(cores)                                       # 250 digits: worth the second core
    measured = test_split_bpd(model, "cpu", n=QUICK_N)
    stored = prov["metrics"][f"test_bpd_first{QUICK_N}"]
    assert abs(measured - stored) <= get_recipe(name).metrics[f"test_bpd_first{QUICK_N}"], (measured, stored)
    assert prov["metrics"]["test_bpd"] < 1.5                           # far below the 8 bits/dim of a uniform model
    assert abs(prov["extra"]["metrics_float32"]["test_bpd"] - prov["metrics"]["test_bpd"]) <= 0.005  # fp16 is safe
