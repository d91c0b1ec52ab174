"""PixelCNN and Gated PixelCNN: exact masks, no leak (including across colour channels), gated units, conditioning,
identical naive and cached samples, clear errors, and the shipped checkpoints reproduce their provenance."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from genlab.nn.masked import MaskedConv2d, causal_mask
from genlab.models.pixelcnn import (GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig, gated_activation,
                                    model_input)
from genlab.models.pixelcnn_sampling import sample_cached, sample_naive


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see tests/conftest.py

A3 = [[1, 1, 1],
      [1, 0, 0],
      [0, 0, 0]]
B3 = [[1, 1, 1],
      [1, 1, 0],
      [0, 0, 0]]
A5 = [[1, 1, 1, 1, 1],
      [1, 1, 1, 1, 1],
      [1, 1, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0]]


def test_grey_masks_equal_the_hand_written_matrices():
    assert causal_mask("A", 3, 1, 1)[0, 0].tolist() == A3
    assert causal_mask("B", 3, 1, 1)[0, 0].tolist() == B3
    assert causal_mask("A", 5, 1, 1)[0, 0].tolist() == A5
    assert causal_mask("A", (1, 5), 1, 1)[0, 0].tolist() == [[1, 1, 0, 0, 0]]
    m = causal_mask("B", 3, 4, 6)
    assert m.shape == (6, 4, 3, 3) and all(m[o, i].tolist() == B3 for o in range(6) for i in range(4))


def test_colour_masks_order_r_g_b_at_the_centre():
    a, b = causal_mask("A", 3, 3, 3, colour_groups=3), causal_mask("B", 3, 3, 3, colour_groups=3)
    # centre[out, in]: R sees nothing of its own pixel, G sees R, B sees R and G (A); B masks add the diagonal
    assert a[:, :, 1, 1].tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert b[:, :, 1, 1].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    for o in range(3):
        for i in range(3):   # off-centre positions are the grey masks, for every pair of colours
            off = [[v for v in row] for row in a[o, i].tolist()]
            off[1][1] = 0
            assert off == A3
    # 6 output channels in 3 groups of 2 (R R G G B B), 3 inputs: mask A's centre
    centre = causal_mask("A", 3, 3, 6, colour_groups=3)[:, :, 1, 1]
    assert centre.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]


def test_mask_arguments_are_checked():
    with pytest.raises(ValueError, match="'A'"):
        causal_mask("C", 3, 1, 1)
    with pytest.raises(ValueError, match="odd"):
        causal_mask("A", 4, 1, 1)
    with pytest.raises(ValueError, match="divisible by 3"):
        causal_mask("B", 3, 4, 6, colour_groups=3)


def test_masked_conv_ignores_the_weights_it_masks():
    torch.manual_seed(0)
    conv = MaskedConv2d("A", 2, 3, 5)
    x = torch.randn(1, 2, 6, 6)
    y = conv(x)
    with torch.no_grad():
        conv.weight[:, :, 2, 2:] += 100.0      # centre and right of it: masked by A
        conv.weight[:, :, 3:] -= 100.0         # rows below: masked
    assert torch.allclose(conv(x), y)
    assert torch.allclose(y, F.conv2d(x, conv.weight * conv.mask, conv.bias, padding=2))
    for i, j in [(0, 0), (2, 3), (5, 5)]:      # one-position evaluation equals the full convolution there
        xp = F.pad(x, (3, 3, 3, 3))
        assert torch.allclose(conv.forward_at(xp, i, j, 3), y[:, :, i, j], atol=1e-5)


def small_models():
    torch.manual_seed(0)
    return {
        "pixelcnn": PixelCNN(PixelCNNConfig(channels=6, n_layers=2, first_kernel=5, head_channels=6)),
        "pixelcnn_rgb": PixelCNN(PixelCNNConfig(in_channels=3, channels=6, n_layers=2, first_kernel=5,
                                                head_channels=6)),
        "gated": GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=3, first_kernel=5, head_channels=6)),
        "gated_rgb": GatedPixelCNN(GatedPixelCNNConfig(in_channels=3, channels=6, n_layers=3, first_kernel=5,
                                                       head_channels=6)),
        "gated_cond": GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=3, first_kernel=5, head_channels=6,
                                                        n_classes=10)),
        "gated_embed": GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=2, first_kernel=3, head_channels=6,
                                                         n_classes=10, embedding_dim=4)),
        "gated_cond_attn": GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=2, first_kernel=3, head_channels=6,
                                                             n_classes=10, attention_heads=2)),
    }


def plain_gated_forward(model: GatedPixelCNN, x: torch.Tensor, y=None, *, h=None) -> torch.Tensor:
    """The Gated PixelCNN as the paper draws it (2016b, Fig. 2): every convolution on its own, a zero conditioning
    term added like any other, the gates split with einops. The fast forward must compute the same."""
    cfg = model.config
    u = model.embed_codes(x) if cfg.vocab else model_input(x, cfg.in_channels)
    cond = model.condition(u.shape[0], y, h, u.device, size=tuple(u.shape[-2:]))

    def gate(pre, groups):                                              # tanh(f) . sigmoid(g) per colour group
        f, g = rearrange(pre, "b (k two c) h w -> two b (k c) h w", k=groups, two=2)
        return torch.tanh(f) * torch.sigmoid(g)

    def v_h(lin):                                                       # V^T h (a vector h) or V * h (a map h)
        if lin is None:
            return 0.0
        return lin(cond) if isinstance(lin, torch.nn.Conv2d) else lin(cond)[:, :, None, None]

    v, hr, skip = u, u, 0.0
    for layer in model.layers:
        wv = layer.vertical_conv(v)
        v = gate(wv + v_h(layer.cond_v), 1)
        g = gate(layer.h_conv(hr) + layer.link(wv) + v_h(layer.cond_h), layer.groups)
        hr = layer.res(g) if layer.first else hr + layer.res(g)
        skip = skip + layer.skip(g)
    if model.attention is not None:
        skip = skip + model.attention(skip)
    out = model.out(F.relu(model.head(F.relu(skip))))
    return out if cfg.vocab else rearrange(out, "b (c k) h w -> b k c h w", c=cfg.in_channels)


def kwargs_for(name: str, n: int) -> dict:
    return {"y": torch.arange(n) % 10} if "cond" in name or "embed" in name else {}


@pytest.mark.parametrize("name", list(small_models()))
def test_no_leak_perturbing_any_future_sub_pixel(name):
    """Change one sub-pixel (c, r, s): no output at or before it in raster/colour order may change; outputs after it
    do change for some of them (the model is not trivially blind)."""
    model = small_models()[name].eval()
    c, hh, ww = model.config.in_channels, 5, 5
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (2, c, hh, ww), generator=g, dtype=torch.uint8)
    kw = kwargs_for(name, 2)
    with torch.no_grad():
        base = model(x, **kw)
        order = (torch.arange(hh * ww).view(1, hh, ww) * c + torch.arange(c).view(c, 1, 1))   # (C, H, W)
        influenced_later = 0
        for r in range(hh):
            for s in range(ww):
                for ch in range(c):
                    x2 = x.clone()
                    x2[:, ch, r, s] = (x2[:, ch, r, s].int() + 97) % 256
                    diff = (model(x2, **kw) - base).abs().amax(dim=(0, 1))                    # (C, H, W)
                    k = (r * ww + s) * c + ch
                    assert diff[order <= k].max() == 0, f"{name}: changing sub-pixel {(ch, r, s)} leaks"
                    influenced_later += int((diff[order > k] > 0).any())
    assert influenced_later >= hh * ww * c - 2


@pytest.mark.parametrize("name", ["gated", "gated_rgb", "gated_cond", "gated_embed", "gated_cond_attn", "vector",
                                  "codes_spatial"])
def test_fast_gated_forward_equals_the_plain_computation_with_its_gradients(name):
    """Fused res/skip convolutions and skipped zero conditioning change only float rounding: same logits, same
    gradients for every parameter."""
    models = small_models()
    torch.manual_seed(1)
    models["vector"] = GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=3, first_kernel=5, head_channels=6,
                                                         h_dim=4))
    models["codes_spatial"] = GatedPixelCNN(GatedPixelCNNConfig(channels=4, n_layers=3, first_kernel=3,
                                                                head_channels=8, vocab=7, code_embedding=5,
                                                                cond_channels=3))
    model = models[name]
    g = torch.Generator().manual_seed(4)
    kw = kwargs_for(name, 3)
    if name == "vector":
        kw = {"h": torch.randn(3, 4, generator=g)}
    if name == "codes_spatial":
        x, kw = torch.randint(0, 7, (3, 6, 5), generator=g), {"h": torch.randn(3, 3, 6, 5, generator=g)}
    else:
        x = torch.randint(0, 256, (3, model.config.in_channels, 6, 5), generator=g, dtype=torch.uint8)
    results = []
    for forward in (model, lambda *a, **k: plain_gated_forward(model, *a, **k)):
        model.zero_grad()
        out = forward(x, **kw)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        # (the last layer's residual output is unused: no gradient in the plain form, zeros in the fused one)
        results.append((out.detach(), {n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                                       for n, p in model.named_parameters()}))
    (fast, fast_grads), (plain, plain_grads) = results
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert sum(bool(grad.any()) for grad in plain_grads.values()) >= 5 * model.config.n_layers
    for n, grad in fast_grads.items():
        torch.testing.assert_close(grad, plain_grads[n], rtol=1e-4, atol=1e-5, msg=lambda m: f"{name} {n}: {m}")


def test_colour_channels_inside_a_pixel_see_the_earlier_colours():
    model = small_models()["pixelcnn_rgb"].eval()
    x = torch.randint(0, 256, (1, 3, 4, 4), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    x2 = x.clone()
    x2[:, 0, 2, 2] = (x2[:, 0, 2, 2].int() + 97) % 256     # change R at (2, 2) (a large step: no dead-ReLU luck)
    with torch.no_grad():
        d = (model(x2) - model(x)).abs().amax(dim=(0, 1))[:, 2, 2]
    assert d[0] == 0 and d[1] > 0 and d[2] > 0             # R does not see R; G and B do


def test_gated_activation_is_tanh_times_sigmoid():
    pre = torch.randn(2, 8, 3, 3)
    assert torch.allclose(gated_activation(pre), torch.tanh(pre[:, :4]) * torch.sigmoid(pre[:, 4:]))
    pre = torch.randn(2, 12)                                 # 3 colour groups of [f, g] with 2 channels each
    out = gated_activation(pre, groups=3)
    for k in range(3):
        f, g = pre[:, 4 * k:4 * k + 2], pre[:, 4 * k + 2:4 * k + 4]
        assert torch.allclose(out[:, 2 * k:2 * k + 2], torch.tanh(f) * torch.sigmoid(g))


def test_uint8_and_float_inputs_agree():
    model = small_models()["gated"].eval()
    x = torch.randint(0, 256, (2, 1, 6, 6), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.float() / 255), atol=1e-6)
        assert model(x).shape == (2, 256, 1, 6, 6)


def test_conditioning_changes_the_prediction_and_h_can_be_any_vector():
    models = small_models()
    x = torch.randint(0, 256, (2, 1, 6, 6), dtype=torch.uint8)
    with torch.no_grad():
        for name in ("gated_cond", "gated_embed"):
            m = models[name].eval()
            assert not torch.allclose(m(x, torch.tensor([1, 1])), m(x, torch.tensor([2, 2])))
        torch.manual_seed(0)
        vec = GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=2, first_kernel=3, head_channels=6, h_dim=5))
        h = torch.randn(2, 5)
        assert not torch.allclose(vec(x, h=h), vec(x, h=h * 2))
        onehot = models["gated_cond"]
        assert torch.allclose(onehot(x, torch.tensor([3, 7])),
                              onehot(x, torch.tensor([3, 7])), atol=0)
    with pytest.raises(ValueError, match=r"h must have shape \(2, 5\)"):
        vec(x, h=torch.randn(2, 4))


def test_bad_inputs_raise_clear_errors():
    models = small_models()
    x = torch.randint(0, 256, (2, 1, 6, 6), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        models["gated"](x.float())                                   # 0..255 as float: outside [0, 1]
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        models["pixelcnn"](x[:, 0])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        models["pixelcnn_rgb"](x)
    with pytest.raises(ValueError, match="0..255"):
        models["pixelcnn"](x.long() * 2)
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 10\)"):
        models["gated_cond"](x, torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="pass the labels y"):
        models["gated_cond"](x)
    with pytest.raises(ValueError, match="unconditional"):
        models["gated"](x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        models["gated_cond"](x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="unconditional"):
        sample_naive(models["pixelcnn"], 2, 4, y=3)


@pytest.mark.parametrize("name", ["pixelcnn", "pixelcnn_rgb", "gated", "gated_rgb", "gated_cond", "gated_cond_attn"])
def test_cached_and_naive_samplers_give_identical_samples(name):
    model = small_models()[name]
    kw = kwargs_for(name, 3)
    naive = sample_naive(model, 3, (5, 6), generator=torch.Generator().manual_seed(7), **kw)
    cached = sample_cached(model, 3, (5, 6), generator=torch.Generator().manual_seed(7), **kw)
    assert naive.dtype == torch.uint8 and naive.shape == (3, model.config.in_channels, 5, 6)
    assert torch.equal(naive, cached)
    other = sample_cached(model, 3, (5, 6), generator=torch.Generator().manual_seed(8), **kw)
    assert not torch.equal(other, cached)
    part = sample_cached(model, 3, (5, 6), generator=torch.Generator().manual_seed(7), n_pixels=7, **kw)
    assert torch.equal(part.flatten(2)[:, :, :7], cached.flatten(2)[:, :, :7]) and part.flatten(2)[:, :, 7:].eq(0).all()


def _logit_check_models():
    """small_models() plus the conditioning variants the cached sampler handles differently: a vector h, a code model
    (vocab > 0, read through an embedding) conditioned on a feature map h (the VQ-VAE-2 bottom prior)."""
    models = small_models()
    torch.manual_seed(0)
    models["gated_vector_h"] = GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=3, first_kernel=5, kernel=3,
                                                                 head_channels=6, h_dim=5))
    models["gated_codes_spatial"] = GatedPixelCNN(GatedPixelCNNConfig(channels=6, n_layers=3, first_kernel=5,
                                                                      head_channels=6, vocab=11, code_embedding=4,
                                                                      cond_channels=2))
    return models


def _logit_check_kwargs(name: str, n: int, hh: int, ww: int) -> dict:
    g = torch.Generator().manual_seed(5)
    if name == "gated_vector_h":
        return {"h": torch.randn(n, 5, generator=g)}
    if name == "gated_codes_spatial":
        return {"h": torch.randn(n, 2, hh, ww, generator=g)}
    return kwargs_for(name, n)


@pytest.mark.parametrize("name", list(_logit_check_models()))
def test_cached_sampler_logits_equal_a_full_forward_at_every_step(name, monkeypatch):
    """The cached sampler's logits for every sub-pixel it draws equal the full network's logits there on the image
    generated so far (later sub-pixels still 0), to float round-off -- a much finer check than equal 8-bit samples,
    which a slightly stale cache entry of one layer changes only when a uniform falls near a CDF step."""
    import genlab.models.pixelcnn_sampling as sampling

    model = _logit_check_models()[name].eval()
    n, hh, ww = 2, 4, 5
    kw = _logit_check_kwargs(name, n, hh, ww)
    code = getattr(model.config, "vocab", 0) > 0
    c = model.config.in_channels
    drawn = []
    draw = sampling._draw

    def record(logits, u):
        drawn.append(logits.clone())
        return draw(logits, u)

    monkeypatch.setattr(sampling, "_draw", record)
    x = sample_cached(model, n, (hh, ww), generator=torch.Generator().manual_seed(3), **kw)
    assert len(drawn) == hh * ww * c
    img = x[:, None] if code else x                                               # (n, C, H, W)
    order = (torch.arange(hh * ww).view(1, hh, ww) * c + torch.arange(c).view(c, 1, 1))   # raster, then R -> G -> B
    with torch.no_grad():
        for k, cached in enumerate(drawn):
            (i, j), ch = divmod(k // c, ww), k % c
            so_far = torch.where(order < k, img, torch.zeros_like(img))           # the sampler's canvas at step k
            full = model(so_far[:, 0], **kw)[:, :, i, j] if code else model(so_far, **kw)[:, :, ch, i, j]
            torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-5,
                                       msg=lambda m: f"{name}: sub-pixel {(ch, i, j)} (step {k}): {m}")


def test_samples_follow_the_model_distribution():
    """A model whose output layer is forced to put all mass on value 200 samples 200 everywhere."""
    model = small_models()["pixelcnn"]
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.fill_(-30.0)
        model.out.bias[200] = 30.0
    assert sample_cached(model, 2, 4, generator=torch.Generator().manual_seed(0)).eq(200).all()


SHIPPED = ["pixelcnn_mnist", "gated_pixelcnn_mnist", "gated_pixelcnn_mnist_cond", "gated_pixelcnn_mnist_cond_attn"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_reproduces_its_provenance(name):
    """Re-evaluate the shipped weights on the first 100 test digits (the full-split test_bpd is re-measured by
    `genlab eval NAME` and by notebook 05) and compare with the provenance."""
    from genlab.checkpoints import read_provenance, shipped_path
    from genlab.zoo import load_pretrained
    from genlab.data.mnist import mnist5k
    from genlab.paths import sha256
    from genlab.metrics.likelihood import evaluate_bpd

    prov = read_provenance(name)
    assert prov["command"] == f"genlab train {name} --profile cpu --ship"
    assert prov["sha256"] == sha256(shipped_path(name)) and prov["train_seconds"] > 0 and prov["seed"] == 0
    assert "held out" in prov["data"]
    model = load_pretrained(name).model
    x, y = mnist5k("test", as_uint8=True)
    cond = getattr(model.config, "n_classes", 0) > 0
    bpd = evaluate_bpd(model, x[:100], y[:100] if cond else None)
    assert abs(bpd - prov["metrics"]["test_bpd_first100"]) <= 0.002, (bpd, prov["metrics"])
    assert 0.5 < prov["metrics"]["test_bpd"] < 2.0
    if cond:
        assert 0.0 <= prov["metrics"]["conditional_sample_accuracy"] <= 1.0


def test_zoo_lists_the_pixelcnns():
    from genlab.zoo import get_recipe, known_names

    assert set(SHIPPED) <= set(known_names())
    cfg = get_recipe("gated_pixelcnn_mnist_cond").config("cpu")
    assert cfg.model.n_classes == 10 and get_recipe("gated_pixelcnn_mnist").config("cpu").model.n_classes == 0


def test_attention_recipe_is_the_conditional_recipe_plus_one_attention_layer():
    """The ablation of notebook 05: same network, data, steps and seed; only attention_heads differs."""
    from genlab.zoo import get_recipe

    for profile in ("ci", "cpu", "gpu"):
        base = get_recipe("gated_pixelcnn_mnist_cond").config(profile)
        attn = get_recipe("gated_pixelcnn_mnist_cond_attn").config(profile)
        assert attn.train == base.train
        base_model = base.as_dict()["model"]
        assert {k: v for k, v in attn.as_dict()["model"].items() if base_model[k] != v} == {"attention_heads": 2}
    model = get_recipe("gated_pixelcnn_mnist_cond_attn").build(get_recipe("gated_pixelcnn_mnist_cond_attn")
                                                              .config("ci").as_dict()["model"])
    assert model.attention is not None and model.config.n_classes == 10


def test_class_bits_is_the_likelihood_under_each_label():
    from genlab.metrics.likelihood import nats_per_image
    from genlab.zoo.pixelcnn import class_bits

    model = small_models()["gated_cond"].eval()
    x = torch.randint(0, 256, (3, 1, 4, 5), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    bits = class_bits(model, x, batch_size=2)
    assert bits.shape == (3, 10)
    for c in range(10):                                    # one full forward per label, the nats path of the loss
        with torch.no_grad():
            want = nats_per_image(model(x, torch.full((3,), c)), x, reduction="none") / math.log(2)
        assert torch.allclose(bits[:, c], want, rtol=1e-5)
    assert not torch.allclose(bits[:, 0], bits[:, 7])      # the label matters
    with pytest.raises(ValueError, match="class-conditional"):
        class_bits(small_models()["gated"], x)
