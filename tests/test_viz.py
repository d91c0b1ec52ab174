"""viz: exact grid layout, value ranges, the inline animation's frames, curves, and the image browser widget."""
import base64
import io
import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from genlab.viz import animate_video, image_browser, image_grid, plot_curve, show_grid, smooth


def _const(values, c=1, h=2, w=3):
    """A batch of constant images: image k is filled with values[k] (distinct values make positions checkable)."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, c, h, w).clone()


def _expected_frame(images, nrow, padding):
    return (image_grid(images, nrow=nrow, padding=padding) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------------------------------------------- image_grid

def test_grid_layout_is_exact():
    # 3 grey 2x3 images, 2 per row, 1 px padding of 1.0: a 2 x 2 grid of cells, the last one empty
    grid = image_grid(_const([0.1, 0.2, 0.3]), nrow=2, padding=1, pad_value=1.0)
    assert grid.shape == (3, 2 * (2 + 1) + 1, 2 * (3 + 1) + 1) and grid.dtype == torch.float32
    expected = torch.ones(7, 9)
    expected[1:3, 1:4] = 0.1  # image 0: row 0, col 0
    expected[1:3, 5:8] = 0.2  # image 1: row 0, col 1
    expected[4:6, 1:4] = 0.3  # image 2: row 1, col 0; row 1, col 1 stays padding
    for ch in range(3):  # grey replicated to R, G and B
        assert torch.equal(grid[ch], expected)


def test_grid_defaults_and_pad_value():
    grid = image_grid(_const([0.5] * 10, h=4, w=4))  # nrow=8, padding=2: two rows, 8 columns
    assert grid.shape == (3, 2 * 6 + 2, 8 * 6 + 2)
    assert torch.all(grid[:, :2] == 1.0) and torch.all(grid[:, :, :2] == 1.0)  # white border by default
    assert torch.all(grid[:, 8:12, 2 + 2 * 6:2 + 2 * 6 + 4] == 1.0)  # empty cell (row 1, col 2)
    assert torch.all(grid[:, 8:12, 2 + 6:2 + 6 + 4] == 0.5)  # image 9 at row 1, col 1
    black = image_grid(_const([0.5, 0.5]), padding=1, pad_value=0.0)
    assert black[:, 0].eq(0).all() and black.shape == (3, 4, 9)
    assert torch.equal(image_grid(_const([0.2, 0.4]), padding=0), image_grid(_const([0.2, 0.4]), nrow=2, padding=0))
    assert image_grid(_const([0.2, 0.4]), nrow=1, padding=0).shape == (3, 4, 3)  # one column


def test_rgb_channels_are_kept_and_grey_replicated():
    rgb = torch.stack([torch.full((2, 2), v) for v in (0.1, 0.5, 0.9)])[None]  # (1, 3, 2, 2)
    g = image_grid(rgb, padding=0)
    assert torch.equal(g, rgb[0])
    grey = image_grid(torch.rand(4, 1, 5, 5), padding=1)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_value_ranges():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1)
    g = image_grid(x, padding=0, value_range=(-1, 1))
    assert g[0, 0].tolist() == [0.0, 0.5, 1.0]
    s = image_grid(torch.tensor([3.0, 5.0, 7.0]).view(3, 1, 1, 1), padding=0, value_range=None)  # min..max stretch
    assert s[0, 0].tolist() == [0.0, 0.5, 1.0]
    u = image_grid(torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1, 1), padding=0)  # uint8 = [0, 255]
    assert torch.allclose(u[0, 0], torch.tensor([0.0, 0.2, 1.0]))
    slight = image_grid(torch.tensor([-0.005, 1.005]).view(2, 1, 1, 1), padding=0)  # rounding noise is clamped
    assert slight[0, 0].tolist() == [0.0, 1.0]
    flat = image_grid(torch.full((2, 1, 1, 1), 0.3), padding=0, value_range=None)  # constant batch: no division by 0
    assert torch.isfinite(flat).all()


@pytest.mark.parametrize("images,kwargs,match", [
    (torch.rand(1, 5, 5), {}, r"got shape \(1, 5, 5\).*images\[None\]"),
    (torch.rand(2, 2, 5, 5), {}, r"C = 1 or 3, got shape \(2, 2, 5, 5\)"),
    (torch.rand(0, 3, 5, 5), {}, "non-empty batch"),
    (torch.rand(2, 3, 4, 4) * 2 - 1, {}, r"outside value_range=\(0, 1\).*value_range=\(-1, 1\)"),
    (torch.rand(2, 3, 4, 4) * 255, {}, "outside value_range"),
    (torch.rand(2, 3, 4, 4), {"value_range": (1, 0)}, "low < high"),
    (torch.full((1, 1, 2, 2), float("nan")), {}, "NaN or inf"),
    (torch.rand(2, 3, 4, 4), {"nrow": 0}, "nrow must be a positive int"),
    (torch.rand(2, 3, 4, 4), {"padding": -1}, "padding must be an int >= 0"),
    (torch.rand(2, 3, 4, 4), {"pad_value": 255}, r"pad_value must be in \[0, 1\]"),
])
def test_grid_errors_name_the_fix(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        image_grid(images, **kwargs)


def _rendered(fig) -> np.ndarray:
    """The figure as the inline backend stores it (PNG, tight bounding box), as an (H, W, 4) array."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    buf.seek(0)
    return plt.imread(buf)


