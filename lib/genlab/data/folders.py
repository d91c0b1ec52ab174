"""Real datasets read from a local folder the user names: MNIST in IDX format, and a folder of images.

Nothing here downloads (DESIGN.md: never download at run time). A missing folder, missing files, an empty folder, a
corrupt header or an unreadable image each raise an error that says what to put where.

Value conventions match the embedded data: images float32 in [0, 1], (N, C, H, W); labels int64.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

MNIST_HINT = ("MNIST is at https://yann.lecun.com/exdb/mnist/ or any mirror (Fashion-MNIST, in the same format, "
              "works too); gzipped or not")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_UBYTE = 0x08  # IDX type code for unsigned byte, the only one MNIST uses


def _existing_folder(folder: str | os.PathLike, what: str) -> Path:
    path = Path(folder).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"folder {path} does not exist: create it and put {what} in it "
                                f"(genlab never downloads data)")
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file, not a folder: pass the folder that holds {what}")
    return path


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or .gz) of unsigned bytes -> uint8 array with the shape its header declares.

    IDX header (LeCun et al.'s MNIST page): two zero bytes, a type byte (0x08 = ubyte), a byte with the number of
    dimensions d, then d big-endian uint32 sizes; the data follow, C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a truncated .gz raises EOFError
        raise ValueError(f"cannot read {path} ({e}): the file is damaged; download it again") from e
    fix = "the file is corrupt or not an IDX file; download it again"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: bad IDX header (magic number {raw[:4].hex() or 'missing'}): {fix}")
    if raw[2] != _IDX_UBYTE:
        raise ValueError(f"{path}: IDX type code 0x{raw[2]:02x}, expected 0x08 (unsigned byte): {fix}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions but is truncated: {fix}")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(shape)):
        raise ValueError(f"{path}: the header declares shape {shape} ({int(np.prod(shape))} bytes of data) but the "
                         f"file holds {len(raw) - header}: {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    # the standard name, gzipped or not; some mirrors write "train-images.idx3-ubyte" (dot instead of dash)
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def mnist_idx(folder: str | os.PathLike, split: str = "train", *,
              as_uint8: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MNIST (or Fashion-MNIST) from the four standard IDX files in ``folder``; never downloads.

    split: "train" (train-images-idx3-ubyte, train-labels-idx1-ubyte; 60,000) or "test" (t10k-...; 10,000).
    Each file may be gzipped (``.gz``). Returns the same conventions as :func:`genlab.data.mnist5k`: images
    (N, 1, 28, 28) float32 in [0, 1] (uint8 in [0, 255] if ``as_uint8``), labels (N,) int64 in [0, 9].
    """
    if split not in _IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    all_names = [n + ".gz" for pair in _IDX_FILES.values() for n in pair]
    path = _existing_folder(folder, f"the MNIST files {', '.join(all_names)} ({MNIST_HINT})")
    found = [_find_idx(path, stem) for stem in _IDX_FILES[split]]
    missing = [stem + ".gz" for stem, f in zip(_IDX_FILES[split], found) if f is None]
    if missing:
        raise FileNotFoundError(f"{' and '.join(missing)} not found in {path}: put the MNIST {split} files there "
                                f"({MNIST_HINT})")
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3:
        raise ValueError(f"{found[0]}: expected images of shape (N, H, W), the header says {images.shape}; "
                         f"is it a labels file? put the images file (…-images-idx3-ubyte) there")
    if labels.ndim != 1:
        raise ValueError(f"{found[1]}: expected labels of shape (N,), the header says {labels.shape}; "
                         f"is it an images file? put the labels file (…-labels-idx1-ubyte) there")
    if len(images) != len(labels):
        raise ValueError(f"{found[0].name} holds {len(images)} images but {found[1].name} holds {len(labels)} labels: "
                         f"the two files do not belong together; put a matching pair in {path}")
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W)
    y = torch.from_numpy(labels.astype(np.int64))
    return (x if as_uint8 else x.float() / 255.0), y


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every .png/.jpg/.jpeg file under ``folder`` (recursively, case-insensitive suffix), sorted by relative path."""
    path = _existing_folder(folder, "your images (.png/.jpg, subfolders are searched too)")
    files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(path).as_posix())


def image_folder(folder: str | os.PathLike, size: int, *, limit: int | None = None) -> torch.Tensor:
    """Load the images under ``folder`` (see :func:`list_images` for which and in what order); never downloads.

    Each image is turned upright (EXIF orientation), converted to RGB (alpha dropped, grey replicated),
    center-cropped to a square of its shorter side, then resized to ``size`` x ``size`` (PIL Lanczos, antialiased).
    limit: read only the first ``limit`` files. Returns (N, 3, size, size) float32 in [0, 1].
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int (the side of the square output), got {size!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"no images found under {Path(folder).expanduser()}: put .png or .jpg files there "
                                f"(subfolders are searched too)")
    out = np.empty((len(files[:limit]), size, size, 3), dtype=np.uint8)
    for i, file in enumerate(files[:limit]):
        try:
            with Image.open(file) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ValueError(f"cannot read image {file} ({e}): replace or remove that file") from e
        w, h = im.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        # crop first: resize(box=...) would let the filter reach pixels outside the square
        im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.LANCZOS)
        out[i] = np.asarray(im)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0
