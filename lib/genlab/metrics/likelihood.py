"""Exact negative log-likelihood of 8-bit images under a 256-way softmax per sub-pixel (PixelRNN / PixelCNN,
van den Oord et al. 2016, Sec. 2 and 5.1): nats per image and bits per dimension.

The logits layout every autoregressive model of the course returns (PixelRNN, PixelCNN, Gated PixelCNN):

    logits: (B, 256, C, H, W)  -- class axis second (as F.cross_entropy expects), then the image's own axes;
    logits[b, k, c, r, s] = unnormalized log p(x[b, c, r, s] = k | everything before it in raster and colour order).
    x:      (B, C, H, W) integer values in [0, 255] (uint8, or any integer dtype), the image the model saw.

NLL(x) = -sum_{c,r,s} log softmax(logits)[x_{c,r,s}]            (nats per image, Eq. 1 of the paper)
bits/dim = NLL(x) / (C * H * W * ln 2)                          (the per-sub-pixel average in bits)

A model that predicts all 256 values with equal probability scores exactly log2(256) = 8 bits/dim.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genlab.nn.eval_mode import evaluating

N_LEVELS = 256


def _check(logits: torch.Tensor, x: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 5 or logits.shape[1] != N_LEVELS:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must have shape (B, 256, C, H, W) (the 256 levels on axis 1), got {shape}; "
                         "reshape a (B, C*256, H, W) output with logits.view(B, C, 256, H, W).transpose(1, 2)")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a float tensor, got {logits.dtype}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be the images (B, C, H, W), got {tuple(x.shape) if isinstance(x, torch.Tensor) else x!r}")
    if x.is_floating_point() or x.dtype == torch.bool:
        raise TypeError(f"x must hold the integer pixel values 0..255 (uint8), got {x.dtype}: pass the uint8 images "
                        "(mnist5k(..., as_uint8=True)) or (x * 255).round().to(torch.uint8) for images in [0, 1]")
    b, _, c, h, w = logits.shape
    if tuple(x.shape) != (b, c, h, w):
        raise ValueError(f"x has shape {tuple(x.shape)} but the logits (B, 256, C, H, W) = {tuple(logits.shape)} "
                         f"describe images of shape {(b, c, h, w)}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > N_LEVELS - 1):
        raise ValueError(f"x values must lie in [0, 255], got [{int(x.min())}, {int(x.max())}]")


def bits_per_subpixel(logits: torch.Tensor, x_uint8: torch.Tensor) -> torch.Tensor:
    """-log2 p(x_{c,r,s} | x_<) of every sub-pixel: (B, C, H, W) float, exact from the logits (B, 256, C, H, W).
    Its mean over all sub-pixels is the bits/dim; it shows *where* a model spends its bits."""
    _check(logits, x_uint8)
    return F.cross_entropy(logits.float(), x_uint8.long(), reduction="none") / math.log(2.0)


@torch.no_grad()
def evaluate_bits_per_subpixel(model: torch.nn.Module, x_uint8: torch.Tensor, y: torch.Tensor | None = None, *,
                               batch_size: int = 16) -> torch.Tensor:
    """:func:`bits_per_subpixel` of ``model`` over the images ``x_uint8`` (N, C, H, W), batch by batch in eval mode
    -> (N, C, H, W) float32 on the CPU (``model(x, y)`` if ``y`` is given)."""
    device = next(model.parameters()).device
    out = []
    with evaluating(model):
        for i in range(0, len(x_uint8), batch_size):
            xb = x_uint8[i:i + batch_size].to(device)
            logits = model(xb) if y is None else model(xb, y[i:i + batch_size].to(device))
            out.append(bits_per_subpixel(logits, xb).cpu())
    return torch.cat(out) if out else torch.empty(0, *x_uint8.shape[1:])


def nats_per_image(logits: torch.Tensor, x_uint8: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """-log p(x) in nats for each image, exact from the logits (differentiable: usable as the training loss).

    logits: (B, 256, C, H, W); x_uint8: (B, C, H, W) integers in [0, 255].
    reduction: "mean" (scalar, mean over the batch), "sum" (scalar) or "none" (B,).
    """
    _check(logits, x_uint8)
    nll = F.cross_entropy(logits.float(), x_uint8.long(), reduction="none")   # -log p(x_{c,r,s} | x_<) : (B, C, H, W)
    per_image = nll.flatten(1).sum(1)                                          # chain rule: sum over sub-pixels
    if reduction == "none":
        return per_image
    if reduction == "mean":
        return per_image.mean()
    if reduction == "sum":
        return per_image.sum()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def bits_per_dim(logits: torch.Tensor, x_uint8: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative log-likelihood in bits per dimension (sub-pixel): nats_per_image / (C * H * W * ln 2).

    logits: (B, 256, C, H, W); x_uint8: (B, C, H, W) integers in [0, 255]. reduction as in :func:`nats_per_image`
    ("mean" over images equals the mean over all sub-pixels, since every image has C*H*W of them).
    """
    dims = math.prod(x_uint8.shape[1:]) if isinstance(x_uint8, torch.Tensor) else 1
    return nats_per_image(logits, x_uint8, reduction) / (dims * math.log(2.0))


@torch.no_grad()
def evaluate_bpd(model: torch.nn.Module, x_uint8: torch.Tensor, y: torch.Tensor | None = None, *,
                 batch_size: int = 16) -> float:
    """Mean bits/dim of ``model`` (``model(x) -> logits (B, 256, C, H, W)``, ``model(x, y)`` if ``y`` is given) over
    the images ``x_uint8`` (N, C, H, W), batch by batch in eval mode on the model's device. Small batches are the
    fast ones on a CPU (the activations stay in cache: up to 3x faster than batches of 250 here;
    benchmarks/bench_eval_batch.py)."""
    return float(evaluate_bits_per_subpixel(model, x_uint8, y, batch_size=batch_size).double().mean())


def bits_per_code(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Mean -log2 p(code) over all positions of code maps, for a K-way softmax per position (a prior over VQ codes).

    logits (B, K, H, W) float; codes (B, H, W) int64 in [0, K). A uniform prior scores exactly log2(K).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 4 or not logits.is_floating_point():
        raise ValueError(f"logits must be float (B, K, H, W), got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not isinstance(codes, torch.Tensor) or codes.shape != (logits.shape[0], *logits.shape[2:]) \
            or codes.is_floating_point():
        raise ValueError(f"codes must be integer (B, H, W) = {(logits.shape[0], *logits.shape[2:])} to match the "
                         f"logits {tuple(logits.shape)}, got "
                         f"{tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__}")
    return F.cross_entropy(logits, codes.long()) / math.log(2)   # -log2 p averaged over positions
