"""Warping, pix2pixHD-lite, vid2vid-lite and the conditional-video metrics, on tensors with known answers."""
import pytest
import torch
import torch.nn.functional as F

from genlab.losses import feature_matching, flow_loss, warp_loss
from genlab.metrics.image_quality import ssim
from genlab.metrics.segmentation import confusion_matrix, mean_iou, pixel_accuracy
from genlab.metrics.temporal import flicker, tof, warp_error, warp_error_per_frame
from genlab.models.pix2pix import GlobalGenerator, LocalEnhancer, MultiscaleDiscriminator, Pix2PixConfig
from genlab.models.vid2vid import (Vid2Vid, Vid2VidConfig, VideoDiscriminator, blend_baseline, composite,
                                   d_v_channels, video_windows)
from genlab.nn.warp import compose_backward, outside_mask, warp


def translated_video(b=2, t=5, shift=(2, 1), size=24, seed=0):
    """A smooth random texture moving by ``shift`` = (dx, dy) integer pixels per frame, its exact backward flow (the
    point at p in frame t was at p - shift in frame t - 1) and occlusion (pixels entering from the border)."""
    g = torch.Generator().manual_seed(seed)
    big = F.interpolate(torch.rand(b, 3, 16, 16, generator=g), size=(size * 3, size * 3), mode="bilinear",
                        align_corners=False)
    dx, dy = shift
    frames = [big[:, :, size + k * dy: 2 * size + k * dy, size + k * dx: 2 * size + k * dx] for k in range(-t, 0)]
    video = torch.stack(frames[::-1][::-1], 1)                                   # frame k shows the window at k*shift
    # frame k is the window origin o_k = (size + (k - t) dx, ...): content at window pixel p is big[o_k + p];
    # in frame k - 1 the same content is at p + shift  ->  backward flow = +shift? content moves by -shift on screen
    flow = torch.zeros(b, t, 2, size, size)
    flow[:, 1:, 0], flow[:, 1:, 1] = dx, dy
    occ = torch.zeros(b, t, 1, size, size)
    occ[:, 0] = 1
    occ[:, 1:] = outside_mask(flow[:, 1]).unsqueeze(1)
    return video, flow, occ


def test_warp_zero_flow_is_identity():
    x = torch.rand(2, 3, 9, 11)
    assert torch.allclose(warp(x, torch.zeros(2, 2, 9, 11)), x, atol=1e-6)


def test_warp_integer_translation_exact():
    x = torch.rand(1, 3, 10, 12)
    flow = torch.zeros(1, 2, 10, 12)
    flow[:, 0], flow[:, 1] = 3, -2                     # out(y, x) = in(y - 2, x + 3)
    out = warp(x, flow)
    assert torch.allclose(out[:, :, 2:, :9], x[:, :, :8, 3:], atol=1e-5)
    assert outside_mask(flow)[0, 0, :2].all() and outside_mask(flow)[0, 0, 2:, :9].sum() == 0


def test_translated_video_warps_exactly_and_flow_composes():
    video, flow, occ = translated_video()
    assert warp_error(video, flow, occ) < 1e-5
    assert warp_error(video, torch.zeros_like(flow), occ) > 0.01      # the zero-flow baseline is clearly worse
    two = compose_backward(flow[:, 2], flow[:, 1])
    inside = 1 - outside_mask(two)
    assert torch.allclose(two * inside, torch.tensor([4.0, 2.0]).view(1, 2, 1, 1) * inside)


def test_composite_extremes():
    prev, h = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    flow = torch.zeros(2, 2, 8, 8)
    flow[:, 0] = 1.0
    assert torch.allclose(composite(prev, flow, h, torch.zeros(2, 1, 8, 8)), warp(prev, flow))
    assert torch.allclose(composite(prev, flow, h, torch.ones(2, 1, 8, 8)), h)
    half = composite(prev, flow, h, torch.full((2, 1, 8, 8), 0.25))
    assert torch.allclose(half, 0.75 * warp(prev, flow) + 0.25 * h)


