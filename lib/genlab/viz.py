"""Pictures for the notebooks: image grids, inline video animations, loss curves, an image browser widget.

Conventions (DESIGN.md): images (B, C, H, W), videos (T, C, H, W) or (B, T, C, H, W), C in {1, 3}; ``value_range``
says which values map to black and white (``(0, 1)`` for the embedded data, ``(-1, 1)`` for tanh generators,
``None`` to stretch the batch's min..max); uint8 tensors are always read as [0, 255]. Grey images are replicated to
RGB so every grid is (3, H, W).

Notebook hygiene: figures are small; :func:`animate_video` closes its figure so only the animation is shown; plot
cells end with ``plt.show()`` so no ``<Figure size ...>`` text lands in the outputs (nbval compares text/plain).
Nothing here needs ffmpeg: animations are matplotlib's JavaScript player with PNG frames embedded in the HTML.
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

_TOLERANCE = 0.01  # values this far (as a fraction of the range) outside value_range are clamped, not rejected


def _to_unit(images: torch.Tensor, value_range: tuple[float, float] | None) -> torch.Tensor:
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
    x = _to_unit(images, value_range).expand(-1, 3, -1, -1)  # grey -> RGB (a view; copied into the grid below)
    b, _, h, w = x.shape
    cols = min(nrow, b)
    rows = math.ceil(b / cols)
    grid = torch.full((3, rows * (h + padding) + padding, cols * (w + padding) + padding), float(pad_value))
    for k in range(b):
        top, left = padding + (k // cols) * (h + padding), padding + (k % cols) * (w + padding)
        grid[:, top:top + h, left:left + w] = x[k]
    return grid


def _to_uint8_hwc(grid: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded (what a PNG stores)."""
    return (grid * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def show_grid(images: torch.Tensor, title: str | None = None, ax=None, *, nrow: int = 8, padding: int = 2,
              value_range: tuple[float, float] | None = (0.0, 1.0), size: float = 4.0):
    """Draw :func:`image_grid` with matplotlib and return the Axes (end the cell with ``plt.show()``).

    images: (B, C, H, W), see :func:`image_grid`. ax: draw into this Axes; if None, a new figure whose longer side is
    ``size`` inches (small, to keep notebooks light). Pixels are drawn with nearest interpolation.
    """
    import matplotlib.pyplot as plt

    grid = image_grid(images, nrow=nrow, padding=padding, value_range=value_range)
    if ax is None:
        h, w = grid.shape[1:]
        scale = size / max(h, w)
        _, ax = plt.subplots(figsize=(max(w * scale, 1.0), max(h * scale, 1.0) + (0.3 if title else 0.0)))
    ax.imshow(_to_uint8_hwc(grid), interpolation="nearest")
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
    unit = _to_unit(video, value_range)
    frames = [_to_uint8_hwc(image_grid(unit[:, i], nrow=nrow or b, padding=padding)) for i in range(t)]
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


def image_browser(images: torch.Tensor, labels=None, *, value_range: tuple[float, float] | None = (0.0, 1.0),
                  height: int = 160):
    """A slider that shows image ``i`` of a batch (and its label): an ipywidgets ``VBox(slider, image, caption)``.

    images: (B, C, H, W), C in {1, 3}; labels: None or B labels (ints or strings). The picture is a PNG in an
    ``ipywidgets.Image`` (scaled up by an integer factor, nearest, to about ``height`` pixels), re-encoded when the
    slider moves. Works without a frontend (papermill, nbval, tests): it only sets widget state, it prints nothing
    and opens no matplotlib figure. Returns the VBox; ``box.children[0]`` is the ``IntSlider``.
    """
    import ipywidgets as widgets
    from PIL import Image

    if not isinstance(images, torch.Tensor):
        images = torch.as_tensor(np.asarray(images))
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"image_browser expects a non-empty batch (B, C, H, W) with C = 1 or 3, got shape "
                         f"{tuple(images.shape)}")
    if labels is not None:
        labels = labels.tolist() if isinstance(labels, (torch.Tensor, np.ndarray)) else list(labels)
        if len(labels) != len(images):
            raise ValueError(f"got {len(images)} images but {len(labels)} labels: pass one label per image")
    b, _, h, w = images.shape
    scale = max(1, round(height / h))

    def png(i: int) -> bytes:
        pixels = _to_uint8_hwc(image_grid(images[i:i + 1], nrow=1, padding=0, value_range=value_range))
        buf = io.BytesIO()
        Image.fromarray(pixels.repeat(scale, axis=0).repeat(scale, axis=1)).save(buf, format="PNG")
        return buf.getvalue()

    def caption(i: int) -> str:
        return f"image {i} of {b}" + ("" if labels is None else f" - label: {labels[i]}")

    slider = widgets.IntSlider(value=0, min=0, max=b - 1, step=1, description="image", continuous_update=True)
    picture = widgets.Image(value=png(0), format="png", width=w * scale, height=h * scale)
    text = widgets.Label(caption(0))

    def on_change(change):
        picture.value, text.value = png(change["new"]), caption(change["new"])

    slider.observe(on_change, names="value")
    return widgets.VBox([slider, picture, text])


