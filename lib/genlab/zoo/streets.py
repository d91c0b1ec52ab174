"""Zoo recipes of notebook 08: label videos -> photo videos on the streets world (64x64, small-scale).

* ``street_segmenter``: the U-Net that reads class labels back from frames (semantic fidelity: pixel accuracy and mIoU
  of its prediction on generated frames against the labels the generator was given, as pix2pixHD and vid2vid report
  with a pretrained segmentation net on Cityscapes).
* ``pix2pixhd_streets``: pix2pixHD-lite's global generator, one frame at a time, against the multi-scale
  conditional PatchGAN D_I(s, x), LSGAN + feature matching (lambda_FM = 10, pix2pixHD's value), on clips of 3 frames
  (every frame scored on its own). The VGG perceptual
  loss of pix2pixHD and vid2vid is left out (its weights are a download); the paper's "w/o VGG" setting.
* ``vid2vid_streets``: vid2vid-lite, L = 2, its first frame from the shipped ``pix2pixhd_streets`` (frozen), against
  D_I (every frame with its labels) and D_V at two temporal scales (windows of K = 3 frames at strides 1 and 2, with
  the real video's flow between them), LSGAN, feature matching on D_I, and the flow terms of L_W with lambda_W = 10
  (vid2vid Sec. 3.2 and the official ``lambda_F`` default): ||w~_t - w_t||_1 against the world's exact flow plus the
  warping loss ||w~_t(x_{t-1}) - x_t||_1 on visible pixels. Clip length grown 5 -> 7 -> 9 frames over thirds of the
  run (vid2vid doubles it every few epochs), back-propagation truncated every 4 frames.
* Ablations with the same budget: ``vid2vid_streets_L0`` / ``_L1`` (L past frames), ``_nodv`` (no D_V),
  ``_noflow`` (hallucination only, no flow branch or flow terms).

All GANs: Adam lr 2e-4, betas (0.5, 0.999) (pix2pixHD's), batch 4 clips, an EMA of G (what is shipped). Real clips:
the first N_TRAIN train-split clips of 9 frames (drawn in random order); evaluation on the first N_TEST test-split
clips of EVAL_FRAMES frames. Batches are packed (B, T, 6 + K, H, W): frames (3) | flow (2) | occlusion or mask (1) |
one-hot labels (K), so that one :func:`genlab.train.make_gan_step` drives every configuration.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.losses import feature_matching, flow_loss, warp_loss
from genlab.metrics.image_quality import psnr, ssim
from genlab.metrics.segmentation import confusion_matrix, mean_iou, pixel_accuracy, segment
from genlab.metrics.temporal import flicker, warp_error
from genlab.models.pix2pix import GlobalGenerator, MultiscaleDiscriminator, Pix2PixConfig
from genlab.models.segmenter import Segmenter, SegmenterConfig
from genlab.models.vid2vid import Vid2Vid, Vid2VidConfig, VideoDiscriminator, video_windows
from genlab.nn.inference import batched
from genlab.train import (Critic, GANStepConfig, StepBatches, TrainState, fit, gan_state, make_ema, make_gan_step,
                          warmup_cosine, wrap_ddp)
from genlab.worlds.streets import NUM_CLASSES, StreetClips, streets
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob, export_inner_generator
from genlab.zoo.shipping import load_pretrained

SIZE, TRAIN_FRAMES, EVAL_FRAMES, N_TRAIN, N_TEST = (64, 64), 9, 12, 192, 16
LAMBDA_FM, LAMBDA_W = 10.0, 10.0
DATA = (f"genlab.worlds.streets {SIZE[0]}x{SIZE[1]}: the first {N_TRAIN} train-split clips of {TRAIN_FRAMES} frames "
        f"(random order); metrics on the first {N_TEST} test-split clips of {EVAL_FRAMES} frames")


# ---------------------------------------------------------------------------------------------- data and packing
def pack(clips: StreetClips) -> torch.Tensor:
    """(B, T, 6 + K, H, W): frames | flow | occlusion | one-hot labels."""
    return torch.cat([clips.frames, clips.flow, clips.occlusion, clips.one_hot()], 2)


def frames_of(x: torch.Tensor) -> torch.Tensor:
    return x[:, :, :3]


def labels_of(x: torch.Tensor) -> torch.Tensor:
    return x[:, :, 6:]


def train_clips(n: int = N_TRAIN, frames: int = TRAIN_FRAMES, seed: int = 0) -> StreetClips:
    return streets("train", n, frames=frames, size=SIZE, seed=seed)


def test_clips(n: int = N_TEST, frames: int = EVAL_FRAMES, seed: int = 0) -> StreetClips:
    """The first ``n`` test-split clips: what the metrics and notebook 08 use."""
    return streets("test", n, frames=frames, size=SIZE, seed=seed)


test_clips.__test__ = False  # a data helper, not a pytest test


class PerFrame(nn.Module):
    """Packed adapter of an image generator: every frame from its own labels, flow 0, mask 1."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.inner = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lab = labels_of(x)
        b, t = lab.shape[:2]
        frames = self.inner(lab.flatten(0, 1)).unflatten(0, (b, t))
        return torch.cat([frames, torch.zeros_like(frames[:, :, :2]), torch.ones_like(frames[:, :, :1]), lab], 2)


