"""2x up- and down-sampling of feature maps and images, the two ways the StyleGAN ablation compares them.

Progressive GAN (config A of Karras et al. 2019, Table 1) doubles with nearest-neighbour upsampling and halves with
2x2 average pooling. Config B ("+ tuning (incl. bilinear up/down)", Sec. 2 and Zhang 2019) low-pass filters both:

* bilinear upsampling (``F.interpolate(..., mode="bilinear", align_corners=False)``): each output pixel is a
  3/4 - 1/4 blend of its two nearest inputs per axis, i.e. the separable filter [1, 3, 3, 1] / 4 applied to the
  zero-stuffed input; at the border the missing neighbour is the edge pixel itself (out[0] = x[0]);
* antialiased bilinear downsampling (``antialias=True``): at a factor of 2 the triangle kernel covers four inputs per
  axis with weights [1, 3, 3, 1] / 8, the same binomial filter StyleGAN applies before its strided convolutions; at
  the border the tap that falls outside is dropped and the rest renormalized ([3, 3, 1] / 7).

Both take (B, C, H, W) and return (B, C, 2H, 2W) or (B, C, H/2, W/2).

Fast form on the CPU. Both filters are separable and linear, so per axis they are a small matrix A (2n x n up,
n/2 x n down; :func:`resampling_matrix`) and the 2-D resampling is  y = A_H x A_W^T  (for small maps the whole map at
once: vec(y) = (A_H kron A_W) vec(x)). One or two GEMMs beat torch's CPU interpolation kernels at StyleGAN's
feature-map sizes (forward + backward 1.7-3.7x at 8x8-32x32, benchmarks/bench_speed.py --parts) and compute the same
weighted sums (equal to float rounding, tests/test_stylegan.py; one exception: halving a 2-pixel-wide map, where torch
2.13's antialiased CPU kernel gives every output row the first row's value and the matrices do not). The matrices cost
O(n) multiply-adds per output pixel instead of 4 (up) or 16 (down), so maps larger than 64 pixels a side, and other
devices (not measured), use ``F.interpolate``.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

MODES = ("nearest", "bilinear")
_MATRIX_MAX_SIDE = 64               # matrix form up to 64x64 inputs (measured on the CPU; slower beyond ~128)
_ONE_GEMM_MAX = 4096                # entries of (A_H kron A_W) up to which one GEMM does the whole map


def _check(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"resampling mode must be one of {MODES}, got {mode!r}")


@functools.lru_cache(maxsize=None)
def _matrix64(n: int, up: bool) -> torch.Tensor:
    with torch.inference_mode(False), torch.no_grad():       # a plain tensor even if first built in inference mode
        j = torch.arange(n if up else n // 2)
        if up:                                               # out[2j]   = (x[j-1] + 3x[j]) / 4
            a = torch.zeros(2 * n, n, dtype=torch.float64)   # out[2j+1] = (3x[j] + x[j+1]) / 4
            a[2 * j, j] = a[2 * j + 1, j] = 0.75
            a[2 * j, (j - 1).clamp(min=0)] += 0.25           # edges: the missing neighbour is the edge pixel
            a[2 * j + 1, (j + 1).clamp(max=n - 1)] += 0.25
            return a
        a = torch.zeros(n // 2, n + 2, dtype=torch.float64)  # columns -1 .. n
        for t, weight in enumerate((1.0, 3.0, 3.0, 1.0)):    # out[j] = (x[2j-1] + 3x[2j] + 3x[2j+1] + x[2j+2]) / 8
            a[j, 2 * j + t] = weight
        a = a[:, 1:-1]                                       # drop the taps outside the image ...
        return a / a.sum(dim=1, keepdim=True)                # ... and renormalize: [3, 3, 1] / 7 at the edges


def resampling_matrix(n: int, up: bool) -> torch.Tensor:
    """The bilinear 2x resampling of one axis of length n as a matrix: (2n, n) up, (n/2, n) antialiased down.

    Row r holds the weights output r gives the inputs (rows sum to 1), float64; n must be even to go down.
    """
    if n < 1 or (not up and n % 2):
        raise ValueError(f"cannot {'up' if up else 'down'}sample an axis of length {n}")
    return _matrix64(n, up).clone()


def _resample_by_matrices(x: torch.Tensor, up: bool) -> torch.Tensor:
    """y = A_H x A_W^T for x (..., H, W) -> (..., H', W')."""
    *lead, h, w = x.shape
    a_h, a_w = _matrix64(h, up).to(x.dtype), _matrix64(w, up).to(x.dtype)
    hh, ww, n = a_h.shape[0], a_w.shape[0], math.prod(lead)
    if hh * ww * h * w <= _ONE_GEMM_MAX:                                           # small maps: one GEMM
        return (x.reshape(n, h * w) @ torch.kron(a_h, a_w).t()).reshape(*lead, hh, ww)
    y = x.reshape(n * h, w) @ a_w.t()                                              # along W: x A_W^T
    return torch.matmul(a_h, y.reshape(n, h, ww)).reshape(*lead, hh, ww)           # along H: A_H (x A_W^T)


def _use_matrices(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.is_floating_point() and max(x.shape[-2:]) <= _MATRIX_MAX_SIDE


def upsample(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W): nearest neighbour (ProGAN) or bilinear (StyleGAN)."""
    _check(mode)
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if _use_matrices(x):
        return _resample_by_matrices(x, up=True)
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def downsample(x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/2, W/2): 2x2 average pooling ("nearest" family, ProGAN) or the [1, 3, 3, 1] / 8
    antialiased bilinear filter (StyleGAN). H and W must be even."""
    _check(mode)
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"downsample needs an even height and width, got {tuple(x.shape[-2:])}")
    if mode == "nearest":
        return F.avg_pool2d(x, 2)
    if _use_matrices(x):
        return _resample_by_matrices(x, up=False)
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)


def resize_to(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Halve (B, C, S, S) repeatedly down to (B, C, size, size); S / size must be a power of 2."""
    s = x.shape[-1]
    if size > s or s % size or (s // size) & (s // size - 1):
        raise ValueError(f"cannot halve a {s}x{s} image down to {size}x{size}: the ratio must be a power of 2")
    while x.shape[-1] > size:
        x = downsample(x, mode)
    return x
