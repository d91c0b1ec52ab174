"""Real videos from a local folder you name (never downloaded): every clip of every video file, as (N, T, 3, S, S).

Decoding uses PyAV (``av``, pinned in pyproject.toml): its wheels bundle their own FFmpeg libraries, so no system
FFmpeg is needed and the same decoder runs on every machine; it decodes frames in-process (imageio-ffmpeg pipes a
bundled ffmpeg executable instead, a subprocess per file). Frames are centre-cropped to a square, resized
(antialiased bilinear) to ``size`` x ``size`` and cut into consecutive, non-overlapping clips of ``frames`` frames
(taking every ``stride``-th frame). Values are float32 in [0, 1], RGB.

    clips = video_folder("~/videos/dance", frames=16, size=64)     # (N, 16, 3, 64, 64)

:func:`write_video` encodes a clip (T, C, H, W) to a file (tests, your own samples).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


class VideoFolderError(ValueError):
    """A video folder that cannot be read as asked; the message names the folder or file and the fix."""


def list_videos(folder: str | Path) -> list[Path]:
    """The video files under ``folder`` (recursively, sorted), by extension; a clear error if there are none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise VideoFolderError(f"video folder {root} does not exist: put your clips ({', '.join(VIDEO_EXTENSIONS)}) "
                               f"in a folder and pass its path")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if not files:
        raise VideoFolderError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {root}")
    return files


def _square(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (T, 3, size, size) float in [0, 1]: centre crop, then resize."""
    h, w = frames.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = frames[..., top:top + s, left:left + s].float() / 255.0
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=s > size, align_corners=False)
    return x.clamp(0, 1)


def read_video(path: str | Path, size: int, *, stride: int = 1, max_frames: int | None = None) -> torch.Tensor:
    """Every ``stride``-th frame of one file (at most ``max_frames``) -> (T, 3, size, size) float in [0, 1]."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = []
            for i, frame in enumerate(container.decode(stream)):
                if i % stride:
                    continue
                frames.append(torch.from_numpy(np.ascontiguousarray(frame.to_ndarray(format="rgb24"))))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise VideoFolderError(f"cannot decode {path}: {type(e).__name__}: {e} (is it a video file? re-encode it, "
                               f"e.g. to H.264 .mp4)") from None
    if not frames:
        raise VideoFolderError(f"{path} holds no video frames")
    return _square(torch.stack(frames).permute(0, 3, 1, 2), size)


def video_folder(folder: str | Path, frames: int = 16, size: int = 64, *, stride: int = 1,
                 max_clips: int | None = None) -> torch.Tensor:
    """All non-overlapping clips of ``frames`` frames from every video under ``folder`` -> (N, frames, 3, size, size)
    float in [0, 1]. Files shorter than one clip are an error that names them."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an int >= 2, got {frames!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int >= 8 (pixels), got {size!r}")
    clips, short = [], []
    for path in list_videos(folder):
        video = read_video(path, size, stride=stride)
        n = len(video) // frames
        if n == 0:
            short.append(f"{path.name} ({len(video)} frames)")
            continue
        clips.append(video[:n * frames].view(n, frames, *video.shape[1:]))
        if max_clips is not None and sum(len(c) for c in clips) >= max_clips:
            break
    if short and not clips:
        raise VideoFolderError(f"every video under {folder} is shorter than one clip of {frames} frames (stride "
                               f"{stride}): {', '.join(short)}; use fewer frames or longer videos")
    out = torch.cat(clips)
    return out[:max_clips] if max_clips is not None else out


def write_video(path: str | Path, clip: torch.Tensor, fps: int = 8, codec: str = "libx264") -> Path:
    """Encode a clip (T, C, H, W) in [0, 1] (C = 1 or 3; H, W even for H.264) to ``path``; returns the path."""
    import av

    if clip.dim() != 4 or clip.shape[1] not in (1, 3):
        raise ValueError(f"write_video expects a clip (T, C, H, W) with C = 1 or 3, got {tuple(clip.shape)}")
    frames = (clip.expand(-1, 3, -1, -1).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "0"}                                 # lossless luma: round trips stay close
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
