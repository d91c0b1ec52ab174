"""Embedded datasets (shipped or generated, offline) and loaders for real datasets from a local folder.

Embedded: :func:`mnist5k` (real MNIST digits), :func:`photo_patches` (natural-image patches from scikit-image's
sample photos). From a folder you name (never downloaded): :func:`mnist_idx` (MNIST IDX files),
:func:`image_folder` (png/jpg images). Procedural worlds with exact ground truth: :func:`faces` / :func:`render_faces`
(the parametric faces of genlab.data.faces). Each docstring states the value range and shapes.

Note: ``genlab.data.faces`` here is the *function* (the fixed dataset); the module's other names are imported with
``from genlab.data.faces import ...``, which always reaches the module.
"""
from genlab.data.faces import (FACTOR_NAMES, FACTORS, N_FACTORS, check_factors, denormalize_factors, eye_boxes, faces,
                               neutral_factors, normalize_factors, render_faces, render_passes, render_sequence,
                               sample_factors)
from genlab.data.folders import image_folder, list_images, mnist_idx, read_idx
from genlab.data.mnist import mnist5k
from genlab.data.photos import PHOTOS, TEST_PHOTOS, TRAIN_PHOTOS, photo, photo_patches

__all__ = ["mnist5k", "photo_patches", "photo", "PHOTOS", "TRAIN_PHOTOS", "TEST_PHOTOS",
           "mnist_idx", "image_folder", "list_images", "read_idx",
           "faces", "render_faces", "render_passes", "render_sequence", "sample_factors", "neutral_factors",
           "normalize_factors", "denormalize_factors", "check_factors", "eye_boxes", "FACTORS", "FACTOR_NAMES",
           "N_FACTORS"]
