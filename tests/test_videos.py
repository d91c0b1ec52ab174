"""Real videos from a folder (PyAV, bundled FFmpeg): a written clip reads back as the same clip, clips are cut and
resized as documented, and every bad folder or file gives an error that names it."""
from __future__ import annotations

import pytest
import torch

from genlab.data.videos import VideoFolderError, read_video, video_folder, write_video
from genlab.worlds.moving_digits import moving_digits


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    clips = moving_digits("test", 2, frames=40, size=64).videos                      # (2, 40, 1, 64, 64)
    write_video(root / "a.mp4", clips[0])
    (root / "sub").mkdir()
    write_video(root / "sub" / "b.mp4", clips[1, :20])
    return root, clips


def test_round_trip_keeps_the_frames(folder):
    root, clips = folder
    back = read_video(root / "a.mp4", 64)
    assert back.shape == (40, 3, 64, 64)
    grey = clips[0].expand(-1, 3, -1, -1)
    assert (back - grey).abs().mean() < 0.02                                         # lossless luma, 4:2:0 chroma


def test_clips_are_cut_resized_and_counted(folder):
    root, _ = folder
    x = video_folder(root, frames=16, size=32)
    assert x.shape == (2 + 1, 16, 3, 32, 32) and 0 <= x.min() and x.max() <= 1      # a: 40 -> 2 clips, b: 20 -> 1
    assert video_folder(root, frames=16, size=32, max_clips=1).shape[0] == 1
    assert video_folder(root, frames=8, size=32, stride=2).shape[0] == 2 + 1         # 20 and 10 frames kept


def test_bad_folders_and_files_fail_clearly(folder, tmp_path):
    root, _ = folder
    with pytest.raises(VideoFolderError, match="does not exist"):
        video_folder(tmp_path / "missing")
    with pytest.raises(VideoFolderError, match="no video files"):
        video_folder(tmp_path)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(VideoFolderError, match="broken.mp4"):
        video_folder(tmp_path)
    with pytest.raises(VideoFolderError, match="shorter than one clip"):
        video_folder(root, frames=64)
    with pytest.raises(ValueError, match="frames"):
        video_folder(root, frames=1)
