"""Reconstruction quality of images against a reference: PSNR (and the MSE it is made of).

PSNR(x, y) = 10 log10(MAX^2 / MSE(x, y)) dB, per image, with MAX = 1 for images in [0, 1]; :func:`psnr` averages the
per-image values (the usual convention of VQ-VAE / codec papers: a mean over images, not the PSNR of the mean MSE).
:func:`ssim` is the structural similarity of Wang et al. 2004 (Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03),
computed by torchmetrics, averaged over images.
"""
from __future__ import annotations

import torch


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.shape != y.shape or x.dim() < 2:
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (x, y)]
        raise ValueError(f"psnr needs two image batches of the same shape (B, C, H, W), got {shapes[0]} and "
                         f"{shapes[1]}")
    if not (x.is_floating_point() and y.is_floating_point()):
        raise TypeError(f"psnr needs float images in [0, max_value], got {x.dtype} and {y.dtype} (divide uint8 by 255)")


SSIM_CHUNK = 16


def psnr_per_image(x: torch.Tensor, y: torch.Tensor, max_value: float = 1.0) -> torch.Tensor:
    """(B, ...) and (B, ...) -> (B,) float64 PSNR in dB; identical images give +inf."""
    _check(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    return 10 * torch.log10(max_value ** 2 / mse)                # PSNR = 10 log10(MAX^2 / MSE)


def psnr(x: torch.Tensor, y: torch.Tensor, max_value: float = 1.0) -> float:
    """The mean over images of :func:`psnr_per_image` (dB)."""
    return float(psnr_per_image(x, y, max_value).mean())


def ssim(x: torch.Tensor, y: torch.Tensor, max_value: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004) of image batches (B, C, H, W) in [0, max_value], via torchmetrics: the mean over
    images of each image's mean SSIM map (computed SSIM_CHUNK images at a time); 1 for identical images."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check(x, y)
    per_image = [structural_similarity_index_measure(a.double(), b.double(), data_range=max_value, reduction="none")
                 for a, b in zip(x.split(SSIM_CHUNK), y.split(SSIM_CHUNK))]   # chunks: torchmetrics' peak memory
    return float(torch.cat(per_image).mean())                                 # grows ~20 MB per 64x64 image
