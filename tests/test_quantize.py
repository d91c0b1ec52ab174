"""genlab.nn.quantize: the straight-through estimator, the EMA codebook update, dead-code restarts, k-means -- exact on
hand-made batches, and equal to the vector-quantize-pytorch package on the same inputs and settings."""
from __future__ import annotations

import pytest
import torch

from genlab.nn.quantize import VectorQuantizer, nearest_code

pytestmark = pytest.mark.usefixtures("one_thread")


def _vq(codebook, **kw):
    vq = VectorQuantizer(len(codebook), codebook.shape[1], **kw)
    with torch.no_grad():
        vq.codebook.copy_(codebook)
        if vq.ema:
            vq.ema_sum.copy_(codebook)
    return vq


def test_nearest_code_and_quantized_values():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[0.1, -0.1], [0.9, 0.2], [0.2, 1.7], [0.6, 0.0]])
    assert nearest_code(z, codebook).tolist() == [0, 1, 2, 1]
    vq = _vq(codebook).eval()
    out = vq(z.T.reshape(1, 2, 2, 2))                       # (B=1, D=2, H=2, W=2), positions in row-major order
    assert out.codes.flatten().tolist() == [0, 1, 2, 1]
    assert torch.allclose(out.quantized.reshape(2, 4).T, codebook[[0, 1, 2, 1]])
    assert torch.allclose(out.commitment, ((z - codebook[[0, 1, 2, 1]]) ** 2).mean())
    assert torch.allclose(out.loss, 0.25 * out.commitment)
    p = torch.tensor([0.25, 0.5, 0.25])                      # the code histogram (1, 2, 1) / 4
    expected = float(torch.exp(-(p * p.log()).sum()))        # = 2 sqrt(2)
    assert float(out.perplexity) == pytest.approx(expected) == pytest.approx(2 * 2 ** 0.5)
    assert vq.perplexity_of(out.codes) == pytest.approx(expected)


def test_straight_through_gradient_is_the_identity_on_the_encoder_output():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, ema=True).eval()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    g = torch.randn_like(z)
    (out.quantized * g).sum().backward()                     # the decoder's gradient arrives unchanged at z_e
    assert torch.allclose(z.grad, g)


def test_codebook_loss_trains_the_codebook_only_without_ema():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    vq = VectorQuantizer(8, 4, ema=False)
    out = vq(z)
    e = vq.codebook[out.codes.flatten()]
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    ref = 0.25 * ((flat - e.detach()) ** 2).mean() + ((flat.detach() - e) ** 2).mean()
    assert torch.allclose(out.loss, ref)
    out.loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    assert isinstance(VectorQuantizer(8, 4, ema=True).codebook, torch.Tensor) and \
        "codebook" not in dict(VectorQuantizer(8, 4, ema=True).named_parameters())


def test_ema_update_equals_its_formula_on_a_hand_made_batch():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    vq = _vq(codebook, decay=0.9, eps=1e-5).train()
    z = torch.tensor([[0.2, 0.0], [0.0, 0.4], [1.2, 0.8]])     # codes 0, 0, 1; code 2 unused
    vq(z.T.reshape(1, 2, 3, 1))
    n = torch.tensor([2.0, 1.0, 0.0])
    sums = torch.tensor([[0.2, 0.4], [1.2, 0.8], [0.0, 0.0]])
    N = 0.9 * torch.ones(3) + 0.1 * n                        # N <- g N + (1 - g) n, from N = 1
    m = 0.9 * codebook + 0.1 * sums                          # m <- g m + (1 - g) sum, from m = e
    smoothed = (N + 1e-5) / (N.sum() + 3e-5) * N.sum()
    assert torch.allclose(vq.ema_count, N) and torch.allclose(vq.ema_sum, m)
    assert torch.allclose(vq.codebook, m / smoothed[:, None])
    assert vq.usage.tolist() == [2.0, 1.0, 0.0]
    vq.eval()
    before = vq.codebook.clone()
    vq(z.T.reshape(1, 2, 3, 1))
    assert torch.equal(vq.codebook, before), "no update in eval mode"


def test_restarts_replace_exactly_the_dead_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(6, 2).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0], [1, 0], [0, 1], [50, 50], [60, 60], [70, 70]]))
        vq.ema_sum.copy_(vq.codebook)
    z = torch.rand(1, 2, 4, 4)                               # near the first three codes only
    vq(z)
    assert vq.dead_codes().tolist() == [3, 4, 5]
    before = vq.codebook.clone()
    restarted = vq.restart_dead_codes(z, generator=torch.Generator().manual_seed(0))
    assert restarted.tolist() == [3, 4, 5]
    assert torch.equal(vq.codebook[:3], before[:3]), "live codes are untouched"
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for k in (3, 4, 5):
        assert (flat - vq.codebook[k]).abs().sum(1).min() == 0, "a restarted code is one of the encoder outputs"
        assert vq.ema_count[k] == 1 and torch.equal(vq.ema_sum[k], vq.codebook[k])
    assert len(vq.dead_codes()) == 0
    vq.reset_usage()
    assert len(vq.dead_codes()) == 6


