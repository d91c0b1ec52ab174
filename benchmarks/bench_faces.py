"""Procedural faces benchmark: rendering throughput (faces/s, RGB pass, random factors and detail seeds) at 32, 64
and 128 pixels, and the time to build the cached ``faces("train")`` split (20,000 faces) at 64 pixels, on one
thread by default. Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_faces.py [--n 4000] [--threads 1] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from genlab.config import setup
from genlab.worlds.faces import faces, render_faces, sample_factors
from genlab.worlds.faces.dataset import _split_uint8


def faces_per_s(n: int, resolution: int, repeats: int) -> float:
    """Best of ``repeats`` timed renders of n faces (a busy machine only ever makes a run slower)."""
    f = sample_factors(n, torch.Generator().manual_seed(0))
    seeds = torch.arange(n)
    render_faces(f[:64], resolution, detail_seeds=seeds[:64])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        render_faces(f, resolution, detail_seeds=seeds)
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000, help="faces per timed render at 32 and 64 (a quarter at 128)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    setup("cpu", 0, threads=a.threads)
    rates = {}
    for res in (32, 64, 128):
        rates[res] = round(faces_per_s(a.n if res < 128 else a.n // 4, res, a.repeats), 1)
        print(f"render {res:3d} x {res:<3d} {rates[res]:8.0f} faces/s   (10,000 faces: {1e4 / rates[res]:5.1f} s)")
    _split_uint8.cache_clear()
    t0 = time.perf_counter()
    x, _ = faces("train", resolution=64, as_uint8=True)
    split_s = time.perf_counter() - t0
    print(f"faces('train') at 64 x 64: {len(x)} faces built in {split_s:.1f} s (cached afterwards)")
    print(json.dumps({"bench": "faces", "machine": platform.processor() or platform.machine(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "render_faces_per_s": {str(k): v for k, v in rates.items()},
                      "faces_train_64_build_s": round(split_s, 2), "n_train": len(x)}))


if __name__ == "__main__":
    main()
