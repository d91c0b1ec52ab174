"""StyleGAN synthesis (configs A-F, progressive growing) and StyleGAN2 (modulation, demodulation, path length):
exact where the maths is exact, statistical with a stated tolerance where it is not."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genlab.losses import path_length_penalty
from genlab.models import stylegan2
from genlab.models.stylegan import CONFIGS, Discriminator, Generator, GrowthSchedule, StyleGANConfig, grow_real
from genlab.nn.modulated import ModulatedConv2d, modulated_conv2d
from genlab.nn.resample import downsample, resampling_matrix, resize_to, upsample

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(resolution=16, max_channels=8, channel_base=64, mapping_layers=2, z_dim=8, w_dim=8)


# ------------------------------------------------------------------------------------------ modulated convolution
def test_grouped_modulated_conv_equals_per_sample_conv_with_explicit_weights():
    torch.manual_seed(0)
    x, weight, s = torch.randn(3, 4, 6, 6), torch.randn(5, 4, 3, 3), torch.rand(3, 4) + 0.5
    for demod in (False, True):
        out = modulated_conv2d(x, weight, s, demodulate=demod)
        for b in range(3):
            wb = weight * s[b][None, :, None, None]                                  # w'_ijk = s_i w_ijk
            if demod:
                wb = wb / (wb.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()   # w'' = w' / sigma_j
            ref = F.conv2d(x[b:b + 1], wb, padding=1)
            assert torch.allclose(out[b:b + 1], ref, atol=1e-5), (demod, b)


def test_demodulated_output_has_unit_std_for_unit_variance_input():
    # Eq. 2 assumes i.i.d. unit-variance inputs: then each output pixel has std exactly 1 (away from the zero-padded
    # border). With 64x64 maps and 8 samples, each channel's std is estimated from 8 * 62 * 62 values: 5% tolerance.
    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 8, 3, w_dim=4)
    with torch.no_grad():
        conv.affine.weight.normal_(0, 3.0)                                         # styles far from 1
        y = conv(torch.randn(8, 16, 64, 64), torch.randn(8, 4))[:, :, 1:-1, 1:-1]
    std = y.std(dim=(2, 3))                                                        # (B, O): per sample and channel
    assert (std - 1).abs().max() < 0.05, std
    conv.demodulate = False
    with torch.no_grad():
        raw = conv(torch.randn(8, 16, 64, 64), torch.randn(8, 4))[:, :, 1:-1, 1:-1].std(dim=(2, 3))
    assert (raw - 1).abs().max() > 0.5, "without demodulation the styles change the output scale"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("b, i, o, k, size, up", [(3, 4, 5, 3, 6, False), (2, 6, 3, 1, 5, False),
                                                  (1, 5, 2, 3, 3, False), (4, 3, 7, 3, 4, True), (2, 8, 4, 1, 3, True),
                                                  (2, 2, 3, 5, 7, False)])
def test_training_form_of_the_modulated_conv_equals_the_grouped_form(b, i, o, k, size, up, dtype):
    """scale x -> one batched conv -> demodulate (training form) and per-sample weights in one grouped conv (inference
    form) are the same function: same outputs and same gradients w.r.t. x, the weight and the styles."""
    g = torch.Generator().manual_seed(b * 100 + i * 10 + k)
    x = torch.randn(b, i, size, size, generator=g, dtype=dtype)
    weight = torch.randn(o, i, k, k, generator=g, dtype=dtype) / (i * k * k) ** 0.5
    s = torch.rand(b, i, generator=g, dtype=dtype) * 3 - 1                        # styles of both signs, some near 0
    dy = torch.randn(b, o, size * (1 + up), size * (1 + up), generator=g, dtype=dtype)
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    for demod in (False, True):
        results = []
        for fused in (True, False):
            leaves = [t.clone().requires_grad_() for t in (x, weight, s)]
            y = modulated_conv2d(*leaves, demodulate=demod, fused=fused, up=up)
            results.append((y, *torch.autograd.grad(y, leaves, dy)))
        for what, a, c in zip(("output", "grad x", "grad weight", "grad styles"), *results):
            torch.testing.assert_close(c, a, **tol, msg=lambda m: f"demodulate={demod}, {what}: {m}")


def test_modulated_conv_layer_runs_the_training_form_in_training_and_the_grouped_form_in_eval(monkeypatch):
    groups, conv2d = [], F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **kw: groups.append(kw.get("groups", 1)) or conv2d(*a, **kw))
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 3, 3, w_dim=5, up=True)
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 5)
    y_train = conv.train()(x, w)
    y_eval = conv.eval()(x, w)
    assert groups == [1, 2], "training: one batched conv; eval: one grouped conv, one group per sample"
    assert y_train.shape == (2, 3, 10, 10) and torch.allclose(y_train, y_eval, atol=1e-5)


def test_stylegan2_generator_gives_the_same_images_and_gradients_in_training_and_eval_mode():
    torch.manual_seed(0)
    G = stylegan2.Generator(stylegan2.StyleGAN2Config(**SMALL))
    ws = G.map(torch.randn(3, 8)).detach()
    noise = [torch.randn(s) for s in G.noise_shapes(3)]
    dy = torch.randn(3, 3, 16, 16)
    out = {}
    for mode in (True, False):
        G.train(mode)
        G.zero_grad()
        img = G.synthesis(ws, noise=noise)
        (img * dy).sum().backward()
        out[mode] = img.detach(), {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-4, atol=1e-5)
    assert out[True][1].keys() == out[False][1].keys() and len(out[True][1]) > 10
    for name, grad in out[True][1].items():
        torch.testing.assert_close(grad, out[False][1][name], rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_modulated_conv_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="styles"):
        modulated_conv2d(torch.randn(2, 4, 5, 5), torch.randn(3, 4, 3, 3), torch.randn(2, 5))


# ----------------------------------------------------------------------------------------------- resampling
def test_bilinear_resampling_is_the_1331_filter_and_nearest_is_pooling():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3:5, 3:5] = 1.0
    down = downsample(x, "bilinear")
    f = torch.tensor([1.0, 3, 3, 1]) / 8
    ref = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), (f[:, None] * f[None, :])[None, None], stride=2)
    assert torch.allclose(down, ref, atol=1e-6)
    assert torch.equal(downsample(x, "nearest"), F.avg_pool2d(x, 2))
    assert torch.equal(upsample(torch.eye(2)[None, None], "nearest")[0, 0], torch.eye(2).repeat_interleave(2, 0)
                       .repeat_interleave(2, 1))
    assert resize_to(torch.rand(2, 3, 32, 32), 8).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="power of 2"):
        resize_to(torch.rand(1, 1, 24, 24), 16)
    with pytest.raises(ValueError, match="mode"):
        upsample(x, "bicubic")


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (2, 3, 4, 6), (1, 5, 8, 8), (2, 4, 16, 4), (3, 2, 32, 32),
                                   (1, 2, 2, 64), (1, 1, 128, 16)])
def test_fast_bilinear_resampling_equals_torch_interpolate_with_its_gradient(shape):
    """upsample / downsample (matrix products on the CPU for small maps) against F.interpolate's bilinear x2 and
    antialiased bilinear /2, borders included, forward and backward."""
    g = torch.Generator().manual_seed(sum(shape))
    for up, ref in ((True, lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)),
                    (False, lambda t: F.interpolate(t, scale_factor=0.5, mode="bilinear", align_corners=False,
                                                    antialias=True))):
        x = torch.randn(shape, generator=g)
        dy = torch.randn(ref(x).shape, generator=g)
        results = []
        for fn in ((lambda t: upsample(t, "bilinear")) if up else (lambda t: downsample(t, "bilinear")), ref):
            xg = x.clone().requires_grad_()
            y = fn(xg)
            y.backward(dy)
            results.append((y, xg.grad))
        torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-6)
        torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=1e-5)
    # a 2-pixel-wide map: torch 2.x's antialiased CPU kernel gives every output row the first row's value when the
    # output is one pixel wide, so compare with the transposed (2-pixel-high) map instead
    x = torch.randn(2, 3, 8, 2, generator=g)
    assert torch.allclose(downsample(x), downsample(x.transpose(2, 3)).transpose(2, 3), atol=1e-6)


def test_resampling_matrices_hold_the_bilinear_weights_with_torchs_edges():
    up, down = resampling_matrix(4, up=True), resampling_matrix(8, up=False)
    assert up.tolist() == [[1, 0, 0, 0], [.75, .25, 0, 0], [.25, .75, 0, 0], [0, .75, .25, 0], [0, .25, .75, 0],
                           [0, 0, .75, .25], [0, 0, .25, .75], [0, 0, 0, 1]]      # edges: the edge pixel itself
    assert torch.equal(down[1], torch.tensor([0, 1, 3, 3, 1, 0, 0, 0], dtype=torch.float64) / 8)
    assert torch.allclose(down[0], torch.tensor([3, 3, 1, 0, 0, 0, 0, 0], dtype=torch.float64) / 7)   # renormalized
    assert torch.allclose(down[3], down[0].flip(0))
    assert torch.allclose(resampling_matrix(2, up=False), torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    with pytest.raises(ValueError, match="length 5"):
        resampling_matrix(5, up=False)


# ------------------------------------------------------------------------------------------- configs and errors
def test_each_config_adds_exactly_one_switch_of_table_1():
    keys = ["tuning", "mapping", "const_input", "noise", "mixing_prob"]
    rows = list(CONFIGS)
    assert rows == list("ABCDEF")
    for prev, row in zip(rows, rows[1:]):
        changed = [k for k in keys if CONFIGS[prev][k] != CONFIGS[row][k]]
        assert len(changed) == 1, (prev, row, changed)
    A, F_ = Generator(StyleGANConfig.of("A", **SMALL)), Generator(StyleGANConfig.of("F", **SMALL))
    assert A.mapping is None and not hasattr(A, "const") and A.layers[0].style is None
    assert F_.mapping is not None and F_.const.shape == (1, 8, 4, 4) and F_.layers[1].noise is not None


def test_bad_resolutions_and_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="power of 2"):
        StyleGANConfig(resolution=24)
    with pytest.raises(ValueError, match="power of 2"):
        stylegan2.StyleGAN2Config(resolution=2)
    with pytest.raises(ValueError, match="Table 1"):
        StyleGANConfig.of("G")
    with pytest.raises(ValueError, match="const_input needs mapping"):
        StyleGANConfig(mapping=False, const_input=True, mixing_prob=0.0)
    G = Generator(StyleGANConfig.of("F", **SMALL))
    with pytest.raises(ValueError, match="growth resolution"):
        G.set_growth(12)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        G(torch.randn(2, 5))
    with pytest.raises(ValueError, match="no W space"):
        Generator(StyleGANConfig.of("A", **SMALL))(torch.randn(2, 8), psi=0.7)
    with pytest.raises(ValueError, match=r"\(B, 3, r, r\)"):
        Discriminator(G.config)(torch.randn(2, 3, 12, 12))
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\)"):
        stylegan2.Discriminator(stylegan2.StyleGAN2Config(resolution=16, max_channels=8))(torch.randn(4, 3, 8, 8))


# ------------------------------------------------------------------------------------ progressive growing, fade-in
@pytest.mark.parametrize("row", ["A", "B", "E"])
def test_fade_in_at_alpha_0_and_1_equals_the_lower_and_higher_resolution_paths(row):
    torch.manual_seed(0)
    c = StyleGANConfig.of(row, **SMALL)
    G, D = Generator(c).eval(), Discriminator(c).eval()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.1 * torch.randn_like(p))                 # noise scales etc. away from their zero init
    z, mode = torch.randn(4, 8), c.resample

    def g(res, alpha):
        G.set_growth(res, alpha)
        return G(z, noise=torch.Generator().manual_seed(1))  # the same noise maps for the shared layers

    low = g(8, 1.0)
    assert torch.allclose(g(16, 0.0), upsample(low, mode), atol=1e-5), "alpha 0: the upsampled 8x8 image"
    G.set_growth(16, 1.0)
    high = G.synthesis(G.map(z), noise=torch.Generator().manual_seed(1))
    assert torch.allclose(g(16, 1.0), high) and not torch.allclose(high, upsample(low, mode), atol=1e-3)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    D.set_growth(8, 1.0)
    lower = D(downsample(x, mode))                       # the stable 8x8 discriminator
    D.set_growth(16, 0.0)
    assert torch.allclose(D(x), lower, atol=1e-5), "alpha 0: D sees only the halved image"
    D.set_growth(16, 1.0)
    full = D(x)
    D.set_growth(16, 0.5)
    assert not torch.allclose(D(x), full)


def test_growth_schedule_and_real_images_follow_the_stage():
    s = GrowthSchedule(8, 32, 10)
    assert [s.at(i) for i in (0, 9, 10, 15, 20, 29, 30, 35, 40, 10_000)] == [
        (8, 1.0), (8, 1.0), (16, 0.0), (16, 0.5), (16, 1.0), (16, 1.0), (32, 0.0), (32, 0.5), (32, 1.0), (32, 1.0)]
    assert s.growth_steps == 50 and GrowthSchedule(32, 32, 5).at(0) == (32, 1.0)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(grow_real(x, 32, 1.0, "nearest"), x)
    half = grow_real(x, 16, 0.0, "bilinear")
    assert torch.allclose(half, upsample(downsample(downsample(x)), "bilinear"))


# -------------------------------------------------------------------------------- styles, noise, mixing in training
def test_noise_changes_only_what_the_noise_layers_touch_and_generators_repeat():
    torch.manual_seed(0)
    G = Generator(StyleGANConfig.of("E", **SMALL)).eval()
    with torch.no_grad():
        for layer in G.layers:
            layer.noise.weight.fill_(0.5)
    z = torch.randn(3, 8)
    a = G(z, noise=torch.Generator().manual_seed(1))
    assert torch.equal(a, G(z, noise=torch.Generator().manual_seed(1)))
    assert not torch.allclose(a, G(z, noise=torch.Generator().manual_seed(2)))
    maps = [torch.zeros(s) for s in G.noise_shapes(3)]
    with torch.no_grad():
        for layer in G.layers:
            layer.noise.weight.fill_(0.0)
    assert torch.allclose(G(z, noise=maps), G(z, noise=torch.Generator().manual_seed(3)))


def test_mixing_regularization_uses_two_latents_only_in_training():
    torch.manual_seed(0)
    G = Generator(StyleGANConfig.of("F", **SMALL, mixing_prob=1.0))
    ws = G.map(torch.randn(16, 8))                       # training: a crossover in [1, L-1] for every image
    differs = (ws[:, 1:] - ws[:, :1]).abs().sum(-1) > 0  # (B, L-1): which layers use the second w
    assert differs.any(1).all(), "every image mixes"
    assert ((differs[:, 1:].int() - differs[:, :-1].int()) >= 0).all(), "once switched, the rest follow w2"
    G.eval()
    ws = G.map(torch.randn(16, 8))
    assert torch.equal(ws, ws[:, :1].expand_as(ws))
    G.train()
    G.set_growth(8)                                      # 8x8 stage: 4 active layers, crossover within them
    ws = G.map(torch.randn(64, 8))
    assert torch.equal(ws[:, 4:], ws[:, 3:4].expand_as(ws[:, 4:]))


def test_mix_layers_takes_b_exactly_on_the_given_layers():
    from genlab.nn.latent import mix_layers

    wa, wb = torch.zeros(2, 3), torch.ones(2, 3)
    out = mix_layers(wa, wb, range(4, 6), 8)
    assert out.shape == (2, 8, 3)
    assert out[:, :, 0].tolist() == [[0, 0, 0, 0, 1, 1, 0, 0]] * 2


def test_truncation_in_the_generator_uses_the_tracked_w_avg():
    torch.manual_seed(0)
    G = Generator(StyleGANConfig.of("D", **SMALL))
    G.map(torch.randn(256, 8))                           # training: w_avg moves
    G.eval()
    z = torch.randn(2, 8)
    ref = G.synthesis(G.mapping.w_avg.expand(2, G.n_styles, -1))
    assert torch.allclose(G(z, psi=0.0), ref, atol=1e-6)
    assert torch.allclose(G(z, psi=1.0), G(z))


# --------------------------------------------------------------------------------------------- StyleGAN2
def test_stylegan2_shapes_features_and_skip_output():
    torch.manual_seed(0)
    c = stylegan2.StyleGAN2Config(**SMALL)
    G, D = stylegan2.Generator(c).eval(), stylegan2.Discriminator(c)
    img, feats = G(torch.randn(4, 8), return_features=True, noise=torch.Generator().manual_seed(0))
    assert img.shape == (4, 3, 16, 16) and [f.shape[-1] for f in feats] == [4, 8, 16] and D(img).shape == (4,)
    assert G.n_styles == 6 and len(G.noise_shapes(4)) == 5
    # the skip generator's image is the sum of the upsampled tRGB outputs: zeroing the top tRGB leaves up(lower)
    ws = G.map(torch.randn(4, 8))
    noise = [torch.zeros(s) for s in G.noise_shapes(4)]
    with torch.no_grad():
        G.to_rgb[-1].conv.weight.zero_()
        G.to_rgb[-1].bias.zero_()
        top = G.synthesis(ws, noise=noise)
    c8 = stylegan2.StyleGAN2Config(**{**SMALL, "resolution": 8})
    G8 = stylegan2.Generator(c8).eval()
    G8.load_state_dict({k: v for k, v in G.state_dict().items() if k in G8.state_dict()})
    assert torch.allclose(top, upsample(G8.synthesis(ws[:, :4], noise=noise[:3]), "bilinear"), atol=1e-5)


def test_path_length_penalty_matches_the_analytic_jacobian_of_a_linear_generator():
    torch.manual_seed(0)
    A = torch.randn(2 * 5, 3 * 4 * 4, dtype=torch.float64, requires_grad=True)   # g(ws) = ws.flatten() @ A
    ws = torch.randn(6, 2, 5, dtype=torch.float64, requires_grad=True)
    images = (ws.flatten(1) @ A).reshape(6, 3, 4, 4)
    y = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    pl_mean = torch.tensor(0.3, dtype=torch.float64)
    penalty, lengths, new_mean = path_length_penalty(images, ws, pl_mean, decay=0.01, y=y)
    jty = (y.flatten(1) @ A.detach().T).reshape(6, 2, 5)          # J^T y, by hand (L = 2, w_dim = 5)
    ref = jty.square().sum(2).mean(1).sqrt()
    assert torch.allclose(lengths, ref)
    assert torch.allclose(new_mean, 0.3 + 0.01 * (ref.mean() - 0.3))
    assert torch.allclose(penalty, (ref - new_mean).square())
    (g,) = torch.autograd.grad(penalty.sum(), A)                  # create_graph: the penalty trains the generator
    A_ref = A.detach().clone().requires_grad_(True)
    j = (y.flatten(1) @ A_ref.T).reshape(6, 2, 5).square().sum(2).mean(1).sqrt()
    (g_ref,) = torch.autograd.grad((j - new_mean).square().sum(), A_ref)
    assert torch.allclose(g, g_ref)


def test_gan_step_applies_path_length_lazily_and_tracks_pl_mean():
    from genlab.train import GANStepConfig, gan_state, make_gan_step

    torch.manual_seed(0)
    c = stylegan2.StyleGAN2Config(**SMALL)
    G, D = stylegan2.Generator(c), stylegan2.Discriminator(c)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 1e-3, betas=(0.0, 0.99)),
                      torch.optim.Adam(D.parameters(), 1e-3, betas=(0.0, 0.99)))
    step = make_gan_step(GANStepConfig(z_dim=8, pl_weight=2.0, pl_every=4))
    seen = []
    for i in range(9):
        state.step = i
        logs = step(state, torch.rand(8, 3, 16, 16) * 2 - 1)
        seen.append("pl_length" in logs)
        if i == 0:
            assert torch.allclose(G.pl_mean, 0.01 * logs["pl_length"])   # a <- 0 + 0.01 (mean length - 0)
    assert seen == [True, False, False, False, True, False, False, False, True]
    assert GANStepConfig(pl_weight=2.0, pl_every=4).pl_step_weight(8) == 8.0


def test_stylegan_recipes_train_in_the_ci_profile_and_generate_repeatably(tmp_path):
    from genlab.config import setup
    from genlab.nn.inference import generate
    from genlab.zoo import train_recipe

    for name in ("stylegan_faces32_f", "stylegan2_faces32"):
        G = train_recipe(name, setup("ci", 0), out=tmp_path, progress=False)
        x = generate(G, 3)
        assert x.shape == (3, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
        assert torch.equal(x, generate(G, 3)), "generate() fixes z and the noise"
