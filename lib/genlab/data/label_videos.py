"""Real label-map videos from a local folder you name (never downloaded), as a :class:`StreetClips` batch, so that
vid2vid (notebook 08) runs on real footage as it runs on the procedural streets world.

Two layouts are read; each sub-folder of ``root`` is one sequence, its frames in time order = sorted by name:

    root/<sequence>/<prefix>_leftImg8bit.png   (or .jpg)      Cityscapes style: a frame and its label map share
    root/<sequence>/<prefix>_labelIds.png                     <prefix>; *_gtFine_labelIds.png (Cityscapes' own
                                                              name) pairs too; other files (*_color.png, ...) are
                                                              ignored
    root/<sequence>/images/<stem>.png  (or .jpg)              paired by stem
    root/<sequence>/labels/<stem>.png

e.g. ``root/aachen/aachen_000000_000019_leftImg8bit.png`` + ``root/aachen/aachen_000000_000019_labelIds.png``.
Label maps are single-channel PNGs of integer ids (8-bit or 16-bit grey, or palette indices), never colour images.
(Cityscapes ships fine labels only for one frame in 30 of its video sequences: label the others with a segmenter,
e.g. the streets segmenter of notebook 08, and save its ids as *_labelIds.png.)

    clips = label_video_folder("~/data/street_videos", frames=12, size=(64, 128))    # StreetClips, B clips

Each sequence is cut into consecutive, non-overlapping clips of ``frames`` frames (the remainder is dropped; a
sequence shorter than one clip is skipped). Frames are resized to ``size`` = (H, W) with Pillow's bilinear filter
(which widens to an area average when shrinking), label maps with nearest neighbour. The fields:

- labels (B, T, H, W) int64, the streets world's classes (CLASSES): with ``label_map="cityscapes"`` Cityscapes
  labelIds are mapped by CITYSCAPES_TO_STREETS (below); with ``label_map="streets"`` the ids are already in
  [0, NUM_CLASSES) and any other id is an error;
- frames (B, T, 3, H, W) float32 in [-1, 1] (RGB);
- flow (B, T, 2, H, W): NOT ground truth but a reference estimate, OpenCV's DIS optical flow (Kroeger et al. 2016,
  preset MEDIUM, finest scale 0, 4-px patches below 96 px on the shorter side, else 8-px) on the resized grey
  frames, backward as everywhere in genlab (genlab.nn.warp): frame t -> t - 1, cur(p) ≈ prev(p + flow(p)), i.e.
  ``DIS.calc(cur, prev)``; flow[:, 0] = 0;
- occlusion (B, T, 1, H, W) in {0, 1}, estimated by the forward-backward consistency check (Sundaram et al. 2010):
  with the backward flow b = flow_t(p) and the forward flow f (frame t - 1 -> t, ``DIS.calc(prev, cur)``) read
  bilinearly at q = p + b, p is occluded where

      |b + f(q)|^2 > 0.01 (|b|^2 + |f(q)|^2) + 0.5        (pixels^2)

  or where q falls outside the image (as genlab.nn.warp.outside_mask); occlusion[:, 0] = 1;
- depth (B, T, 1, H, W): zeros -- depth is unknown for real data (nothing in genlab's vid2vid reads it).

CITYSCAPES_TO_STREETS (Cityscapes labelIds, Cordts et al. 2016 -> the 8 street classes): road 7, parking 9, rail
track 10 -> road; sidewalk 8 -> sidewalk; building, wall, fence, guard rail, bridge, tunnel 11-16 and pole,
polegroup, traffic light, traffic sign 17-20 -> building (the streets world has no poles or signs: they stand in
front of the facades); vegetation 21, terrain 22 -> tree; sky 23 -> sky; person 24, rider 25 -> pedestrian; car,
truck, bus, caravan, trailer, train, motorcycle, bicycle 26-33 -> car; static 4, dynamic 5, ground 6 -> sidewalk;
unlabeled, ego vehicle, rectification border, out of roi 0-3 and license plate -1 (stored as 255 in an 8-bit PNG)
-> road: vid2vid needs a class at every pixel, and these are mostly the car's bonnet and the image border at the
bottom. No Cityscapes id maps to lane marking (Cityscapes paints lane markings as road).

Measured on the streets world written with write_label_video and read back (16 test clips of 8 frames, 64x64, 2-core
CPU: 0.85 s to read, flow included): warping frame t - 1 by the estimated flow reproduces frame t with 0.36 times the
mean absolute error of zero flow on the pixels this module calls visible (0.29 for the exact flow on its exact
visible pixels); 0.68 at 32x32, 0.18 at 128x128. The check marks 21 % of the pixels of frames 1.. (the exact
occlusion: 11 %), but it is a mask of unreliable flow rather than of occlusion: most marked pixels are visible ones
where the estimate is wrong (EPE 5 px against 2 px elsewhere, mostly fast, textureless road and sidewalk near the
bottom, where a wrong flow still warps to the right colour), and it finds only ~12 % of the truly occluded pixels
(1-px bands along edges at this size). Treat the flow and occlusion of real clips as a reference, not a truth.

:func:`write_label_video` writes a StreetClips batch in the first layout (tests; notebook 08 shows the format).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.worlds.streets import (
    BUILDING,
    CAR,
    CLASSES,
    NUM_CLASSES,
    PEDESTRIAN,
    ROAD,
    SIDEWALK,
    SKY,
    TREE,
    StreetClips,
    check_label_video,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
LABEL_MAPS = ("cityscapes", "streets")

# Cityscapes labelIds 0..33 -> streets classes (index = labelId); -1 (255 in 8-bit PNGs) -> ROAD, see the module doc
CITYSCAPES_TO_STREETS: tuple[int, ...] = (
    ROAD, ROAD, ROAD, ROAD,                                  # 0-3 unlabeled, ego vehicle, rectification border, roi
    SIDEWALK, SIDEWALK, SIDEWALK,                            # 4-6 static, dynamic, ground
    ROAD, SIDEWALK, ROAD, ROAD,                              # 7-10 road, sidewalk, parking, rail track
    *(BUILDING,) * 6,                                        # 11-16 building, wall, fence, guard rail, bridge, tunnel
    *(BUILDING,) * 4,                                        # 17-20 pole, polegroup, traffic light, traffic sign
    TREE, TREE, SKY,                                         # 21-23 vegetation, terrain, sky
    PEDESTRIAN, PEDESTRIAN,                                  # 24-25 person, rider
    *(CAR,) * 8,                                             # 26-33 car, truck, bus, caravan, trailer, train, moto, bike
)
LICENSE_PLATE = -1
# streets classes -> a Cityscapes labelId (write_label_video(label_format="cityscapes")); lane marking -> road 7
STREETS_TO_CITYSCAPES: tuple[int, ...] = (7, 8, 11, 23, 21, 26, 24, 7)

_LUT = np.full(256, -1, dtype=np.int64)
_LUT[:len(CITYSCAPES_TO_STREETS)] = CITYSCAPES_TO_STREETS
_LUT[255] = CITYSCAPES_TO_STREETS[0]                         # license plate -1, wrapped to 8 bits

_FRAME_RE = re.compile(r"^(?P<key>.+)_leftImg8bit\.(png|jpe?g)$", re.IGNORECASE)
_LABEL_RE = re.compile(r"^(?P<key>.+?)(_gtFine|_gtCoarse)?_labelIds\.png$", re.IGNORECASE)
_LAYOUTS = ("ROOT/<sequence>/<prefix>_leftImg8bit.png + <prefix>_labelIds.png, or ROOT/<sequence>/images/<stem>.png "
            "+ ROOT/<sequence>/labels/<stem>.png")


# ---------------------------------------------------------------------------------------------- finding the files
def _pair(seq: Path, frames: dict[str, Path], labels: dict[str, Path]) -> list[tuple[Path, Path]]:
    """(frame, label) pairs in time order (sorted by key); a frame without its label map or vice versa is an error."""
    for key, path in sorted(frames.items()):
        if key not in labels:
            raise FileNotFoundError(f"frame {path} has no label map: add its label ids as a PNG ({_LAYOUTS}) or "
                                    f"remove the frame")
    for key, path in sorted(labels.items()):
        if key not in frames:
            raise FileNotFoundError(f"label map {path} has no frame: add its frame image ({_LAYOUTS}) or remove the "
                                    f"label map")
    return [(frames[k], labels[k]) for k in sorted(frames)]


def _sequence_files(seq: Path) -> list[tuple[Path, Path]]:
    """The (frame, label) pairs of one sequence folder in either layout; [] if it holds neither."""
    if (seq / "images").is_dir() or (seq / "labels").is_dir():
        def files(d: Path, exts) -> dict[str, Path]:
            return {p.stem: p for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() in exts} \
                if d.is_dir() else {}
        return _pair(seq, files(seq / "images", IMAGE_EXTENSIONS), files(seq / "labels", (".png",)))
    frames, labels = {}, {}
    for p in sorted(seq.iterdir()):
        if not p.is_file():
            continue
        if m := _FRAME_RE.match(p.name):
            frames[m["key"]] = p
        elif m := _LABEL_RE.match(p.name):
            labels[m["key"]] = p
    return _pair(seq, frames, labels) if frames or labels else []


def list_label_videos(root: str | Path) -> dict[str, list[tuple[Path, Path]]]:
    """The sequences under ``root``: {sequence name: [(frame path, label path), ...] in time order}, sorted by name;
    a clear error if ``root`` is missing, holds no sequence, or a frame and its label map do not pair up."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"label video folder {root} does not exist: put Cityscapes-format sequences under "
                                f"ROOT/<sequence>/ ({_LAYOUTS}) and pass ROOT")
    seqs = {}
    for seq in sorted(p for p in root.iterdir() if p.is_dir()):
        pairs = _sequence_files(seq)
        if pairs:
            seqs[seq.name] = pairs
    if not seqs:
        loose = any(_FRAME_RE.match(p.name) for p in root.iterdir() if p.is_file())
        hint = " (the frames lie directly in ROOT: move them into a sub-folder per sequence)" if loose else ""
        raise FileNotFoundError(f"no sequences found under {root}{hint}: expected {_LAYOUTS}")
    return seqs