class Sequential(nn.Module):
    """Packed adapter of :class:`Vid2Vid`: frames | estimated flow | mask | labels."""

    def __init__(self, model: Vid2Vid):
        super().__init__()
        self.inner = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lab = labels_of(x)
        r = self.inner(lab)
        return torch.cat([r.frames, r.flow, r.mask, lab], 2)


# ---------------------------------------------------------------------------------------------- segmenter
@dataclass(frozen=True)
class SegmenterTrain:
    """``steps`` of AdamW(lr) with warm-up + cosine decay on ``batch_size`` random frames of the training clips."""

    steps: int
    batch_size: int
    lr: float = 3e-3
    ema_decay: float = 0.99


def segmenter_config(profile: str) -> RecipeConfig:
    return RecipeConfig(SegmenterConfig(num_classes=NUM_CLASSES, width=8 if profile == "ci" else 16),
                        SegmenterTrain(steps={"ci": 4, "cpu": 1200, "gpu": 6000}[profile],
                                       batch_size=8 if profile == "ci" else 32))


def train_segmenter(model: nn.Module, config: RecipeConfig, job: TrainJob) -> TrainState:
    t = config.train
    clips = train_clips(seed=job.seed)
    images, labels = clips.frames.flatten(0, 1), clips.labels.flatten(0, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=1e-4)
    # wrap_ddp: under torchrun the ranks average their gradients (a no-op in one process)
    state = TrainState(model=wrap_ddp(model), optimizer=opt, ema=make_ema(model, t.ema_decay))

    def step_fn(state: TrainState, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        for group in opt.param_groups:
            group["lr"] = t.lr * warmup_cosine(state.step, t.steps, warmup=0.03)
        loss = F.cross_entropy(state.model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"ce": loss}

    return fit(state, step_fn, StepBatches(images, labels, batch_size=t.batch_size, seed=job.seed), t.steps,
               device=job.device, checkpoint=job.checkpoint, checkpoint_every=max(t.steps // 10, 1),
               resume=job.resume, meta=job.meta(config), progress=job.progress, desc="street_segmenter")


def segmentation_scores(net: nn.Module, frames: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """frames (..., 3, H, W) in [-1, 1], labels (..., H, W) -> pixel accuracy and mIoU of net's prediction."""
    pred = segment(net, frames.reshape(-1, *frames.shape[-3:]))
    conf = confusion_matrix(pred, labels.reshape(-1, *labels.shape[-2:]), NUM_CLASSES)
    return {"pixel_accuracy": pixel_accuracy(conf), "miou": mean_iou(conf)}


def evaluate_segmenter(model: nn.Module, device: torch.device) -> dict[str, float]:
    c = test_clips()
    s = segmentation_scores(model.to(device), c.frames, c.labels)
    return {"test_pixel_accuracy": s["pixel_accuracy"], "test_miou": s["miou"]}


SEGMENTER = Recipe(
    name="street_segmenter",
    summary="U-Net segmenting streets frames into the world's classes (semantic fidelity of synthesized frames)",
    build=lambda cfg: Segmenter(SegmenterConfig(**cfg)), config=segmenter_config, train=train_segmenter,
    evaluate=evaluate_segmenter, metrics={"test_pixel_accuracy": 0.003, "test_miou": 0.005}, data=DATA,
)


# ---------------------------------------------------------------------------------------------- GANs
@dataclass(frozen=True)
class StreetsGANTrain:
    """``steps`` of Adam(lr, betas) for G and every critic on ``batch_size`` clips; ``lengths``: the clip lengths of
    equal shares of the run (progressive); ``video_critic``: D_V at ``temporal_scales`` strides; ``ema_decay``."""

    steps: int
    batch_size: int = 4
    lengths: tuple[int, ...] = (5, 7, 9)
    video_critic: bool = True
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.99

    def to_dict(self) -> dict:
        return {**asdict(self), "lengths": list(self.lengths), "betas": list(self.betas)}


def _steps(profile: str) -> int:
    return {"ci": 2, "cpu": 700, "gpu": 20000}[profile]


def pix2pix_config(profile: str) -> RecipeConfig:
    ngf = 8 if profile == "ci" else 16
    return RecipeConfig(Pix2PixConfig(num_classes=NUM_CLASSES, ngf=ngf, n_blocks=3, ndf=ngf),
                        StreetsGANTrain(steps=_steps(profile), lengths=(3,), video_critic=False))


def vid2vid_config(profile: str, *, past: int = 2, flow: bool = True, video_critic: bool = True) -> RecipeConfig:
    first = pix2pix_config("cpu").model        # the shipped per-frame generator makes frame 0 in every profile
    ngf = pix2pix_config(profile).model.ngf
    return RecipeConfig(Vid2VidConfig(num_classes=NUM_CLASSES, past=past, flow=flow, ngf=ngf, n_blocks=3, ndf=ngf,
                                      first=first),
                        StreetsGANTrain(steps=_steps(profile), video_critic=video_critic,
                                        lengths=(5,) if profile == "ci" else (5, 7, 9)))


def build_pix2pix(cfg: dict) -> nn.Module:
    return GlobalGenerator(Pix2PixConfig(**cfg))


def build_vid2vid(cfg: dict) -> nn.Module:
    cfg = dict(cfg)
    first = cfg.pop("first")
    return Vid2Vid(Vid2VidConfig(**cfg, first=Pix2PixConfig(**first) if isinstance(first, dict) else first))


def image_view(x: torch.Tensor, batch) -> torch.Tensor:
    """D_I's view: every frame with its labels, (B T, 3 + K, H, W)."""
    return torch.cat([frames_of(x), labels_of(x)], 2).flatten(0, 1)


def video_view(stride: int, frames: int):
    """D_V's view at a temporal stride: windows of ``frames`` frames of x with the *real* flow from the batch."""
    return lambda x, batch: video_windows(frames_of(x), batch[:, :, 3:5], frames, stride)


def _train_gan(name: str, G: nn.Module, config: RecipeConfig, job: TrainJob) -> TrainState:
    t, m = config.train, config.model
    sequential = isinstance(G, Vid2Vid)
    if sequential:                                        # the first frame: the shipped image generator, frozen
        G.first.load_state_dict(load_pretrained("pix2pixhd_streets").model.state_dict())
        G.first.requires_grad_(False)
    packed_G = (Sequential if sequential else PerFrame)(G).to(job.device)
    nets = {"D_I": MultiscaleDiscriminator(3 + NUM_CLASSES, m.ndf, m.d_layers, m.num_scales)}
    critics = [Critic("D_I", view=image_view, loss="lsgan")]
    if sequential and t.video_critic:
        for s in range(1, m.temporal_scales + 1):
            nets[f"D_V{s}"] = VideoDiscriminator(m.d_frames, m.ndf, m.d_layers, m.num_scales)
            critics.append(Critic(f"D_V{s}", view=video_view(s, m.d_frames), loss="lsgan"))
    nets = {k: v.to(job.device) for k, v in nets.items()}
    params = [p for p in packed_G.parameters() if p.requires_grad]
    opts = {k: torch.optim.Adam(v.parameters(), t.lr, betas=t.betas) for k, v in nets.items()}
    state = gan_state(packed_G, nets, torch.optim.Adam(params, t.lr, betas=t.betas), opts, ema_decay=t.ema_decay)
    uses_flow = sequential and m.flow and m.past > 0

    def g_extra(fake: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        d_i = state.model["D_I"]
        terms = {"feature_matching": LAMBDA_FM * feature_matching(d_i.features(image_view(batch, batch)),
                                                                  d_i.features(image_view(fake, batch)))}
        if uses_flow:                                     # L_W: flow vs the exact flow; warping the real frames
            est, ref = fake[:, 1:, 3:5].flatten(0, 1), batch[:, 1:, 3:5].flatten(0, 1)
            visible = 1 - batch[:, 1:, 5:6].flatten(0, 1)
            real = frames_of(batch)
            terms["flow"] = LAMBDA_W * flow_loss(est, ref)
            terms["warp"] = LAMBDA_W * warp_loss(real[:, :-1].flatten(0, 1), real[:, 1:].flatten(0, 1), est, visible)
        return terms

    def prepare(state: TrainState, real: torch.Tensor) -> torch.Tensor:   # progressive clip length (exact resume)
        stage = min(state.step * len(t.lengths) // t.steps, len(t.lengths) - 1)
        return real[:, :t.lengths[stage]]

    data = pack(train_clips(frames=max(t.lengths), seed=job.seed))
    step = make_gan_step(GANStepConfig(loss="lsgan"), critics=critics, g_input=lambda batch, n, device: batch,
                         g_extra=g_extra, prepare=prepare)
    batches = StepBatches(data, batch_size=t.batch_size, seed=job.seed)
    return fit(state, step, lambda i: batches(i)[0], t.steps, device=job.device,
               checkpoint=job.checkpoint, checkpoint_every=max(t.steps // 10, 1), resume=job.resume,
               meta=job.meta(config), progress=job.progress, desc=name)


def generate_video(G: nn.Module, labels: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """labels (B, T, H, W) ids -> frames (B, T, 3, H, W) in [-1, 1] from an image generator (frame by frame) or a
    :class:`Vid2Vid` (sequentially), in eval mode, no gradient."""
    onehot = F.one_hot(labels.long(), NUM_CLASSES).permute(0, 1, 4, 2, 3).float()
    if isinstance(G, Vid2Vid):
        return batched(lambda s: G(s).frames, onehot, batch_size=batch_size, module=G)
    b, t = onehot.shape[:2]
    return batched(G, onehot.flatten(0, 1), batch_size=batch_size * t, module=G).unflatten(0, (b, t))


def video_scores(fake: torch.Tensor, clips: StreetClips, segmenter: nn.Module | None = None) -> dict[str, float]:
    """fake (B, T, 3, H, W) in [-1, 1] against the clips it was made from: psnr, ssim (per frame, [0, 1] scale),
    warp_error and flicker (with the clips' exact flow and occlusion), and with a segmenter seg_accuracy, seg_miou."""
    f01, r01 = (fake.float() + 1) / 2, (clips.frames + 1) / 2
    out = {"psnr": psnr(f01.flatten(0, 1), r01.flatten(0, 1)), "ssim": ssim(f01.flatten(0, 1), r01.flatten(0, 1)),
           "warp_error": warp_error(f01, clips.flow, clips.occlusion),
           "flicker": flicker(f01, clips.flow, clips.occlusion)}
    if segmenter is not None:
        s = segmentation_scores(segmenter, fake, clips.labels)
        out.update(seg_accuracy=s["pixel_accuracy"], seg_miou=s["miou"])
    return out


def evaluate_gan(G: nn.Module, device: torch.device) -> dict[str, float]:
    clips = test_clips()
    fake = generate_video(G.to(device), clips.labels)
    seg = load_pretrained("street_segmenter").model.to(device)
    return video_scores(fake, clips, seg)


GAN_METRICS = {"psnr": 0.05, "ssim": 0.005, "warp_error": 0.002, "flicker": 0.002, "seg_accuracy": 0.005,
               "seg_miou": 0.01}


PIX2PIXHD = Recipe(
    name="pix2pixhd_streets",
    summary="pix2pixHD-lite global generator, frame by frame, vs a 2-scale conditional PatchGAN (LSGAN + FM), streets",
    build=build_pix2pix, config=pix2pix_config, train=lambda m, c, j: _train_gan("pix2pixhd_streets", m, c, j),
    evaluate=evaluate_gan, metrics=GAN_METRICS, data=DATA, export=export_inner_generator,
)


def _vid2vid(name: str, summary: str, **kw) -> Recipe:
    return Recipe(name=name, summary=summary, build=build_vid2vid, config=lambda p: vid2vid_config(p, **kw),
                  train=lambda m, c, j: _train_gan(name, m, c, j), evaluate=evaluate_gan, metrics=GAN_METRICS,
                  data=DATA, export=export_inner_generator)


VID2VID = _vid2vid("vid2vid_streets", "vid2vid-lite, L = 2, flow + mask, D_I + D_V at 2 temporal scales, streets")
VID2VID_L0 = _vid2vid("vid2vid_streets_L0", "vid2vid-lite ablation: L = 0 (no past frames), D_I + D_V", past=0)
VID2VID_L1 = _vid2vid("vid2vid_streets_L1", "vid2vid-lite ablation: L = 1 past frame", past=1)
VID2VID_NODV = _vid2vid("vid2vid_streets_nodv", "vid2vid-lite ablation: without D_V (D_I only)", video_critic=False)
VID2VID_NOFLOW = _vid2vid("vid2vid_streets_noflow", "vid2vid-lite ablation: no flow branch (hallucination only)",
                          flow=False)

