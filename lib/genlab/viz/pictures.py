"""Pictures for the notebooks: image grids, inline video animations, loss curves (no model knowledge here).

Conventions (DESIGN.md): images (B, C, H, W), videos (T, C, H, W) or (B, T, C, H, W), C in {1, 3}; ``value_range``
says which values map to black and white (``(0, 1)`` for the embedded data, ``(-1, 1)`` for tanh generators,
``None`` to stretch the batch's min..max); uint8 tensors are always read as [0, 255]. Grey images are replicated to
RGB so every grid is (3, H, W).

Notebook hygiene: figures are small; :func:`animate_video` closes its figure so only the animation is shown; plot
cells end with ``plt.show()`` so no ``<Figure size ...>`` text lands in the outputs (nbval compares text/plain).
Nothing here needs ffmpeg: animations are matplotlib's JavaScript player with PNG frames embedded in the HTML.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from genlab.tensors import image_grid, to_unit_range

def to_uint8_hwc(grid: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded (what a PNG stores)."""
    return (grid * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def show_grid(images: torch.Tensor, title: str | None = None, ax=None, *, nrow: int = 8, padding: int = 2,
              value_range: tuple[float, float] | None = (0.0, 1.0), size: float = 4.0, min_tile_px: int = 48):
    """Draw :func:`image_grid` with matplotlib and return the Axes (end the cell with ``plt.show()``).

    images: (B, C, H, W), see :func:`image_grid`. ax: draw into this Axes; if None, a new figure whose longer side is
    ``size`` inches, enlarged where needed so that every image is drawn at least ``min_tile_px`` screen pixels tall
    and wide at the figure's dpi (a 28x28 digit is not read at 18 px; AUTHORING.md asks for 48). The grid fills the
    figure (a line of height per title line above it). Pixels are drawn with nearest interpolation.
    """
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow=nrow, padding=padding, value_range=value_range)
    if ax is None:
        h, w = grid.shape[1:]
        dpi = float(plt.rcParams["figure.dpi"])
        tile = min(images.shape[-2:])
        inches_per_px = max(size / max(h, w), min_tile_px / (tile * dpi))   # grid pixel -> inches
        fw, fh = max(w * inches_per_px, 1.0), max(h * inches_per_px, 0.5)
        title_h = 0.22 * (title.count("\n") + 1) + 0.08 if title else 0.0
        fig = plt.figure(figsize=(fw, fh + title_h))
        ax = fig.add_axes((0.0, 0.0, 1.0, fh / (fh + title_h)))
    ax.imshow(to_uint8_hwc(grid), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def animate_video(video: torch.Tensor, fps: int = 8, *, nrow: int | None = None, padding: int = 2,
                  value_range: tuple[float, float] | None = (0.0, 1.0), height: int = 128, loop: bool = True):
    """An inline, looping animation of a video (or a row of videos) for Jupyter; no ffmpeg needed.

    video: (T, C, H, W), or (B, T, C, H, W) shown side by side (``nrow`` videos per row, default all B in one row),
    C in {1, 3}. Every frame is drawn with :func:`image_grid`, scaled up by an integer factor (nearest) so the frame is
    about ``height`` pixels tall (an odd width or height gets one white column / row), and embedded as a PNG in
    matplotlib's JavaScript player (``FuncAnimation.to_jshtml``). Returns ``IPython.display.HTML`` (displayed when it
    ends a cell); its ``.data`` is the HTML string. The figure is closed, so no static copy is shown too.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    if not isinstance(video, torch.Tensor):
        video = torch.as_tensor(np.asarray(video))
    if video.ndim == 4:
        video = video[None]
    if video.ndim != 5 or video.shape[2] not in (1, 3) or 0 in video.shape[:2]:
        raise ValueError(f"animate_video expects a video (T, C, H, W) or a batch of videos (B, T, C, H, W) with "
                         f"C = 1 or 3, got shape {tuple(video.shape)}")
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    b, t = video.shape[:2]
    # map the whole video at once, so value_range=None stretches with one min..max for all frames (no flicker)
    unit = to_unit_range(video, value_range)
    frames = [to_uint8_hwc(image_grid(unit[:, i], nrow=nrow or b, padding=padding)) for i in range(t)]
    fh, fw = frames[0].shape[:2]
    scale = max(1, round(height / fh))
    frames = [f.repeat(scale, axis=0).repeat(scale, axis=1) for f in frames]
    # matplotlib's movie writers round an odd frame size down to even (the h264 rule) by resizing the figure, which
    # would resample our pixels: pad a white row / column instead, so every PNG is the frame pixel for pixel
    fh, fw = frames[0].shape[:2]
    frames = [np.pad(f, ((0, fh % 2), (0, fw % 2), (0, 0)), constant_values=255) for f in frames]
    fh, fw = fh + fh % 2, fw + fw % 2
    dpi = 64  # a power of two: pixels / dpi * dpi is exact, so the PNG is exactly the frame's size
    fig = plt.figure(figsize=(fw / dpi, fh / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))  # the image fills the figure: one PNG pixel per frame pixel
    ax.set_axis_off()
    im = ax.imshow(frames[0], interpolation="nearest")

    def draw(i):
        im.set_data(frames[i])
        return (im,)

    try:
        anim = FuncAnimation(fig, draw, frames=t, interval=1000 / fps, blit=False, repeat=loop)
        html = anim.to_jshtml(fps=fps, default_mode="loop" if loop else "once")
    finally:
        plt.close(fig)
    return HTML(html)


def frame_strip(videos: torch.Tensor, *, row_labels: Sequence[str] | None = None, every: int = 1,
                max_frames: int = 16, title: str | None = None, value_range: tuple[float, float] | None = (0.0, 1.0),
                scale: float = 0.6, ax=None):
    """The static picture of a batch of clips: one clip per row, its frames left to right (frame index on top), so a
    notebook's report and GitHub show what an animation shows. Returns the Axes (end the cell with ``plt.show()``).

    videos: (B, T, C, H, W) (or one clip (T, C, H, W)), C in {1, 3}; every: show frames 0, every, 2 every, ...
    (at most ``max_frames``); row_labels: one label per clip; scale: inches per frame.
    """
    import matplotlib.pyplot as plt

    if not isinstance(videos, torch.Tensor):
        videos = torch.as_tensor(np.asarray(videos))
    if videos.ndim == 4:
        videos = videos[None]
    if videos.ndim != 5 or videos.shape[2] not in (1, 3) or 0 in videos.shape[:2]:
        raise ValueError(f"frame_strip expects clips (B, T, C, H, W) with C = 1 or 3, got {tuple(videos.shape)}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int (frames), got {every!r}")
    idx = list(range(0, videos.shape[1], every))[:max_frames]
    b, n, (h, w) = videos.shape[0], len(idx), videos.shape[-2:]
    pad = 2
    grid = image_grid(videos[:, idx].flatten(0, 1), nrow=n, padding=pad, value_range=value_range)
    if ax is None:
        _, ax = plt.subplots(figsize=(scale * n + (1.0 if row_labels else 0.2), scale * b * h / w + 0.5))
    ax.imshow(to_uint8_hwc(grid), interpolation="nearest")
    ax.set_xticks([pad + i * (w + pad) + w / 2 for i in range(n)], [str(t) for t in idx], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(b)], list(row_labels) if row_labels else [""] * b,
                  fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("frame", fontsize=8)
    ax.xaxis.set_label_position("top")
    if title:
        ax.set_title(title, fontsize=10, pad=18)
    return ax


def smooth(values: Sequence[float] | np.ndarray | torch.Tensor, weight: float) -> np.ndarray:
    """Exponential moving average with bias correction (as TensorBoard smooths curves), float64 (N,) -> (N,).

    s_t = weight * s_{t-1} + (1 - weight) * v_t with s_0 = 0, reported as s_t / (1 - weight^t); weight in [0, 1).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1) (0 = no smoothing, 0.9 = strong), got {weight!r}")
    v = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64).reshape(-1)
    out, s = np.empty_like(v), 0.0
    for i, x in enumerate(v):
        s = weight * s + (1.0 - weight) * x
        out[i] = s / (1.0 - weight ** (i + 1))
    return out