# ---------------------------------------------------------------------------------------------- reading
def _image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file header (Pillow opens lazily)."""
    try:
        with Image.open(path) as img:
            return img.size
    except OSError as e:
        raise ValueError(f"cannot read image {path}: {e} (re-save it as PNG)") from None


def _check_sizes(name: str, pairs: list[tuple[Path, Path]]) -> None:
    first = pairs[0][0]
    size0 = _image_size(first)
    for frame, label in pairs:
        size = _image_size(frame)
        if size != size0:
            raise ValueError(f"frames of different sizes in sequence {name}: {frame.name} is {size[0]}x{size[1]} "
                             f"but {first.name} is {size0[0]}x{size0[1]} (W x H); resize them to one size or split "
                             f"the sequence")
        lsize = _image_size(label)
        if lsize != size:
            raise ValueError(f"label map {label} is {lsize[0]}x{lsize[1]} but its frame {frame.name} is "
                             f"{size[0]}x{size[1]} (W x H): label maps must have their frame's size")


def _read_labels(path: Path, label_map: str) -> np.ndarray:
    """A label PNG -> (H, W) uint8 streets class ids; unknown ids are an error that names them and the file."""
    with Image.open(path) as img:
        if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
            raise ValueError(f"label map {path} is a {img.mode} image: save the class ids as a single-channel (grey) "
                             f"PNG (Cityscapes *_labelIds.png, not *_color.png)")
        ids = np.asarray(img).astype(np.int64)
    if label_map == "streets":
        bad = np.unique(ids[(ids < 0) | (ids >= NUM_CLASSES)])
        allowed = f"label_map='streets' expects ids 0..{NUM_CLASSES - 1} ({', '.join(CLASSES)}); pass " \
                  f"label_map='cityscapes' for Cityscapes labelIds"
        out = ids
    else:
        ids = np.where(ids == LICENSE_PLATE, 255, ids)
        inside = (ids >= 0) & (ids <= 255)
        out = np.where(inside, _LUT[np.clip(ids, 0, 255)], -1)
        bad = np.unique(ids[out < 0])
        allowed = "label_map='cityscapes' expects Cityscapes labelIds 0..33 (or -1 / 255, license plate); pass " \
                  "label_map='streets' for the streets classes"
    if bad.size:
        shown = ", ".join(str(int(i)) for i in bad[:8]) + (", ..." if bad.size > 8 else "")
        raise ValueError(f"unknown label ids [{shown}] in {path}: {allowed}, or remap them")
    return out.astype(np.uint8)


def _load_pair(frame: Path, label: Path, label_map: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB and (H, W) uint8 class ids, resized to size = (H, W)."""
    h, w = size
    with Image.open(frame) as img:
        rgb = img.convert("RGB")
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.Resampling.BILINEAR)
    lab = Image.fromarray(_read_labels(label, label_map))
    if lab.size != (w, h):
        lab = lab.resize((w, h), Image.Resampling.NEAREST)
    return np.asarray(rgb, dtype=np.uint8), np.asarray(lab, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- flow and occlusion
def _dis(shape: tuple[int, int]):
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    patch = 4 if min(shape) < 96 else 8
    dis.setPatchSize(patch)
    dis.setPatchStride(patch // 2)
    return dis


def _fb_occlusion(bw: np.ndarray, fw: np.ndarray) -> np.ndarray:
    """(H, W) bool: the forward-backward check of the module doc for the backward flow bw (t -> t-1) and the forward
    flow fw (t-1 -> t), both (H, W, 2) float32 pixels (dx, dy)."""
    import cv2

    h, w = bw.shape[:2]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    qx, qy = gx + bw[..., 0], gy + bw[..., 1]
    fq = cv2.remap(fw, qx, qy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = ((bw + fq) ** 2).sum(-1)
    occ = err > 0.01 * ((bw ** 2).sum(-1) + (fq ** 2).sum(-1)) + 0.5
    return occ | (qx < 0) | (qx > w - 1) | (qy < 0) | (qy > h - 1)


def _flow_and_occlusion(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One clip (T, H, W, 3) uint8 -> backward flow (T, 2, H, W) float32 and occlusion (T, 1, H, W) float32."""
    import cv2

    t, h, w = rgb.shape[:3]
    flow = np.zeros((t, 2, h, w), np.float32)
    occ = np.ones((t, 1, h, w), np.float32)
    dis = _dis((h, w))
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb]
    for i in range(1, t):
        bw = dis.calc(grey[i], grey[i - 1], None)
        fw = dis.calc(grey[i - 1], grey[i], None)
        flow[i] = bw.transpose(2, 0, 1)
        occ[i, 0] = _fb_occlusion(bw, fw)
    return flow, occ


# ---------------------------------------------------------------------------------------------- the loader
def _check_size(size) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    ok = isinstance(size, (tuple, list)) and len(size) == 2 and \
        all(isinstance(s, int) and not isinstance(s, bool) and s >= 8 for s in size)
    if not ok:
        raise ValueError(f"size must be (H, W) with ints >= 8 (pixels), got {size!r}")
    return int(size[0]), int(size[1])


def label_video_folder(root: str | Path, *, frames: int = 12, size=(64, 64),
                       label_map: str = "cityscapes") -> StreetClips:
    """Every non-overlapping clip of ``frames`` frames of every sequence under ``root`` -> StreetClips (B clips, in
    sequence-name then time order), resized to ``size`` = (H, W); labels mapped by ``label_map`` ("cityscapes":
    Cityscapes labelIds, "streets": ids already in [0, NUM_CLASSES)). Flow and occlusion are OpenCV estimates and
    depth is zeros (module doc)."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an int >= 2, got {frames!r}")
    size = _check_size(size)
    if label_map not in LABEL_MAPS:
        raise ValueError(f"label_map must be one of {LABEL_MAPS}, got {label_map!r}")
    seqs = list_label_videos(root)
    longest = max(len(p) for p in seqs.values())
    if longest < frames:
        name = max(seqs, key=lambda k: len(seqs[k]))
        raise ValueError(f"every sequence under {root} is shorter than one clip of {frames} frames: the longest "
                         f"({name}) has {longest}; pass a smaller frames (<= {longest})")
    rgbs, labels, flows, occs = [], [], [], []
    for name, pairs in seqs.items():
        n = len(pairs) // frames
        if n == 0:
            continue
        _check_sizes(name, pairs)
        for c in range(n):
            loaded = [_load_pair(f, lab, label_map, size) for f, lab in pairs[c * frames:(c + 1) * frames]]
            rgb = np.stack([x for x, _ in loaded])
            flow, occ = _flow_and_occlusion(rgb)
            rgbs.append(rgb)
            labels.append(np.stack([y for _, y in loaded]))
            flows.append(flow)
            occs.append(occ)
    rgb = torch.from_numpy(np.stack(rgbs)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0
    lab = torch.from_numpy(np.stack(labels)).long()
    flow = torch.from_numpy(np.stack(flows))
    occ = torch.from_numpy(np.stack(occs))
    depth = torch.zeros(*lab.shape[:2], 1, *lab.shape[2:])
    return StreetClips(lab, rgb, flow, occ, depth)


# ---------------------------------------------------------------------------------------------- writing
def _save_png(img: Image.Image, path: Path) -> None:
    """Write to a temporary name, then rename (a half-written file never carries a name the loader reads)."""
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)


def write_label_video(root: str | Path, clips: StreetClips, label_format: str = "streets") -> Path:
    """Write each clip b of ``clips`` as the sequence ``root/clip{b:03d}/`` in the Cityscapes layout (module doc):
    frames as 8-bit RGB PNGs (from [-1, 1]), labels as 8-bit label-id PNGs, ``label_format="streets"`` (the class
    ids) or ``"cityscapes"`` (STREETS_TO_CITYSCAPES labelIds; lane marking -> road 7, read back as road). Returns
    ``root``."""
    if label_format not in LABEL_MAPS:
        raise ValueError(f"label_format must be one of {LABEL_MAPS}, got {label_format!r}")
    if not isinstance(clips, StreetClips):
        raise TypeError(f"write_label_video expects a StreetClips batch, got {type(clips).__name__}")
    check_label_video(clips.labels, clips.frames)
    root = Path(root).expanduser()
    lab = clips.labels.cpu().numpy()
    if label_format == "cityscapes":
        lab = np.asarray(STREETS_TO_CITYSCAPES)[lab]
    lab = lab.astype(np.uint8)
    rgb = ((clips.frames.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    rgb = rgb.permute(0, 1, 3, 4, 2).numpy()
    for b in range(len(lab)):
        name = f"clip{b:03d}"
        seq = root / name
        seq.mkdir(parents=True, exist_ok=True)
        for t in range(lab.shape[1]):
            prefix = f"{name}_{t:06d}"
            _save_png(Image.fromarray(np.ascontiguousarray(rgb[b, t])), seq / f"{prefix}_leftImg8bit.png")
            _save_png(Image.fromarray(np.ascontiguousarray(lab[b, t])), seq / f"{prefix}_labelIds.png")
    return root