def test_pix2pix_shapes_and_multiscale_d():
    cfg = Pix2PixConfig(num_classes=5, ngf=8, n_blocks=1, ndf=8)
    labels = F.one_hot(torch.randint(0, 5, (2, 32, 32)), 5).permute(0, 3, 1, 2).float()
    assert GlobalGenerator(cfg)(labels).shape == (2, 3, 32, 32)
    assert LocalEnhancer(cfg)(labels).shape == (2, 3, 32, 32)
    d = MultiscaleDiscriminator(8, ndf=8, n_layers=3, num_scales=2)
    x = torch.randn(2, 8, 32, 32)
    feats = d.features(x)
    assert len(feats) == 2 and feats[0][-1].shape == (2, 1, 4, 4) and feats[1][-1].shape == (2, 1, 2, 2)
    out = d(x)
    assert out.shape == (2, 2, 4, 4)
    # each scale's map enters with equal weight: the mean of the output is the mean of the per-scale means
    assert torch.allclose(out.mean(), (feats[0][-1].mean() + feats[1][-1].mean()) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        d(torch.randn(2, 7, 32, 32))


def test_d_v_channels_and_windows():
    for k in (1, 2, 3, 4):
        assert d_v_channels(k) == 3 * k + 2 * (k - 1)
        assert VideoDiscriminator(frames=k, ndf=4).in_channels == d_v_channels(k)
    video = torch.arange(7.0).view(1, 7, 1, 1, 1).expand(1, 7, 3, 4, 4)
    flow = torch.zeros(1, 7, 2, 4, 4)
    flow[:, :, 0] = 1.0
    w1 = video_windows(video, flow, 3, 1)
    assert w1.shape == (5, 13, 4, 4)
    assert w1[2, 0:3].mean() == 2 and w1[2, 3:6].mean() == 3 and w1[2, 6:9].mean() == 4
    w2 = video_windows(video, flow, 3, 2)
    assert w2.shape == (3, 13, 4, 4)
    assert w2[1, 0:3].mean() == 1 and w2[1, 3:6].mean() == 3 and w2[1, 6:9].mean() == 5
    assert torch.allclose(w2[:, 9], torch.full((3, 4, 4), 2.0))            # flow composed over two steps
    with pytest.raises(ValueError, match="no window"):
        video_windows(video[:, :4], flow[:, :4], 3, 2)


def _small(past=2, flow=True):
    first = Pix2PixConfig(num_classes=4, ngf=8, n_blocks=1, ndf=8)
    return Vid2Vid(Vid2VidConfig(num_classes=4, past=past, flow=flow, ngf=8, n_blocks=1, ndf=8, first=first)).eval()


def _labels(b=2, t=6, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(0, 4, (b, t, size, size), generator=g), 4).permute(0, 1, 4, 2, 3).float()


@pytest.mark.parametrize("past", [0, 1, 2])
def test_vid2vid_is_causal(past):
    torch.manual_seed(0)
    model = _small(past)
    labels = _labels()
    changed = labels.clone()
    changed[:, 4:] = changed[:, 4:].roll(1, dims=2)                  # other labels from frame 4 on
    with torch.no_grad():
        a, b = model(labels), model(changed)
    assert torch.equal(a.frames[:, :4], b.frames[:, :4])            # frames 0..3 never see labels 4..
    assert not torch.allclose(a.frames[:, 4:], b.frames[:, 4:])
    assert a.frames.shape == (2, 6, 3, 16, 16) and a.flow.shape == (2, 6, 2, 16, 16)
    assert torch.equal(a.flow[:, 0], torch.zeros_like(a.flow[:, 0])) and torch.equal(a.mask[:, 0], torch.ones_like(a.mask[:, 0]))


def test_vid2vid_first_frame_from_image_generator_and_history_is_generated():
    torch.manual_seed(0)
    model = _small(2)
    labels = _labels()
    with torch.no_grad():
        out = model(labels)
        assert torch.allclose(out.frames[:, 0], model.first(labels[:, 0]))
        # frame 1 depends on the generated frame 0: start from another first frame and frame 1 changes
        other = model(labels, first_frame=torch.zeros_like(out.frames[:, 0]))
    assert not torch.allclose(out.frames[:, 1], other.frames[:, 1])
    assert not any(p.requires_grad for p in model.first.parameters())


def test_vid2vid_without_flow_branch_is_hallucination():
    torch.manual_seed(0)
    model = _small(2, flow=False)
    with torch.no_grad():
        out = model(_labels())
    assert torch.equal(out.frames, out.hallucinated) and not hasattr(model.step, "flow_head")


def test_truncated_bptt_cuts_gradient():
    """With tbptt = 4 the history is detached at frame 4: frame 5 has no gradient path to frame 0; without
    truncation it has one."""
    from dataclasses import replace

    labels = _labels(t=6)
    for tbptt, reaches in [(4, False), (0, True)]:
        torch.manual_seed(0)
        model = _small(2)
        model = Vid2Vid(replace(model.config, tbptt=tbptt)).train()
        first = torch.zeros(2, 3, 16, 16, requires_grad=True)
        out = model(labels, first_frame=first)
        (grad,) = torch.autograd.grad(out.frames[:, 5].sum(), first, allow_unused=True, retain_graph=True)
        assert (grad is not None and grad.abs().sum() > 0) == reaches, tbptt
        (grad3,) = torch.autograd.grad(out.frames[:, 3].sum(), first, allow_unused=True)
        assert grad3 is not None and grad3.abs().sum() > 0          # before the cut, frames still see frame 0


def test_losses():
    a = [[torch.randn(2, 4, 8, 8), torch.randn(2, 1, 4, 4)], [torch.randn(2, 4, 4, 4), torch.randn(2, 1, 2, 2)]]
    assert feature_matching(a, a) == 0
    b = [[x + 1 for x in scale] for scale in a]
    assert torch.isclose(feature_matching(a, b), torch.tensor(2.0))      # two scales x one inner layer x |1|
    f = torch.zeros(2, 2, 8, 8)
    assert flow_loss(f + 1, f) == 1
    video, flow, occ = translated_video()
    assert warp_loss(video[:, 0], video[:, 1], flow[:, 1], 1 - occ[:, 1]) < 1e-5


def test_blend_baseline():
    video, flow, occ = translated_video(t=4)
    assert torch.equal(blend_baseline(video, flow, occ, alpha=0.0), video)
    noisy = video + 0.1 * torch.randn_like(video)
    blended = blend_baseline(noisy, flow, occ, alpha=0.5)
    assert warp_error(blended, flow, occ) < warp_error(noisy, flow, occ)      # blending smooths the noise in time


def test_flicker_and_tof_and_per_frame():
    video, flow, occ = translated_video(t=6, size=32)
    bright = video.clone()
    bright[:, 1::2] += 0.1                                    # every other frame 0.1 brighter
    assert flicker(video, flow, occ) < 1e-4
    assert abs(flicker(bright, flow, occ) - 0.1) < 0.01
    assert warp_error_per_frame(bright, flow, occ).shape == (5,)
    assert tof(video, video) == 0
    frozen = video[:, :1].expand_as(video).contiguous()        # no motion at all vs ~2.2 px/frame
    assert tof(frozen, video) > 1.0


def test_ssim_and_segmentation_scores():
    x = torch.rand(2, 3, 32, 32)
    assert abs(ssim(x, x) - 1) < 1e-6 and ssim(x, torch.rand(2, 3, 32, 32)) < 0.2
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 2, 0]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 3]]
    assert pixel_accuracy(conf) == 6 / 8
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 3 / (4 + 3 - 3) = 3/4
    assert abs(mean_iou(conf) - (1 / 3 + 2 / 3 + 3 / 4) / 3) < 1e-12
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix(pred, target + 5, 3)


