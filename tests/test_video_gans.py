"""Video GAN pieces: the DVD-GAN views (which frames, pooled shapes, pixel ratio), the ConvGRU cell, fixed vs free
clip length, seeded sampling, clear errors for wrong video shapes, and a smoke run of every video recipe."""
from __future__ import annotations

import pytest
import torch

from genlab.models.dvdgan import RecurrentGenerator, SpatialDiscriminator, pixel_ratio, pool_clip, random_frames
from genlab.models.videogan import MotionContentGenerator, SingleZGenerator, VideoDiscriminator, VideoGANConfig
from genlab.nn.inference import generate
from genlab.nn.temporal import ConvGRUCell

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = VideoGANConfig(width=4, d_width=4)


def test_random_frames_are_distinct_ordered_and_from_the_clip():
    clips = torch.arange(3 * 16, dtype=torch.float32).view(3, 16, 1, 1, 1).expand(3, 16, 1, 2, 2)
    view = random_frames(clips, 5, generator=torch.Generator().manual_seed(0))
    assert view.shape == (3, 5, 1, 2, 2)
    idx = view[:, :, 0, 0, 0].long() - 16 * torch.arange(3)[:, None]          # which frame of its own clip
    assert ((idx >= 0) & (idx < 16)).all()
    assert all(len(set(r.tolist())) == 5 and r.tolist() == sorted(r.tolist()) for r in idx)
    with pytest.raises(ValueError, match="k must be"):
        random_frames(clips, 17)


def test_pooled_clip_and_pixel_ratios():
    x = torch.rand(2, 16, 1, 32, 32)
    p = pool_clip(x)
    assert p.shape == (2, 16, 1, 16, 16)
    torch.testing.assert_close(p[1, 3, 0, 2, 5], x[1, 3, 0, 4:6, 10:12].mean())
    assert pixel_ratio(48, 128, 8) == pytest.approx(8 / 48 + 1 / 4)         # DVD-GAN's configuration: 0.417
    assert pixel_ratio(16, 32, 4) == pytest.approx(0.5)


def test_conv_gru_starts_from_zero_and_keeps_its_state_shape():
    torch.manual_seed(0)
    cell = ConvGRUCell(3, 5)
    x = torch.randn(2, 3, 6, 6)
    h1 = cell(x)
    assert h1.shape == (2, 5, 6, 6)
    torch.testing.assert_close(cell(x, torch.zeros(2, 5, 6, 6)), h1)        # None = a zero state (a reset)
    h2 = cell(x, h1)
    assert not torch.allclose(h2, h1) and h2.abs().max() <= 1               # h is a convex mix of h and tanh(.)
    with pytest.raises(ValueError, match="odd"):
        ConvGRUCell(3, 5, kernel_size=2)


def test_single_z_length_is_fixed_and_per_frame_length_is_free():
    z = torch.randn(2, SMALL.z_dim)
    assert SingleZGenerator(SMALL)(z).shape == (2, 16, 1, 32, 32)
    with pytest.raises(ValueError, match="exactly 16 frames"):
        SingleZGenerator(SMALL)(z, frames=32)
    for G in (MotionContentGenerator(SMALL), RecurrentGenerator(SMALL)):
        out = G.eval()(z, frames=40)
        assert out.shape == (2, 40, 1, 32, 32) and out.abs().max() <= 1


def test_seeded_sampling_repeats_and_the_prefix_is_causal():
    """generate() draws z and every per-frame noise from the seed; a longer clip starts with the shorter one."""
    torch.manual_seed(0)
    G = RecurrentGenerator(SMALL).eval()
    a, b = generate(G, 3, seed=1), generate(G, 3, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, generate(G, 3, seed=2))
    z = torch.randn(2, SMALL.z_dim)
    eps = torch.randn(2, 24, SMALL.eps_dim, 8, 8)
    with torch.no_grad():
        long, short = G(z, frames=24, noise=eps), G(z, frames=16, noise=eps[:, :16])
    torch.testing.assert_close(long[:, :16], short)                        # frame t reads only noise up to t


def test_critics_check_their_input():
    D, DS = VideoDiscriminator(1, 4), SpatialDiscriminator(1, 4)
    assert D(torch.zeros(3, 16, 1, 32, 32)).shape == (3,) and DS(torch.zeros(3, 4, 1, 32, 32)).shape == (3,)
    with pytest.raises(ValueError, match=r"\(B, 16, 1, H, W\)"):
        D(torch.zeros(3, 1, 32, 32))                                        # an image batch is not a clip
    with pytest.raises(ValueError, match="32x32"):
        D(torch.zeros(3, 16, 1, 16, 16))
    with pytest.raises(ValueError, match="latent z"):
        MotionContentGenerator(SMALL)(torch.zeros(2, 3))


@pytest.mark.parametrize("name", ["videogan_single_z", "videogan_per_frame", "dvdgan_digits", "dvdgan_digits_ds",
                                  "dvdgan_digits_dt"])
def test_video_recipes_train_in_the_ci_profile(name, tmp_path):
    from genlab.config import setup
    from genlab.zoo import train_recipe

    G = train_recipe(name, setup("ci", 0), out=tmp_path, progress=False)
    assert G(torch.randn(2, G.config.z_dim)).shape == (2, 16, 1, 32, 32)
    assert (tmp_path / name / "ci" / "last.pt").exists()


def test_dvdgan_trains_on_a_folder_of_your_videos(tmp_path):
    """The real-video path: clips from video files (PyAV) train DVD-GAN-lite in RGB; a 64x64 generator exists."""
    from genlab.config import setup
    from genlab.data.videos import VideoFolderError, write_video
    from genlab.worlds.moving_digits import moving_digits
    from genlab.zoo.videogan import train_on_video_folder

    folder = tmp_path / "videos"
    folder.mkdir()
    for i, clip in enumerate(moving_digits("test", 2, frames=32, size=32).videos):
        write_video(folder / f"v{i}.mp4", clip)
    G = train_on_video_folder(folder, setup("ci", 0), out=tmp_path / "runs", progress=False)
    assert G.config.channels == 3 and G(torch.randn(2, G.config.z_dim)).shape == (2, 16, 3, 32, 32)
    assert (tmp_path / "runs" / "dvdgan_folder32" / "ci" / "last.pt").exists()
    with pytest.raises(VideoFolderError, match="does not exist"):
        train_on_video_folder(tmp_path / "missing", setup("ci", 0), out=tmp_path / "runs")
    big = RecurrentGenerator(VideoGANConfig(size=64, channels=3, width=4)).eval()
    assert big(torch.randn(1, 64), frames=3).shape == (1, 3, 3, 64, 64)
    with pytest.raises(ValueError, match="32x32"):
        SingleZGenerator(VideoGANConfig(size=64))
