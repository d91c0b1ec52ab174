"""PixelCNN benchmark: naive vs cached sampling of 16 MNIST digits with the shipped Gated PixelCNN (times, speed-up,
whether the samples are identical), and the training throughput (images/s) of the three zoo models' cpu configs.
Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_pixelcnn.py [--n 16] [--train-steps 6] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from genlab.zoo import load_pretrained
from genlab.config import setup
from genlab.data import mnist5k
from genlab.metrics.likelihood import bits_per_dim
from genlab.models.pixelcnn_sampling import sample_cached, sample_naive
from genlab.zoo import get_recipe


def sampling(n: int) -> dict:
    model = load_pretrained("gated_pixelcnn_mnist").model
    t0 = time.perf_counter()
    naive = sample_naive(model, n, 28, generator=torch.Generator().manual_seed(0))
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = sample_cached(model, n, 28, generator=torch.Generator().manual_seed(0))
    t_cached = time.perf_counter() - t0
    return {"n_images": n, "naive_s": round(t_naive, 2), "cached_s": round(t_cached, 2),
            "speedup_x": round(t_naive / t_cached, 1), "identical": bool(torch.equal(naive, cached))}


def timed_train_steps(model, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor | None, batch: int,
                      steps: int, first: int = 0) -> float:
    """Seconds for ``steps`` training steps (forward, bits/dim loss, backward, optimizer step) on consecutive batches
    of x (N, C, H, W) uint8 from batch number ``first`` on (wrapping around); y: the labels of a class-conditional
    model, else None."""
    t0 = time.perf_counter()
    for s in range(first, first + steps):
        i = s * batch % (len(x) - batch + 1)
        xb = x[i:i + batch]
        loss = bits_per_dim(model(xb) if y is None else model(xb, y[i:i + batch]), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def throughput(name: str, steps: int) -> float:
    """Images/s of the recipe's cpu model and batch size: forward, bits/dim loss, backward, AdamW step."""
    recipe = get_recipe(name)
    cfg = recipe.config("cpu")
    model = recipe.build(cfg.as_dict()["model"])
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = mnist5k("train", as_uint8=True)
    b = cfg.train.batch_size
    y = y if getattr(cfg.model, "n_classes", 0) else None
    timed_train_steps(model, opt, x, y, b, 2)                            # two warm-up steps
    return steps * b / timed_train_steps(model, opt, x, y, b, steps, first=2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16, help="images to sample")
    ap.add_argument("--train-steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    setup("cpu", 0, threads=a.threads or None)
    s = sampling(a.n)
    print(f"sampling {s['n_images']} digits, shipped gated_pixelcnn_mnist: naive {s['naive_s']:.1f} s, cached "
          f"{s['cached_s']:.2f} s -> {s['speedup_x']:.0f}x (target >= 50x), identical: {s['identical']}")
    train = {}
    for name in ("pixelcnn_mnist", "gated_pixelcnn_mnist", "gated_pixelcnn_mnist_cond"):
        train[name] = round(throughput(name, a.train_steps), 1)
        print(f"training throughput {name:28s} {train[name]:7.1f} images/s")
    print(json.dumps({"bench": "pixelcnn", "machine": platform.processor() or platform.machine(),
                      "threads": torch.get_num_threads(), "sampling": s, "train_images_per_s": train}))


if __name__ == "__main__":
    main()
