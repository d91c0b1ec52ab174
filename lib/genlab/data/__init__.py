"""Embedded datasets (shipped or generated, offline) and loaders for real datasets from a local folder.

Embedded: :func:`mnist5k` (real MNIST digits), :func:`photo_patches` (natural-image patches from scikit-image's
sample photos). From a folder you name (never downloaded): :func:`mnist_idx` (MNIST IDX files),
:func:`image_folder` (png/jpg images), :func:`video_folder` (clips of every video file, decoded by PyAV's
bundled FFmpeg), :func:`label_video_folder` (Cityscapes-format label maps + frames, with a reference flow),
:func:`read_openpose_folder` (OpenPose BODY_25 JSON keypoints; :mod:`genlab.data.pose` also holds Everybody Dance
Now's global pose normalization and the temporal median filter of keypoints). Each docstring states the value range
and shapes. Procedural worlds with exact ground truth (the parametric faces, the ring of Gaussians) are in
:mod:`genlab.worlds`.
"""
from genlab.data.folders import image_folder, list_images, mnist_idx, read_idx
from genlab.data.mnist import mnist5k
from genlab.data.photos import PHOTOS, TEST_PHOTOS, TRAIN_PHOTOS, photo, photo_patches
from genlab.data.pose import (PoseStats, ankle_y, check_keypoints, median_filter, normalization_stats, normalize_poses,
                              pose_height, read_openpose_folder, write_openpose_folder)
from genlab.data.videos import VideoFolderError, read_video, video_folder, write_video

__all__ = ["mnist5k", "photo_patches", "photo", "PHOTOS", "TRAIN_PHOTOS", "TEST_PHOTOS",
           "mnist_idx", "image_folder", "list_images", "read_idx", "video_folder", "read_video", "write_video",
           "VideoFolderError", "label_video_folder", "write_label_video", "PoseStats", "ankle_y", "check_keypoints",
           "median_filter", "normalization_stats", "normalize_poses", "pose_height", "read_openpose_folder",
           "write_openpose_folder"]


def __getattr__(name: str):
    """label_video_folder / write_label_video on first use: their module builds on genlab.worlds.streets, and
    ``import genlab.data`` stays free of the worlds."""
    if name in ("label_video_folder", "write_label_video"):
        from genlab.data import label_videos
        return getattr(label_videos, name)
    raise AttributeError(f"module 'genlab.data' has no attribute {name!r}")
