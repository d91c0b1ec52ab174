"""vid2vid benchmark (notebook 08): backward-warping throughput, the streets world's render time, and generation time
per frame of the per-frame generator (pix2pixHD-lite) and of vid2vid-lite (L = 2, sequential) in their cpu
configuration, forward only and forward + backward. Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_vid2vid.py [--threads 1]
"""
from __future__ import annotations

import json
import platform
import time

import torch
from timing import best_of, threads_from_args
import torch.nn.functional as F

from genlab.config import info
from genlab.nn.warp import warp
from genlab.worlds.streets import NUM_CLASSES, streets
from genlab.zoo import get_recipe


def main() -> None:
    threads = threads_from_args()
    out: dict[str, float] = {}
    for h, w in [(64, 64), (128, 256)]:
        img, flow = torch.randn(32, 3, h, w), 3 * torch.randn(32, 2, h, w)
        out[f"warp_frames_per_s_{h}x{w}"] = 32 / best_of(lambda: warp(img, flow))
    t0 = time.perf_counter()
    streets("test", 16, frames=12, size=(64, 64), start=1000)           # uncached clips
    out["render_frames_per_s_64x64"] = 16 * 12 / (time.perf_counter() - t0)
    clips = streets("test", 4, frames=9, size=(64, 64))
    onehot = F.one_hot(clips.labels, NUM_CLASSES).permute(0, 1, 4, 2, 3).float()
    for name in ("pix2pixhd_streets", "vid2vid_streets"):
        recipe = get_recipe(name)
        model = recipe.build(recipe.config("cpu").as_dict()["model"])
        if name == "vid2vid_streets":
            fwd = lambda: model(onehot).frames                           # noqa: E731
        else:
            fwd = lambda: model(onehot.flatten(0, 1))                   # noqa: E731
        with torch.no_grad():
            out[f"{name}_ms_per_frame_forward"] = 1000 * best_of(fwd) / (4 * 9)
        out[f"{name}_ms_per_frame_fwd_bwd"] = 1000 * best_of(lambda: fwd().mean().backward()) / (4 * 9)
    for k, v in out.items():
        print(f"{k:45s} {v:10.1f}")
    print(json.dumps({"bench": "vid2vid", "threads": threads, "machine": platform.machine(), **info(),
                      **{k: round(v, 2) for k, v in out.items()}}))


if __name__ == "__main__":
    main()
