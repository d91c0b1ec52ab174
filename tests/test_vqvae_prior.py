"""Priors over VQ codes: the Gated PixelCNN over a code vocabulary, spatial conditioning, causal self-attention, the
cached sampler for all of them, and bits per code."""
import math

import pytest
import torch

from genlab.metrics.likelihood import bits_per_code
from genlab.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from genlab.models.pixelcnn_sampling import sample_cached, sample_naive
from genlab.models.vqvae_prior import CodePrior, CodePriorConfig
from genlab.nn.attention import CausalSelfAttention

K = 11


def code_models():
    torch.manual_seed(0)
    base = dict(channels=8, n_layers=3, first_kernel=5, head_channels=8, vocab=K, code_embedding=6)
    return {
        "codes": GatedPixelCNN(GatedPixelCNNConfig(**base)),
        "codes_attention": GatedPixelCNN(GatedPixelCNNConfig(**base, attention_heads=2)),
        "codes_spatial": GatedPixelCNN(GatedPixelCNNConfig(**base, cond_channels=3)),
    }


def cond_for(name: str, n: int, hh: int, ww: int) -> dict:
    if "spatial" not in name:
        return {}
    return {"h": torch.randn(n, 3, hh, ww, generator=torch.Generator().manual_seed(5))}


@pytest.mark.parametrize("name", list(code_models()))
def test_code_prior_never_reads_the_current_or_a_later_code(name):
    """Changing code (r, s) changes no logits at or before (r, s) in raster order, and some logits after it."""
    model = code_models()[name].eval()
    hh, ww = 5, 6
    x = torch.randint(0, K, (2, hh, ww), generator=torch.Generator().manual_seed(1))
    kw = cond_for(name, 2, hh, ww)
    with torch.no_grad():
        base = model(x, **kw)
        assert base.shape == (2, K, hh, ww)
        order = torch.arange(hh * ww).view(hh, ww)
        later_changed = 0
        for r in range(hh):
            for s in range(ww):
                y = x.clone()
                y[:, r, s] = (y[:, r, s] + 1 + torch.arange(2)) % K
                diff = (model(y, **kw) - base).abs().amax(dim=(0, 1))             # (H, W)
                assert diff[order <= order[r, s]].max() == 0, f"code {(r, s)} leaks"
                later = diff[order > order[r, s]]
                later_changed += int(later.numel() > 0 and later.max() > 0)
        assert later_changed == hh * ww - 1                                       # every code but the last is read


def test_attention_sees_the_whole_causal_context_and_the_convolutions_alone_do_not():
    """With two tiny conv layers the last position of a 6x6 map cannot see the first one; with attention it does."""
    torch.manual_seed(0)
    cfg = dict(channels=8, n_layers=2, first_kernel=3, head_channels=8, vocab=K, code_embedding=6)
    plain, att = GatedPixelCNN(GatedPixelCNNConfig(**cfg)), GatedPixelCNN(GatedPixelCNNConfig(**cfg, attention_heads=2))
    x = torch.randint(0, K, (1, 6, 6), generator=torch.Generator().manual_seed(2))
    y = x.clone()
    y[0, 0, 0] = (y[0, 0, 0] + 1) % K
    with torch.no_grad():
        assert torch.equal(plain(x)[..., -1, -1], plain(y)[..., -1, -1])
        assert not torch.equal(att(x)[..., -1, -1], att(y)[..., -1, -1])


