"""VQ-VAE and VQ-VAE-2: code-map shapes for several input sizes, decoding codes equals decoding the quantized
vectors, gradients reach the encoder through the straight-through estimator, clear errors for bad sizes."""
from __future__ import annotations

import pytest
import torch

from genlab.models.vqvae import VQVAE, VQVAE2, VQVAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = VQVAEConfig(channels=16, res_hidden=8, n_res=1, embed_dim=8, num_codes=32)


@pytest.mark.parametrize("h, w", [(32, 32), (64, 64), (64, 40), (8, 16)])
def test_vqvae2_code_maps_are_at_one_eighth_and_one_quarter(h, w):
    torch.manual_seed(0)
    model = VQVAE2(SMALL).eval()
    x = torch.rand(2, 3, h, w) * 2 - 1
    out = model(x)
    assert out.recon.shape == x.shape
    assert out.levels["top"].codes.shape == (2, h // 8, w // 8)
    assert out.levels["bottom"].codes.shape == (2, h // 4, w // 4)
    recon = model.decode_codes(out.levels["top"].codes, out.levels["bottom"].codes)
    assert torch.allclose(recon, out.recon, atol=1e-5), "decoding the codes = decoding the quantized vectors"


@pytest.mark.parametrize("downsample", [2, 4, 8])
def test_vqvae_code_map_size(downsample):
    model = VQVAE(VQVAEConfig(**{**SMALL.__dict__, "downsample": downsample})).eval()
    out = model(torch.zeros(1, 3, 32, 32))
    assert out.levels["codes"].codes.shape == (1, 32 // downsample, 32 // downsample) and out.recon.shape == (1, 3, 32, 32)


def test_gradients_reach_both_encoders_and_the_loss_adds_the_commitments():
    torch.manual_seed(0)
    model = VQVAE2(SMALL).train()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = model(x)
    assert torch.allclose(out.loss, out.recon_loss + out.levels["top"].loss + out.levels["bottom"].loss)
    out.loss.backward()
    for part in (model.enc_b, model.enc_t, model.dec_t, model.dec):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part


def test_bad_sizes_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="divisible by 8"):
        VQVAE2(SMALL)(torch.zeros(1, 3, 36, 36))
    with pytest.raises(ValueError, match="divisible by 4"):
        VQVAE(SMALL)(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        VQVAE2(SMALL)(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="power of 2"):
        VQVAEConfig(downsample=3)
    with pytest.raises(ValueError, match="twice"):
        VQVAE2(SMALL).decode_codes(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))


@pytest.mark.parametrize("ema", [True, False])
@pytest.mark.parametrize("cls", [VQVAE, VQVAE2])
def test_reconstruction_gradient_reaches_the_encoder_output_unchanged_through_the_straight_through_estimator(cls, ema):
    """Isolates the straight-through estimator from the commitment loss (which alone also reaches the encoder): the
    gradient of the reconstruction loss only w.r.t. each encoder output z_e equals its gradient w.r.t. z_q exactly
    (d z_q / d z_e = I), at every level; without the estimator no reconstruction gradient would reach z_e at all."""
    torch.manual_seed(0)
    model = cls(VQVAEConfig(**{**SMALL.__dict__, "ema": ema})).train()
    seen = []

    def keep(module, inputs, out):
        z_e, z_q = inputs[0], out.quantized
        z_e.retain_grad()
        if z_q.requires_grad:
            z_q.retain_grad()
        seen.append((z_e, z_q))

    quantizers = [model.quantizer] if cls is VQVAE else [model.quant_t, model.quant_b]
    for vq in quantizers:
        vq.register_forward_hook(keep)
    out = model(torch.rand(2, 3, 16, 16) * 2 - 1)
    out.recon_loss.backward()                                 # no commitment / codebook term
    assert len(seen) == len(quantizers)
    for z_e, z_q in seen:
        assert z_e.grad is not None, "no reconstruction gradient reaches the encoder output: straight-through missing"
        assert z_q.grad is not None and z_q.grad.abs().sum() > 0
        assert torch.equal(z_e.grad, z_q.grad)
