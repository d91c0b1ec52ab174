"""Real label videos from a folder (genlab.data.label_videos): streets clips written as Cityscapes-format PNGs read
back as the same labels and frames, the estimated flow explains the motion, Cityscapes labelIds map to the street
classes, sequences are cut into clips as documented, and every bad folder or file gives an error that names it."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
from genlab.data.label_videos import (
    CITYSCAPES_TO_STREETS,
    STREETS_TO_CITYSCAPES,
    label_video_folder,
    write_label_video,
)
from genlab.nn.warp import warp_video
from genlab.worlds.streets import (
    CAR,
    LANE_MARKING,
    NUM_CLASSES,
    PEDESTRIAN,
    ROAD,
    SKY,
    StreetClips,
    streets,
)
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    clips = streets("test", 2, frames=5, size=(32, 32))
    root = write_label_video(tmp_path_factory.mktemp("label_videos"), clips)
    return root, clips


def _random_clips(n: int, frames: int, size=(16, 16), seed: int = 0) -> StreetClips:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_CLASSES, (n, frames, *size), generator=g)
    rgb = torch.rand(n, frames, 3, *size, generator=g) * 2 - 1
    z = torch.zeros(n, frames, 1, *size)
    return StreetClips(labels, rgb, torch.zeros(n, frames, 2, *size), z, z)


def _png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _pair(seq, name, label_ids, size=(16, 16)) -> None:
    """One Cityscapes-style frame (grey noise) and its label map (constant or a given array) in folder seq."""
    _png(seq / f"{name}_leftImg8bit.png", np.random.default_rng(0).integers(0, 256, (*size, 3)))
    _png(seq / f"{name}_labelIds.png", np.broadcast_to(np.asarray(label_ids), size))


def test_round_trip_keeps_labels_and_frames(written):
    root, clips = written
    x = label_video_folder(root, frames=5, size=(32, 32), label_map="streets")
    assert x.labels.dtype == torch.int64 and torch.equal(x.labels, clips.labels)
    assert x.frames.dtype == torch.float32 and x.frames.shape == (2, 5, 3, 32, 32)
    assert (x.frames - clips.frames).abs().max() <= 1 / 255 + 1e-6                    # 8-bit PNG quantisation
    assert x.flow.shape == (2, 5, 2, 32, 32) and x.occlusion.shape == x.depth.shape == (2, 5, 1, 32, 32)
    assert (x.flow[:, 0] == 0).all() and (x.occlusion[:, 0] == 1).all()
    assert set(x.occlusion.unique().tolist()) <= {0.0, 1.0} and (x.depth == 0).all()


def test_estimated_flow_warps_better_than_zero_flow(written):
    root, _ = written
    x = label_video_folder(root, frames=5, size=(32, 32), label_map="streets")
    visible = 1 - x.occlusion[:, 1:]
    assert visible.mean() > 0.5                                                     # measured 0.94

    def err(pred):
        return ((pred - x.frames[:, 1:]).abs().mean(2, keepdim=True) * visible).sum() / visible.sum()

    ratio = err(warp_video(x.frames, x.flow)) / err(x.frames[:, :-1])
    assert ratio < 0.9                                                              # measured 0.66


def test_cityscapes_ids_map_to_street_classes(tmp_path):
    ids = np.full((16, 16), 7)
    ids[:8, 8:], ids[8:, :8], ids[8:, 8:] = 26, 24, 23                              # road | car / pedestrian | sky
    for t in range(2):
        _pair(tmp_path / "seq", f"seq_000000_{t:06d}", ids)
    x = label_video_folder(tmp_path, frames=2, size=(16, 16))
    assert (x.labels[0, :, :8, :8] == ROAD).all() and (x.labels[0, :, :8, 8:] == CAR).all()
    assert (x.labels[0, :, 8:, :8] == PEDESTRIAN).all() and (x.labels[0, :, 8:, 8:] == SKY).all()
    assert len(CITYSCAPES_TO_STREETS) == 34 and CITYSCAPES_TO_STREETS[0] == ROAD
    # written as Cityscapes labelIds, read back the same (lane marking has no Cityscapes id: it comes back as road)
    clips = _random_clips(1, 2)
    back = label_video_folder(write_label_video(tmp_path / "cs", clips, label_format="cityscapes"), frames=2,
                              size=(16, 16)).labels
    assert torch.equal(back, torch.where(clips.labels == LANE_MARKING, ROAD, clips.labels))
    assert STREETS_TO_CITYSCAPES[LANE_MARKING] == 7


def test_sequences_are_cut_into_clips(tmp_path):
    clips = _random_clips(2, 10)
    write_label_video(tmp_path / "a", clips[:1])                                     # 10 frames: 2 clips of 4
    write_label_video(tmp_path / "b", _random_clips(1, 3, seed=1))                   # 3 frames: skipped
    shutil.move(tmp_path / "b" / "clip000", tmp_path / "a" / "clip001")
    x = label_video_folder(tmp_path / "a", frames=4, size=(16, 16), label_map="streets")
    assert x.labels.shape == (2, 4, 16, 16)
    assert torch.equal(x.labels, clips.labels[0, :8].view(2, 4, 16, 16))
    # the images/ + labels/ layout, paired by stem, reads the same; resizing keeps the label ids
    seq = tmp_path / "c" / "seq"
    for t, f in enumerate(sorted((tmp_path / "a" / "clip000").glob("*_leftImg8bit.png"))):
        (seq / "images").mkdir(parents=True, exist_ok=True)
        (seq / "labels").mkdir(exist_ok=True)
        shutil.copy(f, seq / "images" / f"{t:04d}.png")
        shutil.copy(str(f).replace("_leftImg8bit", "_labelIds"), seq / "labels" / f"{t:04d}.png")
    y = label_video_folder(tmp_path / "c", frames=4, size=(16, 16), label_map="streets")
    assert torch.equal(y.labels, x.labels) and torch.equal(y.frames, x.frames)
    z = label_video_folder(tmp_path / "c", frames=5, size=(8, 12), label_map="streets")
    assert z.frames.shape == (2, 5, 3, 8, 12) and z.labels.max() < NUM_CLASSES and z.frames.abs().max() <= 1


def test_bad_folders_and_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="put Cityscapes-format sequences under ROOT/<sequence>/"):
        label_video_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no sequences found"):
        label_video_folder(tmp_path)

    _pair(tmp_path / "lonely" / "s", "s_0", 7)
    (tmp_path / "lonely" / "s" / "s_0_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"s_0_leftImg8bit\.png has no label map"):
        label_video_folder(tmp_path / "lonely")
    _pair(tmp_path / "orphan" / "s", "s_0", 7)
    (tmp_path / "orphan" / "s" / "s_0_leftImg8bit.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"s_0_labelIds\.png has no frame"):
        label_video_folder(tmp_path / "orphan")

    _pair(tmp_path / "sizes" / "s", "s_0", 7)
    _pair(tmp_path / "sizes" / "s", "s_1", 7, size=(16, 24))
    with pytest.raises(ValueError, match="frames of different sizes"):
        label_video_folder(tmp_path / "sizes", frames=2)

    for t in range(2):
        _pair(tmp_path / "ids" / "s", f"s_{t}", [[3, 9], [40, 7]], size=(2, 2))
    with pytest.raises(ValueError, match=re.escape("unknown label ids [9, 40]") + r".*s_0_labelIds\.png"):
        label_video_folder(tmp_path / "ids", frames=2, size=8, label_map="streets")
    with pytest.raises(ValueError, match=re.escape("unknown label ids [40]") + r".*s_0_labelIds\.png"):
        label_video_folder(tmp_path / "ids", frames=2, size=8)

    for t in range(3):
        _pair(tmp_path / "short" / "s", f"s_{t}", 7)
    with pytest.raises(ValueError, match="longest .* has 3; pass a smaller frames"):
        label_video_folder(tmp_path / "short", frames=4)
    with pytest.raises(ValueError, match="frames must be"):
        label_video_folder(tmp_path / "short", frames=1)
    with pytest.raises(ValueError, match="label_map must be"):
        label_video_folder(tmp_path / "short", frames=2, label_map="ade20k")
    _png(tmp_path / "short" / "s" / "s_0_labelIds.png", np.zeros((16, 16, 3)))
    with pytest.raises(ValueError, match="single-channel"):
        label_video_folder(tmp_path / "short", frames=2)