def test_show_grid_draws_the_grid_small():
    images = torch.rand(6, 3, 8, 8)
    ax = show_grid(images, title="samples", nrow=3)
    try:
        assert ax.get_title() == "samples" and not ax.axison
        drawn = ax.get_images()[0].get_array()
        assert np.array_equal(np.asarray(drawn), _expected_frame(images, 3, 2))
        w, h = ax.figure.get_size_inches()
        assert max(w, h) <= 4.5                      # 8-pixel images, 3 per row: the default size is enough
    finally:
        plt.close(ax.figure)
    for n, nrow, res in ((16, 16, 28), (32, 8, 64), (6, 3, 8)):
        ax = show_grid(torch.rand(n, 1, res, res), title="a title\nof two lines", nrow=nrow)
        try:
            png = _rendered(ax.figure)
            bbox = ax.get_images()[0].get_window_extent()      # the drawn grid in screen pixels
            cols, rows = min(n, nrow), -(-n // nrow)
            tile_w = bbox.width * res / (cols * (res + 2) + 2)
            tile_h = bbox.height * res / (rows * (res + 2) + 2)
            assert min(tile_w, tile_h) >= 48 - 1e-6, (n, nrow, res, tile_w, tile_h)
            assert png.shape[1] >= bbox.width - 1 and png.shape[0] >= bbox.height - 1
        finally:
            plt.close(ax.figure)
    fig, given = plt.subplots()
    try:
        assert show_grid(images, ax=given) is given  # draws into the Axes it is given
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------- animate_video

def _frames(html: str) -> list[np.ndarray]:
    found = re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]*)"', html)
    assert [int(i) for i, _ in found] == list(range(len(found)))
    return [_png_pixels(base64.b64decode(b64.replace("\\\n", ""))) for _, b64 in found]


def test_animate_video_embeds_every_frame_without_ffmpeg(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)  # as on a machine without ffmpeg
    monkeypatch.setitem(matplotlib.rcParams, "animation.ffmpeg_path", "/nonexistent/ffmpeg")
    video = torch.rand(5, 1, 6, 6)
    open_before = plt.get_fignums()
    out = animate_video(video, fps=4, height=30)
    assert plt.get_fignums() == open_before  # its figure is closed: no static copy shows up under the animation
    from IPython.display import HTML
    assert isinstance(out, HTML)
    frames = _frames(out.data)
    assert len(frames) == 5
    for t, frame in enumerate(frames):  # frame t, scaled up by an integer factor (nearest), pixel for pixel
        expected = _expected_frame(video[t:t + 1], 1, 2)
        scale = frame.shape[0] // expected.shape[0]
        assert scale == 3  # (6 + 2 * 2) * 3 = 30 = height
        assert np.array_equal(frame, expected.repeat(scale, 0).repeat(scale, 1))
    assert re.search(r"new Animation\(frames, img_id, slider_id, 250,", out.data)  # 4 fps -> 250 ms per frame


def test_animate_video_batch_is_a_row():
    videos = torch.rand(3, 4, 3, 5, 5) * 2 - 1  # (B, T, C, H, W) in [-1, 1]
    frames = _frames(animate_video(videos, value_range=(-1, 1), height=12).data)
    assert len(frames) == 4
    unit = (videos + 1) / 2
    for t, frame in enumerate(frames):  # height 12 -> scale 1: one row of 3 videos, 9 x 23 pixels ...
        assert np.array_equal(frame[:9, :23], _expected_frame(unit[:, t], 3, 2))
        assert frame.shape == (10, 24, 3) and (frame[9] == 255).all() and (frame[:, 23] == 255).all()  # ... made even


@pytest.mark.parametrize("video,kwargs,match", [
    (torch.rand(4, 5, 5), {}, r"\(T, C, H, W\).*got shape \(4, 5, 5\)"),
    (torch.rand(4, 2, 5, 5), {}, "C = 1 or 3"),
    (torch.rand(0, 1, 5, 5), {}, "got shape"),
    (torch.rand(4, 1, 5, 5), {"fps": 0}, "fps must be a positive number"),
    (torch.rand(4, 1, 5, 5) + 3, {}, "outside value_range"),
])
def test_animate_video_errors(video, kwargs, match):
    with pytest.raises(ValueError, match=match):
        animate_video(video, **kwargs)


