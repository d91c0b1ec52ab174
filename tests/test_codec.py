"""The JPEG baseline: round trip, the scan/header split, and the lowest quality reaching a target PSNR."""
import pytest
import torch

from genlab.metrics.codec import jpeg_at_psnr, jpeg_roundtrip
from genlab.metrics.image_quality import psnr


def _images(n=6, size=32):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])[None] * 200                   # smooth gradients ...
    noise = torch.rand(n, 1, size, size, generator=g) * 40                        # ... plus grey texture
    return (base + noise).clamp(0, 255).to(torch.uint8)


def test_roundtrip_is_close_at_high_quality_and_headers_are_shared():
    x = _images()
    dec, sizes, payloads = jpeg_roundtrip(x, 95)
    assert dec.shape == x.shape and dec.dtype == torch.uint8
    assert psnr(dec.float() / 255, x.float() / 255) > 30
    headers = sizes - payloads
    assert (payloads > 0).all() and (headers > 300).all()
    assert len(set(headers.tolist())) == 1          # same quality and size: identical headers, the scan differs
    low_dec, low_sizes, _ = jpeg_roundtrip(x, 10)
    assert (low_sizes < sizes).all() and psnr(low_dec.float() / 255, x.float() / 255) < psnr(dec.float() / 255,
                                                                                                x.float() / 255)


def test_colours_are_not_swapped():
    x = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    x[:, 0] = 220                                     # pure red stays red (RGB in, RGB out)
    dec, _, _ = jpeg_roundtrip(x, 90)
    assert dec[0, 0].float().mean() > 200 and dec[0, 2].float().mean() < 30


def test_jpeg_at_psnr_returns_the_lowest_quality_reaching_the_target():
    x = _images()
    target = psnr(jpeg_roundtrip(x, 50)[0].float() / 255, x.float() / 255) - 0.01
    r = jpeg_at_psnr(x, target)
    assert r.psnr >= target and r.quality <= 50
    below = psnr(jpeg_roundtrip(x, r.quality - 1)[0].float() / 255, x.float() / 255)
    assert below < target
    _, sizes, payloads = jpeg_roundtrip(x, r.quality)
    assert r.bits_per_image == pytest.approx(8 * sizes.double().mean().item())
    assert r.payload_bits_per_image == pytest.approx(8 * payloads.double().mean().item())


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="uint8"):
        jpeg_roundtrip(torch.zeros(1, 3, 8, 8), 50)
    with pytest.raises(ValueError, match="quality"):
        jpeg_roundtrip(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0)
    with pytest.raises(ValueError, match="quality 100"):
        jpeg_at_psnr(_images(2), 99.0)
