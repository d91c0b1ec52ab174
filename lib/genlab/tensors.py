"""The course's tensor conventions, checked in one place (DESIGN.md, "Rules of the house").

* images: (B, C, H, W), float; value range stated by each dataset ([0, 1] for data and metrics, [-1, 1] for tanh
  generators);
* videos: (B, T, C, H, W) -- time is the second axis everywhere;
* latents: (B, z_dim) float.

:func:`to_unit_range` maps any stated value range to [0, 1] and :func:`image_grid` tiles a batch into one picture
tensor (pure torch): the training loop's monitors use them without importing the plotting layer (genlab.viz).

Every model checks its inputs with these functions instead of borrowing a checker from a sibling model, so an error
message always names the expected layout and how to get there.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _got(x) -> str:
    return f"shape {tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__


def check_latent(z: torch.Tensor, z_dim: int, model: str) -> None:
    """Raise a ValueError naming the expected shape unless ``z`` is a float tensor (B, z_dim)."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != z_dim or not z.is_floating_point():
        raise ValueError(f"{model} expects a float latent z of shape (B, {z_dim}), got {_got(z)} "
                         f"(draw it with torch.randn(B, {z_dim}))")


def check_image(x: torch.Tensor, what: str, *, channels: int | None = None) -> None:
    """Raise a ValueError unless ``x`` is a float image batch (B, C, H, W) (with C = ``channels`` if given)."""
    c = "C" if channels is None else str(channels)
    if (not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point()
            or (channels is not None and x.shape[1] != channels)):
        hint = " (a video is (B, T, C, H, W): fold time into the batch first)" if isinstance(x, torch.Tensor) \
            and x.dim() == 5 else ""
        raise ValueError(f"{what} expects float images of shape (B, {c}, H, W), got {_got(x)}{hint}")


def check_video(x: torch.Tensor, what: str, *, channels: int | None = None, frames: int | None = None) -> None:
    """Raise a ValueError unless ``x`` is a float video batch (B, T, C, H, W) (with the given C and T, if any)."""
    c = "C" if channels is None else str(channels)
    t = "T" if frames is None else str(frames)
    if (not isinstance(x, torch.Tensor) or x.dim() != 5 or not x.is_floating_point()
            or (channels is not None and x.shape[2] != channels) or (frames is not None and x.shape[1] != frames)):
        hint = " (an image batch is (B, C, H, W): add the time axis with x[:, None])" if isinstance(x, torch.Tensor) \
            and x.dim() == 4 else ""
        raise ValueError(f"{what} expects float videos of shape (B, {t}, {c}, H, W), got {_got(x)}{hint}")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (tanh outputs) -> [0, 1], clamped: x' = (clamp(x, -1, 1) + 1) / 2."""
    return (x.clamp(-1, 1) + 1) / 2


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] (data) -> [-1, 1] (what tanh generators and their discriminators see): x' = 2 x - 1."""
    return x * 2 - 1


def fold_time(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, T, ...) -> ((B*T, ...), T): run an image network on every frame; undo with :func:`unfold_time`."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), x.shape[1]


def unfold_time(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B*T, ...) -> (B, T, ...), the inverse of :func:`fold_time`."""
    return x.reshape(x.shape[0] // frames, frames, *x.shape[1:])


# -------------------------------------------------------------------------------------- pictures as tensors
_TOLERANCE = 0.01  # values this far (as a fraction of the range) outside value_range are clamped, not rejected


def to_unit_range(images: torch.Tensor, value_range: tuple[float, float] | None) -> torch.Tensor:
    """Map values to [0, 1] float32 on the CPU: (x - lo) / (hi - lo), clamped; uint8 is x / 255 (range ignored)."""
    x = images.detach().cpu()
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    x = x.float()
    if torch.isnan(x).any() or torch.isinf(x).any():
        raise ValueError("images contain NaN or inf: check the model output before plotting it")
    if value_range is None:  # stretch this batch's min..max to black..white
        lo, hi = x.min().item(), x.max().item()
        hi = hi if hi > lo else lo + 1.0
    else:
        if len(value_range) != 2 or not float(value_range[0]) < float(value_range[1]):
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
        lo, hi = float(value_range[0]), float(value_range[1])
        tol = _TOLERANCE * (hi - lo)
        vmin, vmax = x.min().item(), x.max().item()
        if vmin < lo - tol or vmax > hi + tol:
            raise ValueError(f"image values span [{vmin:.3g}, {vmax:.3g}], outside value_range=({lo:g}, {hi:g}): pass "
                             f"the range your data uses (e.g. value_range=(-1, 1) for tanh outputs), value_range=None "
                             f"to stretch min..max, or clamp the images first")
    return ((x - lo) / (hi - lo)).clamp_(0.0, 1.0)


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2,
               value_range: tuple[float, float] | None = (0.0, 1.0), pad_value: float = 1.0) -> torch.Tensor:
    """Tile a batch into one RGB picture, row by row (``nrow`` images per row), pure torch.

    images: (B, C, H, W) with C in {1, 3} (grey is replicated to RGB), float in ``value_range`` or uint8.
    Image k sits at rows ``padding + (k // nrow) * (H + padding)`` and columns ``padding + (k % nrow) * (W + padding)``;
    the border and the gaps (and empty cells of the last row) are ``pad_value`` (in [0, 1], white by default).
    Returns (3, rows * (H + padding) + padding, cols * (W + padding) + padding) float32 in [0, 1] on the CPU,
    with cols = min(nrow, B), rows = ceil(B / cols).
    """
    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        hint = " (one image: add a batch axis with images[None])" if images.ndim == 3 else ""
        raise ValueError(f"image_grid expects a non-empty batch (B, C, H, W) with C = 1 or 3, got shape "
                         f"{tuple(images.shape)}{hint}")
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int (images per row), got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0 (pixels), got {padding!r}")
    if not 0.0 <= pad_value <= 1.0:
        raise ValueError(f"pad_value must be in [0, 1] (the grid's value scale), got {pad_value!r}")
    x = to_unit_range(images, value_range).expand(-1, 3, -1, -1)  # grey -> RGB (a view; copied into the grid below)
    b, _, h, w = x.shape
    cols = min(nrow, b)
    rows = math.ceil(b / cols)
    grid = torch.full((3, rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad_value))
    for k in range(b):
        top, left = padding + (k // cols) * (h + padding), padding + (k % cols) * (w + padding)
        grid[:, top:top + h, left:left + w] = x[k]
    return grid
