"""Receptive fields measured with autograd, checked against a count made independently here (footprint propagation of
hand-written kernel offsets): the slide's 5x5 example, PixelCNN's blind spot, the Gated PixelCNN's full context."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.metrics.receptive_field import (COLOURS, causal_context, plot_receptive_field, receptive_field,
                                            receptive_field_image)
from genlab.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see tests/conftest.py


def offsets(k: int, centre: bool) -> list[tuple[int, int]]:
    """Kernel offsets (dr, dc) a k x k masked kernel reads, written out from the definition of the masks."""
    half = k // 2
    above = [(dr, dc) for dr in range(-half, 0) for dc in range(-half, half + 1)]
    left = [(0, dc) for dc in range(-half, 0)]
    return above + left + ([(0, 0)] if centre else [])


def propagate(image: tuple[int, int], pixel: tuple[int, int], layers: list[list[tuple[int, int]]]) -> set:
    """Input pixels reachable from ``pixel`` backwards through ``layers`` (last layer first), inside the image."""
    hh, ww = image
    reach = {pixel}
    for offs in reversed(layers):
        reach = {(r + dr, c + dc) for (r, c) in reach for dr, dc in offs if 0 <= r + dr < hh and 0 <= c + dc < ww}
    return reach


def as_set(mask: torch.Tensor) -> set:
    return {tuple(map(int, rc)) for rc in mask.nonzero()}


def slide_pixelcnn() -> PixelCNN:
    """The slide's example: 3x3 kernels, a mask-A layer then 3 mask-B layers."""
    torch.manual_seed(0)
    return PixelCNN(PixelCNNConfig(channels=8, n_layers=3, first_kernel=3, kernel=3, head_channels=8))


def test_slide_example_blind_spot_matches_an_independent_count():
    rf = receptive_field(slide_pixelcnn(), (5, 5), (2, 2))
    expected_seen = propagate((5, 5), (2, 2), [offsets(3, False)] + [offsets(3, True)] * 3)
    causal = {(r, c) for r in range(5) for c in range(5) if r * 5 + c < 2 * 5 + 2}
    assert as_set(rf.seen) == expected_seen
    assert as_set(rf.causal) == causal
    assert rf.blind_pixels == len(causal - expected_seen) == 1
    assert rf.blind_spot_pixels == 1
    assert as_set(rf.blind) == {(1, 4)}            # up one row, two to the right: two (-1, +1) steps would go up two
    assert rf.leaks == 0


def test_pixelcnn_blind_spot_on_mnist_size_matches_the_independent_count():
    torch.manual_seed(1)
    model = PixelCNN(PixelCNNConfig(channels=8, n_layers=5, first_kernel=7, kernel=3, head_channels=8))
    rf = receptive_field(model, (28, 28), (14, 14))
    expected = propagate((28, 28), (14, 14), [offsets(7, False)] + [offsets(3, True)] * 5)
    assert as_set(rf.seen) == expected
    assert rf.blind_pixels == int(causal_context((28, 28), (14, 14)).sum()) - len(expected) > 0
    assert rf.leaks == 0
    rows, cols = [r for r, _ in expected], [c for _, c in expected]
    box = {(r, c) for r in range(min(rows), max(rows) + 1) for c in range(min(cols), max(cols) + 1)}
    causal = as_set(causal_context((28, 28), (14, 14)))
    assert as_set(rf.blind_spot) == (causal & box) - expected
    assert min(rows) == 14 - 8 and max(cols) == 14 + 8           # 7x7 A reaches 3 up / 3 right, each 3x3 B one more
    assert rf.blind_spot[13, 18] and rf.blind_spot_pixels > 0   # one row up, four right: never reached


def test_gated_pixelcnn_on_mnist_size_has_no_blind_spot_only_far_context():
    torch.manual_seed(1)
    model = GatedPixelCNN(GatedPixelCNNConfig(channels=8, n_layers=5, first_kernel=7, kernel=3, head_channels=8))
    rf = receptive_field(model, (28, 28), (14, 14))
    seen = {(r, c) for r in range(14 - 7, 14) for c in range(14 - 7, 14 + 8)} | {(14, c) for c in range(7, 14)}
    assert as_set(rf.seen) == seen                               # a full 7 x 15 block above + 7 pixels to the left
    assert rf.blind_spot_pixels == 0 and rf.leaks == 0
    assert rf.blind_pixels == 14 * 28 + 14 - len(seen)           # the rest is out of reach, not a hole


@pytest.mark.parametrize("pixel", [(2, 2), (0, 3), (4, 0), (4, 4)])
def test_gated_pixelcnn_sees_exactly_the_causal_context(pixel):
    torch.manual_seed(0)
    model = GatedPixelCNN(GatedPixelCNNConfig(channels=8, n_layers=4, first_kernel=3, kernel=3, head_channels=8))
    rf = receptive_field(model, (5, 5), pixel)
    assert torch.equal(rf.seen, rf.causal)
    assert rf.blind_pixels == 0 and rf.leaks == 0 and rf.n_seen == pixel[0] * 5 + pixel[1]


def test_conditional_model_via_model_kwargs():
    torch.manual_seed(0)
    model = GatedPixelCNN(GatedPixelCNNConfig(channels=8, n_layers=4, first_kernel=3, head_channels=8, n_classes=10))
    rf = receptive_field(model, 6, (3, 3), model_kwargs={"y": torch.tensor([1, 2, 3, 4])})
    assert rf.blind_pixels == 0 and rf.leaks == 0


class _Leaky(nn.Module):
    """A plain (unmasked) 3x3 convolution: sees its own pixel and the future."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 256, 3, padding=1)

    def forward(self, x):
        return self.conv(x).unsqueeze(2)


def test_leaks_are_reported():
    torch.manual_seed(0)
    rf = receptive_field(_Leaky(), (5, 5), (2, 2))
    leak = {(2, 2), (2, 3), (3, 1), (3, 2), (3, 3)}
    assert as_set(rf.leak) == leak and rf.leaks == 5
    assert as_set(rf.blind) == as_set(rf.causal) - {(1, 1), (1, 2), (1, 3), (2, 1)}


def test_causal_context_is_raster_order():
    ctx = causal_context((4, 6), (2, 3))
    assert int(ctx.sum()) == 2 * 6 + 3
    assert ctx[1, 5] and ctx[2, 2] and not ctx[2, 3] and not ctx[3, 0]


def test_picture_colours_and_plot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rf = receptive_field(slide_pixelcnn(), (5, 5), (2, 2))
    img = receptive_field_image(rf)
    assert tuple(img[1, 4].tolist()) == pytest.approx(COLOURS["blind"])
    assert tuple(img[2, 2].tolist()) == pytest.approx(COLOURS["current"])
    assert tuple(img[0, 0].tolist()) == pytest.approx(COLOURS["seen"])
    assert tuple(img[4, 4].tolist()) == pytest.approx(COLOURS["future"])
    ax = plot_receptive_field(rf, title="PixelCNN")
    assert "blind 1" in ax.get_title()
    plt.close("all")


def test_bad_pixel_or_output_shape_raise():
    with pytest.raises(ValueError, match="outside"):
        receptive_field(slide_pixelcnn(), (5, 5), (5, 0))

    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 256, 1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(ValueError, match=r"\(B, 256, C, H, W\)"):
        receptive_field(Wrong(), (5, 5), (2, 2))
