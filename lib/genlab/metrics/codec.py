"""A standard-codec baseline for learnt compression: JPEG (OpenCV's libjpeg) at the quality that matches a target PSNR.

    base = jpeg_at_psnr(images_u8, target_db=27.75)     # the smallest quality whose mean PSNR reaches the target
    base.quality, base.psnr, base.bits_per_image, base.payload_bits_per_image

A JPEG file is its headers (JFIF, quantization and Huffman tables: about 600 bytes, the same for every image of one
quality) and the entropy-coded scan. A learnt code with a shared prior does not count its "tables" (the prior's
weights) per image, so both are reported: ``bits_per_image`` (whole files) and ``payload_bits_per_image`` (the bytes
after the start-of-scan header, what a codec with shared tables would send). PSNR is
:func:`genlab.metrics.image_quality.psnr` (mean over images of 10 log10(1 / MSE), pixels in [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genlab.metrics.image_quality import psnr

_SOS = b"\xff\xda"   # start-of-scan marker: its segment header, then the entropy-coded data


@dataclass(frozen=True)
class JpegResult:
    quality: int                   # libjpeg quality, 1..100
    psnr: float                    # mean PSNR of the decoded images (dB)
    bits_per_image: float          # mean whole-file size, bits
    payload_bits_per_image: float  # mean size of the entropy-coded scan (after the SOS segment), bits


def _payload_bytes(data: bytes) -> int:
    start = data.index(_SOS)
    header_len = int.from_bytes(data[start + 2:start + 4], "big")      # the SOS segment's length field
    return len(data) - (start + 2 + header_len) - 2                    # minus the end-of-image marker


def jpeg_roundtrip(images_u8: torch.Tensor, quality: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode and decode (N, 3, H, W) uint8 RGB images as baseline JPEG (4:2:0) at ``quality``.

    Returns the decoded images (N, 3, H, W) uint8, the file sizes (N,) and the scan sizes (N,) in bytes."""
    import cv2

    if images_u8.dtype != torch.uint8 or images_u8.ndim != 4 or images_u8.shape[1] != 3:
        raise ValueError(f"jpeg_roundtrip wants (N, 3, H, W) uint8 RGB images, got {tuple(images_u8.shape)} "
                         f"{images_u8.dtype}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    decoded, sizes, payloads = [], [], []
    for img in images_u8.permute(0, 2, 3, 1).numpy():
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        data = buf.tobytes()
        decoded.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy())
        sizes.append(len(data))
        payloads.append(_payload_bytes(data))
    out = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous()
    return out, torch.tensor(sizes), torch.tensor(payloads)


def jpeg_at_psnr(images_u8: torch.Tensor, target_db: float) -> JpegResult:
    """The lowest JPEG quality whose mean PSNR over ``images_u8`` (N, 3, H, W) uint8 reaches ``target_db``
    (bisection over 1..100; PSNR grows with quality), with its mean sizes."""
    x = images_u8.float() / 255

    def measure(q: int) -> JpegResult:
        dec, sizes, payloads = jpeg_roundtrip(images_u8, q)
        return JpegResult(q, psnr(dec.float() / 255, x), 8 * float(sizes.double().mean()),
                          8 * float(payloads.double().mean()))

    lo, hi = 1, 100
    best = measure(hi)
    if best.psnr < target_db:
        raise ValueError(f"JPEG at quality 100 reaches only {best.psnr:.2f} dB < {target_db:.2f} dB")
    while lo < hi:                                   # invariant: quality hi reaches the target
        mid = (lo + hi) // 2
        r = measure(mid)
        if r.psnr >= target_db:
            hi, best = mid, r
        else:
            lo = mid + 1
    return best if best.quality == hi else measure(hi)
