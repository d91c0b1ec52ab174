"""The Deep Video Portraits editor (genlab.viz.portrait_editor): one slider per animated factor; moving one re-renders
the conditioning images and runs the network on them."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from genlab.models.rendering_to_video import RenderingToVideo, RenderingToVideoConfig
from genlab.viz.pictures import image_grid, to_uint8_hwc
from genlab.worlds.faces import FACTOR_NAMES
from genlab.worlds.portraits import ANIMATED, TARGET, conditioning
from genlab.zoo.portraits import render_video


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _expected(net, rows: torch.Tensor) -> np.ndarray:
    cond = conditioning(rows, 32)
    frame = render_video(net, cond)[-1]
    return to_uint8_hwc(image_grid(torch.stack([cond[-1, :3], frame]), nrow=2, padding=2)).repeat(6, 0).repeat(6, 1)


def test_portrait_editor_drives_the_network_from_the_sliders(capsys):
    import ipywidgets as widgets

    from genlab.viz import portrait_editor

    torch.manual_seed(0)
    net = RenderingToVideo(RenderingToVideoConfig(window=3, ngf=4, n_down=2, resolution=32)).eval()
    box = portrait_editor(net, window_steps=4)
    controls, picture = box.children
    sliders = controls.children
    assert isinstance(picture, widgets.Image) and [s.description for s in sliders] == list(ANIMATED)
    start = TARGET.neutral()
    assert np.array_equal(_png(picture.value), _expected(net, start.expand(4, -1)))   # 32 px shown at 192
    before = picture.value
    sliders[ANIMATED.index("yaw")].value = 0.5
    assert picture.value != before
    new = start.clone()
    new[FACTOR_NAMES.index("yaw")] = 0.5
    w = torch.linspace(0, 1, 4)[:, None]
    assert np.array_equal(_png(picture.value), _expected(net, start * (1 - w) + new * w))   # eased over the window
    # the left panel is the shaded conditioning render of the new setting: the head turned
    left = _png(picture.value)[:, : 192 + 12]
    assert not np.array_equal(left, _png(before)[:, : 192 + 12])
    assert capsys.readouterr() == ("", "")
