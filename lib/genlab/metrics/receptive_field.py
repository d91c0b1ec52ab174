"""Receptive fields of autoregressive image models, measured with autograd: which input pixels influence the
prediction for one pixel, which of them it should see (its causal context), and what is missing or leaking.

For an autoregressive model p(x) = prod_i p(x_i | x_<i) in raster order, the prediction at pixel q = (r, c) may use
exactly the pixels before q (the rows above, and the pixels to the left in row r): the *causal* context. We take the
gradient of q's output logits with respect to the input image; input pixels with a non-zero gradient are *seen*.

* blind pixels = causal but not seen -- PixelCNN's blind spot (van den Oord et al. 2016b, Fig. 1), Row LSTM's
  triangular context (2016a, Fig. 4); on a large image a network of finite depth also misses far-away context, so
  :attr:`ReceptiveField.blind_spot` keeps only the blind pixels inside the *reach* (the bounding box of the seen
  pixels): the holes, which deeper layers cannot fill;
* leaks = seen but not causal (including q itself) -- a bug: the model would be cheating during training.

Model contract (genlab.models.pixelcnn, genlab.models.pixelrnn): ``model(x, **model_kwargs) -> logits (B, 256, C, H, W)``
for a float input x (B, C, H, W) in [0, 1] (pixel value / 255). Gradients are taken at a few random images in eval
mode; a pixel counts as seen if its gradient is non-zero for any of them (a single image could hide a connection behind
a dead ReLU). For colour models the output is colour channel ``out_channel`` of q (default R, which must not see q at
all); the ordering inside a pixel is checked by the leak tests of each model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.nn.eval_mode import evaluating


@dataclass
class ReceptiveField:
    """The measured receptive field of the output at ``pixel`` (row, col) of an (H, W) image.

    seen:   (H, W) bool -- input pixels with a non-zero gradient on the output at ``pixel``
    causal: (H, W) bool -- pixels strictly before ``pixel`` in raster order (what it may use)
    """

    pixel: tuple[int, int]
    image_size: tuple[int, int]
    seen: torch.Tensor
    causal: torch.Tensor

    @property
    def blind(self) -> torch.Tensor:
        """(H, W) bool: causal context the model cannot see."""
        return self.causal & ~self.seen

    @property
    def leak(self) -> torch.Tensor:
        """(H, W) bool: pixels the model sees but must not (``pixel`` itself and everything after it)."""
        return self.seen & ~self.causal

    @property
    def reach(self) -> torch.Tensor:
        """(H, W) bool: the bounding box of the seen pixels (how far the network's layers reach, up, left, right)."""
        reach = torch.zeros_like(self.seen)
        if self.seen.any():
            rows, cols = self.seen.nonzero(as_tuple=True)
            reach[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        return reach

    @property
    def blind_spot(self) -> torch.Tensor:
        """(H, W) bool: blind pixels *inside* the reach -- holes in the receptive field (PixelCNN's blind spot), as
        opposed to context simply too far away for a network of this depth."""
        return self.blind & self.reach

    @property
    def blind_pixels(self) -> int:
        """Causal context not seen, near or far."""
        return int(self.blind.sum())

    @property
    def blind_spot_pixels(self) -> int:
        """Blind pixels inside the reach (see :attr:`blind_spot`)."""
        return int(self.blind_spot.sum())

    @property
    def leaks(self) -> int:
        return int(self.leak.sum())

    @property
    def n_causal(self) -> int:
        return int(self.causal.sum())

    @property
    def n_seen(self) -> int:
        return int(self.seen.sum())


def causal_context(image_size: tuple[int, int], pixel: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool: True at the pixels strictly before ``pixel`` in raster order (rows above, then left in its row)."""
    hh, ww = image_size
    r, c = pixel
    order = torch.arange(hh * ww).view(hh, ww)
    return order < r * ww + c


def receptive_field(model: nn.Module, image_size: int | tuple[int, int], pixel: tuple[int, int], channels: int = 1,
                    *, out_channel: int = 0, n_probe: int = 4, seed: int = 0,
                    model_kwargs: dict | None = None) -> ReceptiveField:
    """Measure which input pixels influence ``model``'s logits at ``pixel`` (see the module docstring).

    image_size: H or (H, W); pixel: (row, col); channels: the model's input channels C.
    out_channel: which colour channel's logits at ``pixel`` to differentiate; n_probe: random images (seeded by
    ``seed``) whose gradients are combined; model_kwargs: extra arguments, e.g. ``{"y": torch.tensor([3] * n_probe)}``
    for a class-conditional model.
    """
    hh, ww = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    r, c = pixel
    if not (0 <= r < hh and 0 <= c < ww):
        raise ValueError(f"pixel {pixel} lies outside the {hh}x{ww} image")
    if not 0 <= out_channel < channels:
        raise ValueError(f"out_channel must lie in [0, {channels}), got {out_channel}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_probe, channels, hh, ww, generator=g).to(device).requires_grad_(True)
    with evaluating(model):
        logits = model(x, **(model_kwargs or {}))
    if logits.dim() != 5 or logits.shape[2:] != (channels, hh, ww):
        raise ValueError(f"the model must return logits (B, 256, C, H, W) = (B, 256, {channels}, {hh}, {ww}), got "
                         f"{tuple(logits.shape)}")
    out = logits[:, :, out_channel, r, c]                                   # (n_probe, 256)
    w = torch.randn(out.shape, generator=g).to(device)                      # random projection: no cancellations
    (grad,) = torch.autograd.grad((out * w).sum(), x)
    seen = (grad.abs().amax(dim=(0, 1)) > 0).cpu()                          # (H, W)
    return ReceptiveField(pixel=(r, c), image_size=(hh, ww), seen=seen, causal=causal_context((hh, ww), (r, c)))


#: colours of plot_receptive_field (RGB in [0, 1])
COLOURS = {"future": (0.93, 0.93, 0.93), "seen": (0.30, 0.55, 0.85), "blind": (0.90, 0.25, 0.20),
           "out of reach": (0.98, 0.80, 0.76), "current": (1.00, 0.80, 0.10), "leak": (0.70, 0.10, 0.70)}


def receptive_field_image(rf: ReceptiveField) -> torch.Tensor:
    """(H, W, 3) float picture: seen context blue, blind spot red (context inside the reach but not seen), context
    out of reach pale red, current pixel yellow, future grey, leaks purple."""
    img = torch.empty(*rf.image_size, 3)
    img[:] = torch.tensor(COLOURS["future"])
    img[rf.causal & rf.seen] = torch.tensor(COLOURS["seen"])
    img[rf.blind & ~rf.reach] = torch.tensor(COLOURS["out of reach"])
    img[rf.blind_spot] = torch.tensor(COLOURS["blind"])
    img[rf.pixel] = torch.tensor(COLOURS["current"])
    img[rf.leak] = torch.tensor(COLOURS["leak"])
    return img


def plot_receptive_field(rf: ReceptiveField, ax=None, *, title: str | None = None, legend: bool = True):
    """Draw ``rf`` like the lecture slide: one square per pixel, seen / blind spot / out of reach / current / future
    (/ leak) coloured, with the counts in the title. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    hh, ww = rf.image_size
    ax.imshow(receptive_field_image(rf).numpy(), interpolation="nearest")
    if max(hh, ww) <= 32:                                                   # grid lines between pixels
        ax.set_xticks([x - 0.5 for x in range(1, ww)], minor=True)
        ax.set_yticks([y - 0.5 for y in range(1, hh)], minor=True)
        ax.grid(which="minor", color="white", linewidth=0.8 if max(hh, ww) <= 8 else 0.3)
        ax.tick_params(which="minor", length=0)
    ax.set_xticks([])
    ax.set_yticks([])
    head = f"{title}\n" if title else ""
    far = rf.blind_pixels - rf.blind_spot_pixels
    ax.set_title(f"{head}pixel {rf.pixel}: blind {rf.blind_spot_pixels}" + (f" (+{far} out of reach)" if far else "")
                 + f", leaks {rf.leaks}", fontsize=9)
    if legend:
        names = ["seen", "blind", "out of reach", "current", "future"] + (["leak"] if rf.leaks else [])
        ax.legend(handles=[Patch(color=COLOURS[n], label=n) for n in names], loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return ax
