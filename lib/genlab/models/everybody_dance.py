"""Everybody Dance Now (Chan et al. 2019, ICCV), small-scale: stick figures -> the target's video.

* :class:`TemporalGenerator`: pix2pixHD-lite's global generator (genlab.models.pix2pix.GlobalGenerator) with Chan et
  al.'s temporal smoothing (Sec. 3.1): frame t is computed from the stick figure s_t *and the previously generated
  frame* x_{t-1}, concatenated on channels (in_channels = 3 + 3),

      x_t = G(s_t, x_{t-1}),        x_0 = G(s_0, 0)        (0: an all-zero image, i.e. mid-grey in [-1, 1])

  Training runs on *pairs* of consecutive frames (:meth:`TemporalGenerator.forward`): x_{t-1} = G(s_{t-1}, 0), then
  x_t = G(s_t, x_{t-1}) -- the second frame is conditioned on the *generated* first one (gradients flow through it),
  never on a real frame. :meth:`TemporalGenerator.generate` runs the same recursion over a whole video (eval mode, no
  gradient). With ``temporal=False`` it is the frame-by-frame baseline, pix2pixHD-lite on the stick figure alone
  (in_channels = 3: no previous-frame input at all), x_t = G(s_t).
* :class:`FaceGenerator`: the face GAN's residual generator (Sec. 3.2). On a square face crop, from the stick
  figure's crop s_F and the body generator's crop x_F,

      r = tanh(G_F(s_F, x_F)) in [-1, 1],        x_F' = clamp(x_F + r, -1, 1)

  and :meth:`FaceGenerator.enhance` pastes x_F' back into each frame's face box (pixels outside it are untouched).
  Its last convolution starts at zero, so an untrained face GAN is the identity (r = 0): training starts from the
  body generator's faces.

Shapes: stick figures and frames (B, 3, H, W) in [-1, 1], H and W divisible by 2**n_down; face crops (B, 3, c, c).
The discriminators are genlab.models.pix2pix.MultiscaleDiscriminator: on (s_t, x_t) (6 channels) for the framewise
model, on the pair (s_{t-1}, s_t, x_{t-1}, x_t) (12 channels, :func:`pair_channels`) for the temporal one (Chan et al.
Eq. 3, D_T), and on (s_F, x_F) (6 channels) for the face GAN.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.models.pix2pix import GlobalGenerator, Pix2PixConfig, ResidualBlock, conv_block, up_block, widths
from genlab.tensors import check_image


@dataclass(frozen=True)
class DanceConfig:
    """temporal: condition frame t on the generated frame t - 1 (Chan et al.'s temporal smoothing; False: the
    frame-by-frame baseline, in_channels 3); ngf / n_down / n_blocks: the global generator (pix2pixHD-lite G1);
    ndf / d_layers / num_scales: the multi-scale PatchGAN; size: the frames' side in pixels (square)."""

    temporal: bool = True
    ngf: int = 16
    n_down: int = 2
    n_blocks: int = 3
    ndf: int = 16
    d_layers: int = 3
    num_scales: int = 2
    size: int = 64

    def generator(self) -> Pix2PixConfig:
        return Pix2PixConfig(num_classes=3, ngf=self.ngf, n_down=self.n_down, n_blocks=self.n_blocks, ndf=self.ndf,
                             d_layers=self.d_layers, num_scales=self.num_scales)


def pair_channels() -> int:
    """Channels of the temporal (pair) discriminator's input: s_{t-1}, s_t, x_{t-1}, x_t stacked, 4 x 3 = 12."""
    return 12


