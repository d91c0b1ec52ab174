"""Interactive widgets for the notebooks (ipywidgets): an image browser, the faces world's factor editor, the
StyleGAN style explorer and the Deep Video Portraits editor. They need a running kernel. Each one's display bundle
also carries its current picture as ``image/png``: a frontend with a kernel shows the live widget, a static viewer
(GitHub, nbviewer, a notebook opened without widget state) shows that picture instead of nothing.
"""
from __future__ import annotations

import io

import numpy as np
import torch

from genlab.nn.latent import mix_styles, truncate
from genlab.viz.pictures import image_grid, to_uint8_hwc
from genlab.worlds.faces import FACTORS, neutral_factors, render_faces


def _with_static_picture(box, picture):
    """Return ``box`` with its display bundle extended by ``picture``'s PNG (an ``ipywidgets.Image``): frontends that
    render widgets prefer the widget view; the others fall back to the picture as it was when the cell ran."""
    import base64

    widget_bundle = box._repr_mimebundle_

    def bundle(**kwargs):
        data = widget_bundle(**kwargs)
        if data is not None and picture.format == "png" and picture.value:
            data = {**data, "image/png": base64.b64encode(picture.value).decode("ascii")}
        return data

    box._repr_mimebundle_ = bundle
    return box


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
        pixels = to_uint8_hwc(image_grid(images[i:i + 1], nrow=1, padding=0, value_range=value_range))
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
    return _with_static_picture(widgets.VBox([slider, picture, text]), picture)


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

    seed = initial.pop("detail_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"detail_seed must be an int >= 0, got {seed!r}")
    start = neutral_factors(**initial)[0].tolist()  # validates names and ranges
    scale = max(1, round(256 / resolution))

    def png(values: list[float], detail_seed: int) -> bytes:
        face = render_faces(torch.tensor([values]), resolution, detail_seeds=[detail_seed])
        pixels = to_uint8_hwc(face[0])
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
    # align_items: without it the flex box stretches the picture to the height of the slider column
    return _with_static_picture(widgets.HBox([widgets.VBox([*sliders, seed_slider]), picture],
                                             layout=widgets.Layout(align_items="flex-start")), picture)


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
        pixels = to_uint8_hwc(grid)
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
    return _with_static_picture(widgets.VBox([widgets.HBox(sliders), picture]), picture)


def portrait_editor(network, params: torch.Tensor | None = None, *, window_steps: int = 6):
    """Interactive video editing (Deep Video Portraits): sliders for the animated factors of the target's
    parametric model (pose, expression, gaze, blink); when one moves, the conditioning images are re-rendered and the
    trained rendering-to-video network draws the target: an ipywidgets ``HBox(VBox(sliders...), Image)`` whose
    picture is the shaded conditioning render beside the network's frame.

    network: a :class:`genlab.models.rendering_to_video.RenderingToVideo`; params: the starting factor row
    (N_FACTORS,) (default the target's neutral frame). The space-time volume is filled by ``window_steps`` frames that
    ease from the previous slider setting to the new one, so a window N_w > 1 sees a short, smooth motion rather than a
    jump. ``box.children[0].children`` are the sliders (genlab.worlds.portraits.ANIMATED order).
    """
    import ipywidgets as widgets
    from PIL import Image

    from genlab.worlds.faces import FACTOR_NAMES
    from genlab.worlds.portraits import ANIMATED, TARGET, conditioning
    from genlab.zoo.portraits import render_video

    res = network.config.resolution
    start = (TARGET.neutral() if params is None else torch.as_tensor(params, dtype=torch.float32)).clone()
    cols = {n: FACTOR_NAMES.index(n) for n in ANIMATED}
    scale = max(1, round(192 / res))
    state = {"row": start}

    def png(row: torch.Tensor) -> bytes:
        w = torch.linspace(0, 1, max(window_steps, network.config.window))[:, None]
        rows = state["row"] * (1 - w) + row * w                      # ease from the last setting to this one
        cond = conditioning(rows, res)
        frame = render_video(network, cond)[-1]
        pixels = to_uint8_hwc(image_grid(torch.stack([cond[-1, :3], frame]), nrow=2, padding=2))
        buf = io.BytesIO()
        Image.fromarray(pixels.repeat(scale, axis=0).repeat(scale, axis=1)).save(buf, format="PNG")
        state["row"] = row
        return buf.getvalue()

    style = {"description_width": "90px"}
    fac = {f.name: f for f in FACTORS}
    sliders = [widgets.FloatSlider(value=float(start[j]), min=fac[n].low, max=fac[n].high,
                                   step=(fac[n].high - fac[n].low) / 100, description=n, readout_format=".2f",
                                   style=style, tooltip=fac[n].doc) for n, j in cols.items()]
    picture = widgets.Image(value=png(start), format="png")

    def on_change(_):
        row = state["row"].clone()
        for s, j in zip(sliders, cols.values()):
            row[j] = s.value
        picture.value = png(row)

    for s in sliders:
        s.observe(on_change, names="value")
    return _with_static_picture(widgets.HBox([widgets.VBox(sliders), picture],
                                             layout=widgets.Layout(align_items="flex-start")), picture)
