"""Evaluation batch size on a CPU: seconds for the course's forward-only metrics at several batch sizes (bits/dim of
the shipped Gated PixelCNN over 256 test digits; FID-faces features of 1000 test faces; VQ-VAE-2 bottom-prior bits
of 500 code maps). The library's defaults (evaluate_bpd 16, fid.features 100, prior_bits 64) come from this table:
small batches keep the activations in cache. Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_eval_batch.py [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from genlab.zoo import load_pretrained
from genlab.data import mnist5k
from genlab.metrics.fid import features
from genlab.metrics.likelihood import evaluate_bpd
from genlab.worlds.faces import faces
from genlab.zoo.vqvae import encode_codes
from genlab.zoo.vqvae_prior import prior_bits


def seconds(fn, repeat: int = 2) -> float:
    fn()                                                        # warm-up (allocator, oneDNN kernels)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return round(best, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x_digits, _ = mnist5k("test", as_uint8=True)
    x_digits = x_digits[:256]
    gated = load_pretrained("gated_pixelcnn_mnist").model.float()
    x_faces, _ = faces("test", 1000, 32)
    vq = load_pretrained("vqvae2_faces64").model.float()
    codes = encode_codes(vq, faces("test", 500, 64, as_uint8=True)[0])
    bottom = load_pretrained("vqvae2_faces64_prior_bottom").model.float()
    jobs = {"evaluate_bpd gated, 256 digits": (lambda b: evaluate_bpd(gated, x_digits, batch_size=b), [250, 64, 32, 16]),
            "fid features faces, 1000 faces": (lambda b: features(x_faces, "faces", batch_size=b), [500, 100, 32]),
            "prior_bits bottom, 500 maps": (lambda b: prior_bits(bottom, codes["top"], codes["bottom"], batch_size=b),
                                            [500, 64, 16])}
    out = {}
    for name, (fn, sizes) in jobs.items():
        out[name] = {b: seconds(lambda: fn(b)) for b in sizes}
        print(f"{name:34s} " + "  ".join(f"batch {b}: {s:.2f} s" for b, s in out[name].items()), flush=True)
    print(json.dumps({"bench": "eval_batch", "threads": args.threads, "seconds": out}))


if __name__ == "__main__":
    main()