def face_editor(resolution: int = 128, **initial):
    """Edit a procedural face by hand: one slider per factor of :mod:`genlab.worlds.faces` (ranges from ``FACTORS``),
    a detail-seed slider, and the face, re-rendered whenever a slider moves: an ipywidgets
    ``HBox(VBox(sliders...), Image)``.

    initial: starting factor values by name (the others start at ``faces.NEUTRAL``) and ``detail_seed`` (default 0),
    e.g. ``face_editor(yaw=0.5, smile=1.0)``; unknown names and out-of-range values raise ValueError. resolution:
    pixels per side of the render (>= 16); the PNG is scaled up by an integer factor (nearest) to about 256 pixels.
    Works without a frontend, like :func:`image_browser`. ``box.children[0].children`` are the sliders in
    ``FACTORS`` order, then the seed slider; ``box.children[1]`` is the ``ipywidgets.Image``.
    """
    import ipywidgets as widgets
    from PIL import Image

    from genlab.worlds.faces import FACTORS, neutral_factors, render_faces

    seed = initial.pop("detail_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"detail_seed must be an int >= 0, got {seed!r}")
    start = neutral_factors(**initial)[0].tolist()  # validates names and ranges
    scale = max(1, round(256 / resolution))

    def png(values: list[float], detail_seed: int) -> bytes:
        face = render_faces(torch.tensor([values]), resolution, detail_seeds=[detail_seed])
        pixels = _to_uint8_hwc(face[0])
        buf = io.BytesIO()
        Image.fromarray(pixels.repeat(scale, axis=0).repeat(scale, axis=1)).save(buf, format="PNG")
        return buf.getvalue()

    style = {"description_width": "110px"}
    sliders = [widgets.FloatSlider(value=value, min=f.low, max=f.high, step=(f.high - f.low) / 200,
                                   description=f.name, readout_format=".3f", style=style, tooltip=f.doc)
               for f, value in zip(FACTORS, start)]
    seed_slider = widgets.IntSlider(value=seed, min=0, max=max(999, seed), description="detail_seed", style=style)
    side = resolution * scale
    picture = widgets.Image(value=png(start, seed), format="png", width=side, height=side)

    def on_change(_):
        picture.value = png([s.value for s in sliders], seed_slider.value)

    for s in [*sliders, seed_slider]:
        s.observe(on_change, names="value")
    return widgets.HBox([widgets.VBox([*sliders, seed_slider]), picture])


def style_explorer(G, *, seed_a: int = 0, seed_b: int = 1, psi: float = 1.0, crossover: int | None = None,
                   height: int = 192):
    """Truncation and style mixing by hand, for a StyleGAN/StyleGAN2 generator with a mapping network: sliders for
    psi (truncation towards w_avg), the crossover layer (style inputs >= it take B's w; L = no mixing) and the two
    latent seeds; shows A, B and the mix side by side (fixed noise), re-rendered whenever a slider moves.

    Returns an ipywidgets ``VBox(HBox(psi, crossover, seed_a, seed_b), Image)``; works without a frontend (a headless
    run stores the first picture), like :func:`face_editor`.
    """
    import ipywidgets as widgets
    from PIL import Image

    from genlab.models.stylegan import mix_styles, truncate

    if getattr(G, "mapping", None) is None:
        raise ValueError("style_explorer needs a generator with a mapping network (StyleGAN configs C-F, StyleGAN2)")
    L = G.n_styles
    crossover = L if crossover is None else crossover
    device = next(G.parameters()).device

    @torch.no_grad()
    def png(psi_v: float, cross: int, sa: int, sb: int) -> bytes:
        G.eval()
        z = torch.stack([torch.randn(G.config.z_dim, generator=torch.Generator().manual_seed(s)) for s in (sa, sb)])
        w = truncate(G.mapping(z.to(device)), G.mapping.w_avg, psi_v)
        ws = torch.cat([w[:, None].expand(-1, L, -1), mix_styles(w[:1], w[1:], cross, L)])
        noise = [torch.randn(s[1:], generator=torch.Generator().manual_seed(0)).expand(3, -1, -1, -1).to(device)
                 for s in G.noise_shapes(1)]
        img = G.synthesis(ws, noise=noise).float().cpu().clamp(-1, 1)   # linear RGB outputs
        grid = image_grid(img, nrow=3, value_range=(-1, 1))
        pixels = _to_uint8_hwc(grid)
        scale = max(1, round(height / pixels.shape[0]))
        buf = io.BytesIO()
        Image.fromarray(pixels.repeat(scale, axis=0).repeat(scale, axis=1)).save(buf, format="PNG")
        return buf.getvalue()

    sliders = [widgets.FloatSlider(value=psi, min=0.0, max=1.0, step=0.05, description="psi"),
               widgets.IntSlider(value=crossover, min=0, max=L, description="crossover"),
               widgets.IntSlider(value=seed_a, min=0, max=999, description="seed A"),
               widgets.IntSlider(value=seed_b, min=0, max=999, description="seed B")]
    picture = widgets.Image(value=png(psi, crossover, seed_a, seed_b), format="png")

    def on_change(_):
        picture.value = png(*(s.value for s in sliders))

    for s in sliders:
        s.observe(on_change, names="value")
    return widgets.VBox([widgets.HBox(sliders), picture])