def test_kmeans_init_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = (centres[torch.arange(300) % 3] + 0.1 * torch.randn(300, 2, generator=g))
    vq = VectorQuantizer(3, 2)
    vq.kmeans_init(z, iters=20, generator=torch.Generator().manual_seed(1))
    found = sorted(vq.codebook.round().tolist())
    assert found == sorted(centres.tolist()), found


def test_bad_input_shape_names_the_expected_one():
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        VectorQuantizer(8, 4)(torch.randn(2, 3, 5, 5))


def test_ema_quantizer_equals_vector_quantize_pytorch():
    vqp = pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    ref = vqp.VectorQuantize(dim=4, codebook_size=16, decay=0.99, commitment_weight=0.25, rotation_trick=False,
                             threshold_ema_dead_code=0, kmeans_init=False, accept_image_fmap=True).train()
    ours = _vq(ref._codebook.embed[0].detach().clone(), decay=0.99, beta=0.25).train()
    for step in range(3):
        z = torch.randn(4, 4, 5, 5, generator=torch.Generator().manual_seed(step))
        q_ref, codes_ref, loss_ref = ref(z)
        out = ours(z)
        assert torch.equal(out.codes, codes_ref), step
        torch.testing.assert_close(out.quantized, q_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.loss, loss_ref.reshape(()), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ours.codebook, ref._codebook.embed[0], rtol=1e-5, atol=1e-6)


def test_video_volumes_quantize_like_their_frames():
    """(B, D, T, H, W) feature volumes: the codes and z_q of each frame equal those of the frame as an image map."""
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4).eval()
    z = torch.randn(2, 4, 3, 5, 6, generator=torch.Generator().manual_seed(1))
    out = vq(z)
    assert out.codes.shape == (2, 3, 5, 6) and out.quantized.shape == z.shape
    for t in range(3):
        frame = vq(z[:, :, t])
        assert torch.equal(out.codes[:, t], frame.codes)
        assert torch.equal(out.quantized[:, :, t], frame.quantized)
    seq = vq(z.flatten(2))                                                   # (B, D, N): a sequence of vectors
    assert torch.equal(seq.codes, out.codes.flatten(1))
    with pytest.raises(ValueError, match=r"\(B, 4, T, H, W\)"):
        vq(torch.randn(2, 4))


def test_laplace_smoothing_keeps_a_long_unused_code_exact_and_finite():
    """A code no vector is assigned to for thousands of EMA steps: N_k = g^T and m_k = g^T e_k(0) decay to ~0 together,
    and only the Laplace smoothing, N~_k = (N_k + eps) / (sum_j N_j + K eps) * sum_j N_j, keeps e_k = m_k / N~_k
    defined (without it e_k would stay at e_k(0) while N_k > 0 and turn into 0 / 0 = NaN once N_k and m_k reach 0)."""
    g, eps, steps = 0.99, 1e-5, 3000
    codebook = torch.tensor([[10.0, 10.0], [10.0, -10.0], [-3.0, 4.0]])
    vq = _vq(codebook, decay=g, eps=eps).train()
    z = torch.tensor([[9.0, 10.0], [11.0, 10.0], [10.0, -9.0], [10.0, -11.0]])     # codes 0, 0, 1, 1; code 2 unused
    batch = z.T.reshape(1, 2, 4, 1)
    for _ in range(steps):
        out = vq(batch)
    assert out.codes.flatten().tolist() == [0, 0, 1, 1] and vq.usage.tolist() == [2.0 * steps, 2.0 * steps, 0.0]
    # the EMAs in closed form after T steps with the same batch: x_T = g^T x_0 + (1 - g^T) x_batch (float64)
    decay = g ** steps                                                              # ~8e-14
    n = torch.tensor([2.0, 2.0, 0.0], dtype=torch.float64)
    sums = torch.tensor([[20.0, 20.0], [20.0, -20.0], [0.0, 0.0]], dtype=torch.float64)
    N = decay * torch.ones(3, dtype=torch.float64) + (1 - decay) * n
    m = decay * codebook.double() + (1 - decay) * sums
    smoothed = (N + eps) / (N.sum() + 3 * eps) * N.sum()
    expected = m / smoothed[:, None]
    assert torch.isfinite(vq.codebook).all()
    torch.testing.assert_close(vq.ema_count.double(), N, rtol=1e-3, atol=0)
    torch.testing.assert_close(vq.codebook.double(), expected, rtol=1e-3, atol=0)
    assert vq.codebook[2].abs().max() < 1e-7, "the unused code is pulled to ~0 by the smoothing, not kept at e(0)"
    # the limit T -> infinity: N_2 = m_2 = 0 exactly; one more step must give e_2 = 0 / (eps N / (N + K eps)) = 0
    with torch.no_grad():
        vq.ema_count[2] = 0.0
        vq.ema_sum[2] = 0.0
    vq(batch)
    assert torch.isfinite(vq.codebook).all() and vq.codebook[2].tolist() == [0.0, 0.0]
    torch.testing.assert_close(vq.codebook[:2].double(), expected[:2], rtol=1e-3, atol=0)