class TemporalGenerator(nn.Module):
    """x_t = G(s_t, x_{t-1}) (``temporal``) or x_t = G(s_t) (framewise); see the module doc."""

    def __init__(self, config: DanceConfig | None = None):
        super().__init__()
        self.config = c = config or DanceConfig()
        self.in_channels = 6 if c.temporal else 3
        self.net = GlobalGenerator(c.generator(), in_channels=self.in_channels)

    def step(self, stick: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """One frame: stick (B, 3, H, W) and the previous generated frame (B, 3, H, W) (None: the zero image; ignored
        by the framewise model) -> (B, 3, H, W) in [-1, 1]."""
        check_image(stick, "TemporalGenerator stick figure", channels=3)
        if not self.config.temporal:
            return self.net(stick)
        previous = torch.zeros_like(stick) if previous is None else previous
        return self.net(torch.cat([stick, previous], 1))

    def forward(self, sticks: torch.Tensor) -> torch.Tensor:
        """The training forward on pairs: sticks (B, 2, 3, H, W) = (s_{t-1}, s_t) -> (B, 2, 3, H, W) =
        (x_{t-1}, x_t) with x_{t-1} = G(s_{t-1}, 0) and x_t = G(s_t, x_{t-1}) (framewise: G(s_{t-1}), G(s_t))."""
        if sticks.dim() != 5 or sticks.shape[1] != 2 or sticks.shape[2] != 3:
            raise ValueError(f"TemporalGenerator.forward expects stick-figure pairs (B, 2, 3, H, W), got "
                             f"{tuple(sticks.shape)} (use generate() for a whole video)")
        first = self.step(sticks[:, 0])
        return torch.stack([first, self.step(sticks[:, 1], first)], 1)

    @torch.no_grad()
    def generate(self, sticks: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """A whole video: sticks (T, 3, H, W) in [-1, 1] -> frames (T, 3, H, W) in [-1, 1], in eval mode, without
        gradient, on the generator's device (returned on the CPU). Temporal: autoregressive, x_0 from the zero image
        and x_t from x_{t-1}; framewise: ``batch_size`` frames at a time."""
        check_image(sticks, "TemporalGenerator.generate sticks (T, 3, H, W)", channels=3)
        device = next(self.parameters()).device
        was = self.training
        self.eval()
        try:
            out = []
            if self.config.temporal:
                prev = None
                for t in range(len(sticks)):
                    prev = self.step(sticks[t:t + 1].to(device), prev)
                    out.append(prev.cpu())
            else:
                for i in range(0, len(sticks), batch_size):
                    out.append(self.step(sticks[i:i + batch_size].to(device)).cpu())
            return torch.cat(out)
        finally:
            self.train(was)


@dataclass(frozen=True)
class FaceConfig:
    """crop: the face box's side in pixels (genlab.worlds.dancers.face_boxes; divisible by 2**n_down); ngf / n_down /
    n_blocks: the residual generator; ndf / d_layers / num_scales: its conditional PatchGAN on (s_F, x_F);
    size: the frames' side the crops come from."""

    crop: int = 16
    ngf: int = 16
    n_down: int = 1
    n_blocks: int = 2
    ndf: int = 16
    d_layers: int = 2
    num_scales: int = 1
    size: int = 64


class FaceGenerator(nn.Module):
    """(s_F, x_F) -> x_F' = clamp(x_F + tanh(G_F(s_F, x_F)), -1, 1), crops (B, 3, c, c) in [-1, 1]."""

    def __init__(self, config: FaceConfig | None = None):
        super().__init__()
        self.config = c = config or FaceConfig()
        w = widths(c.ngf, c.n_down)
        layers: list[nn.Module] = [conv_block(6, w[0], 7)]
        layers += [conv_block(w[i], w[i + 1], 3, 2) for i in range(c.n_down)]
        layers += [ResidualBlock(w[-1]) for _ in range(c.n_blocks)]
        layers += [up_block(w[i + 1], w[i]) for i in reversed(range(c.n_down))]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(w[0], 3, 7))
        nn.init.zeros_(self.head[1].weight)                 # r = 0 at the start: the identity on the body's faces
        nn.init.zeros_(self.head[1].bias)

    def residual(self, stick_crop: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        """r = tanh(G_F(s_F, x_F)): (B, 3, c, c) in [-1, 1]."""
        return torch.tanh(self.head(self.body(torch.cat([stick_crop, crop], 1))))

    def forward(self, stick_crop: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        check_image(stick_crop, "FaceGenerator stick crop", channels=3)
        check_image(crop, "FaceGenerator generated crop", channels=3)
        return (crop + self.residual(stick_crop, crop)).clamp(-1, 1)

    @torch.no_grad()
    def enhance(self, frames: torch.Tensor, sticks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Paste the refined faces back: frames, sticks (T, 3, H, W) in [-1, 1], boxes (T, 4) rows (r0, c0, r1, c1)
        of c x c squares -> a new (T, 3, H, W) equal to ``frames`` outside each frame's box (eval mode, no grad)."""
        if len(boxes) != len(frames) or len(sticks) != len(frames):
            raise ValueError(f"need one box and one stick figure per frame: {len(frames)} frames, {len(sticks)} "
                             f"stick figures, {len(boxes)} boxes")
        out = frames.clone()
        if not len(frames):
            return out
        device = next(self.parameters()).device
        rows = boxes.tolist()
        crops = torch.stack([frames[t, :, r0:r1, c0:c1] for t, (r0, c0, r1, c1) in enumerate(rows)])
        s_crops = torch.stack([sticks[t, :, r0:r1, c0:c1] for t, (r0, c0, r1, c1) in enumerate(rows)])
        was = self.training
        self.eval()
        try:
            faces = torch.cat([self(s_crops[i:i + 256].to(device), crops[i:i + 256].to(device)).cpu()
                               for i in range(0, len(crops), 256)])
        finally:
            self.train(was)
        for t, (r0, c0, r1, c1) in enumerate(rows):
            out[t, :, r0:r1, c0:c1] = faces[t].to(out.dtype)
        return out


__all__ = ["DanceConfig", "FaceConfig", "TemporalGenerator", "FaceGenerator", "pair_channels"]