def test_attention_step_equals_the_full_forward():
    torch.manual_seed(0)
    layer = CausalSelfAttention(8, 2)
    x = torch.randn(3, 8, 4, 5)
    full = layer(x)
    cache: dict = {}
    steps = [layer.step(x[:, :, p // 5, p % 5], p, (4, 5), cache) for p in range(20)]
    torch.testing.assert_close(torch.stack(steps, -1).view(3, 8, 4, 5), full, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="divide"):
        CausalSelfAttention(8, 3)


@pytest.mark.parametrize("name", list(code_models()))
def test_cached_and_naive_samplers_agree_on_code_models(name):
    model = code_models()[name]
    kw = cond_for(name, 3, 5, 6)
    naive = sample_naive(model, 3, (5, 6), generator=torch.Generator().manual_seed(7), **kw)
    cached = sample_cached(model, 3, (5, 6), generator=torch.Generator().manual_seed(7), **kw)
    assert naive.dtype == torch.int64 and naive.shape == (3, 5, 6) and int(naive.max()) < K
    assert torch.equal(naive, cached)
    assert not torch.equal(cached, sample_cached(model, 3, (5, 6), generator=torch.Generator().manual_seed(8), **kw))


def test_spatial_conditioning_is_read_where_it_is_given():
    """y = tanh(W_f x + V_f h) . sigmoid(...): changing h at one position changes the logits there."""
    model = code_models()["codes_spatial"].eval()
    x = torch.randint(0, K, (1, 5, 6), generator=torch.Generator().manual_seed(1))
    h = torch.zeros(1, 3, 5, 6)
    h2 = h.clone()
    h2[0, :, 2, 3] = 1.0
    with torch.no_grad():
        diff = (model(x, h=h2) - model(x, h=h)).abs().amax(dim=(0, 1))
    assert diff[2, 3] > 0
    # h is known everywhere (it is not generated), so reading it anywhere is allowed; the stacks only carry it down
    # and along the rows, so rows above the change are untouched
    assert diff[:2].max() == 0 and diff[3:].max() > 0


def test_code_model_errors_name_the_fix():
    models = code_models()
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        models["codes"](torch.full((1, 4, 4), K))
    with pytest.raises(ValueError, match="code maps"):
        models["codes"](torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="feature map"):
        models["codes_spatial"](torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\)"):
        models["codes_spatial"](torch.zeros(1, 4, 4, dtype=torch.long), h=torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="in_channels = 1"):
        GatedPixelCNN(GatedPixelCNNConfig(in_channels=3, channels=6, vocab=K))
    with pytest.raises(ValueError, match="only one"):
        GatedPixelCNN(GatedPixelCNNConfig(n_classes=10, cond_channels=2))


def test_bits_per_code_of_a_uniform_prior_is_log2_k():
    codes = torch.randint(0, K, (4, 3, 3))
    assert float(bits_per_code(torch.zeros(4, K, 3, 3), codes)) == pytest.approx(math.log2(K), abs=1e-6)
    logits = torch.full((1, K, 1, 1), -1e4)
    logits[0, 3] = 0.0
    assert float(bits_per_code(logits, torch.tensor([[[3]]]))) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="integer"):
        bits_per_code(torch.zeros(4, K, 3, 3), codes.float())


def test_bottom_prior_reads_the_top_codes_and_samples_given_them():
    torch.manual_seed(0)
    prior = CodePrior(CodePriorConfig(num_codes=K, channels=8, n_layers=2, first_kernel=3, head_channels=8,
                                      code_embedding=6, cond_codes=7, cond_channels=4, cond_res=1)).eval()
    top = torch.randint(0, 7, (2, 3, 4))
    bottom = torch.randint(0, K, (2, 6, 8))
    with torch.no_grad():
        logits = prior(bottom, top)
        other = top.clone()
        other[:, 2, 3] = (other[:, 2, 3] + 1) % 7
        assert logits.shape == (2, K, 6, 8)
        assert not torch.equal(prior(bottom, other), logits)   # the whole top map is visible, even its last code
    a = prior.sample(2, (6, 8), top, generator=torch.Generator().manual_seed(3))
    b = prior.sample(2, (6, 8), top, generator=torch.Generator().manual_seed(3), cached=False)
    assert torch.equal(a, b) and a.shape == (2, 6, 8)
    top4 = torch.randint(0, 7, (5, 3, 4))                  # batched sampling: chunks in order, each with its own top
    g = torch.Generator().manual_seed(5)
    parts = [prior.sample(2, (6, 8), top4[:2], generator=g), prior.sample(2, (6, 8), top4[2:4], generator=g),
             prior.sample(1, (6, 8), top4[4:], generator=g)]
    chunked = prior.sample(5, (6, 8), top4, generator=torch.Generator().manual_seed(5), batch_size=2)
    assert torch.equal(chunked, torch.cat(parts)) and chunked.shape == (5, 6, 8)
    with pytest.raises(ValueError, match="twice the size"):
        prior(torch.randint(0, K, (2, 5, 8)), top)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        prior(bottom, top + 7)
    top_prior = CodePrior(CodePriorConfig(num_codes=K, channels=8, n_layers=2, first_kernel=3, head_channels=8,
                                          code_embedding=6, attention_heads=2))
    with pytest.raises(ValueError, match="unconditional"):
        top_prior(bottom, top)