# ------------------------------------------------------------------------------------------------ curves

def test_smooth_is_bias_corrected_ema():
    assert smooth([1.0, 1.0, 1.0], 0.9).tolist() == pytest.approx([1.0, 1.0, 1.0])  # no pull towards 0 at the start
    assert smooth([0.0, 1.0], 0.5).tolist() == pytest.approx([0.0, 0.5 / 0.75])
    assert smooth(torch.tensor([3.0, 1.0, 2.0]), 0.0).tolist() == [3.0, 1.0, 2.0]  # weight 0: the raw values
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        smooth([1.0], 1.0)


def test_plot_curve_raw_and_smoothed():
    losses = np.linspace(2.0, 0.5, 50) + 0.1 * np.sin(np.arange(50))
    ax = plot_curve(losses, smoothing=0.8, title="loss")
    try:
        raw, smoothed = ax.get_lines()
        assert np.array_equal(raw.get_ydata(), losses) and raw.get_alpha() < 1
        assert np.allclose(smoothed.get_ydata(), smooth(losses, 0.8))
        assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss" and ax.get_title() == "loss"
        assert ax.get_legend() is None  # one unnamed curve: no legend
        w, h = ax.figure.get_size_inches()
        assert w <= 5 and h <= 3
    finally:
        plt.close(ax.figure)


def test_plot_curve_several_named_curves():
    ax = plot_curve({"G": torch.tensor([1.0, 0.8]), "D": [0.7, 0.6]}, logy=True)
    try:
        assert [line.get_label() for line in ax.get_lines()] == ["G", "D"]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["G", "D"]
        assert ax.get_yscale() == "log"
    finally:
        plt.close(ax.figure)
    with pytest.raises(ValueError, match="curve D is empty"):
        plot_curve({"D": []})
    plt.close("all")


# ------------------------------------------------------------------------------------------------ image_browser

def test_image_browser_slider_shows_image_i(capsys):
    import ipywidgets as widgets

    images = torch.rand(5, 1, 4, 4)
    open_before = plt.get_fignums()
    box = image_browser(images, labels=torch.tensor([7, 1, 4, 0, 9]), height=8)
    slider, picture, caption = box.children
    assert isinstance(box, widgets.VBox) and isinstance(slider, widgets.IntSlider)
    assert (slider.min, slider.max, slider.value) == (0, 4, 0)  # one position per image
    expected = [_expected_frame(images[i:i + 1], 1, 0).repeat(2, 0).repeat(2, 1) for i in range(5)]
    assert np.array_equal(_png_pixels(picture.value), expected[0]) and caption.value == "image 0 of 5 - label: 7"
    slider.value = 3  # what dragging the slider does, without a browser
    assert np.array_equal(_png_pixels(picture.value), expected[3]) and caption.value == "image 3 of 5 - label: 0"
    # the display bundle: the live widget for frontends with a kernel, its current picture for static viewers
    import base64

    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(box)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert np.array_equal(_png_pixels(base64.b64decode(data["image/png"])), expected[3])
    assert capsys.readouterr() == ("", "")  # headless: prints nothing (papermill/nbval would store it)
    assert plt.get_fignums() == open_before


def test_image_browser_rgb_without_labels_and_errors():
    box = image_browser(torch.rand(2, 3, 10, 10) * 2 - 1, value_range=(-1, 1))
    assert box.children[0].max == 1 and box.children[2].value == "image 0 of 2"
    assert _png_pixels(box.children[1].value).shape == (160, 160, 3)  # scaled 16x to the default height
    with pytest.raises(ValueError, match="got 2 images but 3 labels"):
        image_browser(torch.rand(2, 1, 4, 4), labels=[1, 2, 3])
    with pytest.raises(ValueError, match="non-empty batch"):
        image_browser(torch.rand(4, 4))


def test_style_explorer_rerenders_on_every_slider_and_needs_a_w_space():
    from genlab.models.stylegan import Generator, StyleGANConfig
    from genlab.viz import style_explorer

    small = dict(resolution=16, max_channels=8, channel_base=64, mapping_layers=2, z_dim=8, w_dim=8)
    torch.manual_seed(0)
    box = style_explorer(Generator(StyleGANConfig.of("F", **small)), crossover=2)
    sliders, picture = box.children[0].children, box.children[1]
    first = picture.value
    for slider, value in zip(sliders, (0.3, 5, 7, 9)):       # psi, crossover, seed A, seed B
        before = picture.value
        slider.value = value
        assert picture.value != before, slider.description
    assert picture.value != first
    with pytest.raises(ValueError, match="mapping network"):
        style_explorer(Generator(StyleGANConfig.of("B", **small)))