def test_flow_to_color_wheel():
    from genlab.viz.pictures import flow_to_color
    flow = torch.zeros(2, 1, 3)
    flow[0, 0, 1] = 2.0                  # pixel 1: right at full speed
    flow[1, 0, 2] = 1.0                  # pixel 2: down at half speed
    rgb = flow_to_color(flow, max_flow=2.0)
    assert rgb.shape == (3, 1, 3)
    assert torch.allclose(rgb[:, 0, 0], torch.ones(3))                       # no motion: white
    assert torch.allclose(rgb[:, 0, 1], torch.tensor([1.0, 0.0, 0.0]))       # right: red, saturated
    assert rgb[:, 0, 2].min() > 0.45 and rgb[:, 0, 2].max() == 1             # half speed: half saturated


def test_prepare_crops_what_views_and_g_input_see():
    from genlab.train import Critic, GANStepConfig, gan_state, make_gan_step

    seen = {}

    class G(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, batch):
            seen["g"] = batch.shape[1]
            return batch * self.w

    d = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(1))
    d(torch.zeros(2, 3 * 4))

    def view(x, batch):
        seen["view"] = (x.shape[1], batch.shape[1])
        return x

    state = gan_state(G(), {"D": d}, torch.optim.SGD(G().parameters(), 0.1), {"D": torch.optim.SGD(d.parameters(), 0.1)})
    step = make_gan_step(GANStepConfig(loss="lsgan"), critics=[Critic("D", view=view, loss="lsgan")],
                         g_input=lambda batch, n, device: batch, prepare=lambda s, real: real[:, :3])
    step(state, torch.randn(2, 7, 4))
    assert seen == {"g": 3, "view": (3, 3)}