def plot_curve(values, *, smoothing: float = 0.0, ax=None, title: str | None = None, xlabel: str = "step",
               ylabel: str = "loss", logy: bool = False, size: tuple[float, float] = (5.0, 3.0)):
    """Plot a training curve (or several) and return the Axes (end the cell with ``plt.show()``).

    values: a sequence / 1-D array / tensor of N numbers, or a mapping name -> sequence for several labelled curves.
    smoothing: EMA weight in [0, 1) (see :func:`smooth`); when > 0 the raw curve is drawn faint behind the smoothed
    one. x is the index 0..N-1.
    """
    import matplotlib.pyplot as plt

    curves = dict(values) if isinstance(values, Mapping) else {None: values}
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    for name, ys in curves.items():
        y = np.asarray(ys.detach().cpu() if isinstance(ys, torch.Tensor) else ys, dtype=np.float64).reshape(-1)
        if y.size == 0:
            raise ValueError(f"curve {name or ''} is empty: nothing to plot")
        x = np.arange(len(y))
        if smoothing > 0:
            (raw,) = ax.plot(x, y, alpha=0.25, linewidth=1)
            ax.plot(x, smooth(y, smoothing), color=raw.get_color(), linewidth=1.5, label=name)
        else:
            ax.plot(x, y, linewidth=1.5, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if any(name is not None for name in curves):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def flow_to_color(flow: torch.Tensor, max_flow: float | None = None) -> torch.Tensor:
    """The flow colour wheel (Baker et al. 2011, Middlebury): hue = direction, saturation = speed relative to
    ``max_flow`` (default: the largest speed in the batch), white = no motion.

    flow (..., 2, H, W) in pixels (dx, dy) -> (..., 3, H, W) RGB in [0, 1]. Direction: hue 0 (red) = flow pointing
    right (+x), 1/4 turn (yellow-green) = down (+y), and so on round the wheel."""
    import matplotlib.colors as mcolors

    dx, dy = flow[..., 0, :, :].float(), flow[..., 1, :, :].float()
    speed = torch.sqrt(dx * dx + dy * dy)
    top = float(speed.max()) if max_flow is None else float(max_flow)
    sat = (speed / max(top, 1e-6)).clamp(0, 1)
    hue = (torch.atan2(dy, dx) / (2 * np.pi)) % 1.0
    hsv = torch.stack([hue, sat, torch.ones_like(sat)], -1).cpu().numpy()
    rgb = torch.from_numpy(mcolors.hsv_to_rgb(hsv)).float()                  # (..., H, W, 3)
    return rgb.movedim(-1, -3)
