"""DCGAN benchmark: training throughput of one G+D step of genlab.train.gan (non-saturating loss) at 28x28x1, 32x32x3 and
64x64x3, with batch norm in D, and with a batch-norm-free D without R1, with R1 every step and with lazy R1 every 16
steps. Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_dcgan.py [--steps 20] [--batch 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from genlab.config import info, setup
from genlab.train import GANStepConfig, gan_state, make_gan_step
from genlab.models.dcgan import DCGANConfig, Discriminator, Generator

SHAPES = [(28, 1), (32, 3), (64, 3)]
VARIANTS = {  # name -> (batch norm in D, r1_gamma, r1_every)
    "bn": (True, 0.0, 1),
    "nobn": (False, 0.0, 1),
    "nobn_r1_every1": (False, 1.0, 1),
    "nobn_r1_every16": (False, 1.0, 16),
}


def images_per_s(size: int, channels: int, variant: str, steps: int, batch: int, device: torch.device) -> float:
    d_batchnorm, gamma, every = VARIANTS[variant]
    cfg = DCGANConfig(image_size=size, channels=channels, d_batchnorm=d_batchnorm)
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999)),
                      torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999)))
    step = make_gan_step(GANStepConfig(loss="nonsaturating", z_dim=cfg.z_dim, r1_gamma=gamma, r1_every=every))
    real = torch.rand(batch, channels, size, size, device=device) * 2 - 1
    for _ in range(3):  # warm-up, off the R1 schedule's step 0
        state.step = 1
        step(state, real)
    t0 = time.perf_counter()
    for s in range(steps):
        state.step = s
        logs = step(state, real)
        logs["g_loss"].item()  # wait for the step (matters on CUDA)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=32, help="timed steps per measurement (a multiple of 16 is fair "
                                                          "to lazy R1)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    run = setup("cpu", 0, threads=a.threads)
    res = {"bench": "dcgan", "machine": f"{platform.machine()} {info()['threads']} threads, {info()['device_name']}",
           "torch": torch.__version__, "batch": a.batch, "steps": a.steps, "loss": "nonsaturating"}
    print(f"DCGAN G+D step, batch {a.batch}, widths 32, z 64, {info()['threads']} thread(s): images/s")
    print(f"{'shape':>10} " + " ".join(f"{v:>16}" for v in VARIANTS))
    for size, channels in SHAPES:
        cfg = DCGANConfig(image_size=size, channels=channels)
        key = f"{size}x{size}x{channels}"
        res[f"params_g_{key}"] = sum(p.numel() for p in Generator(cfg).parameters())
        res[f"params_d_{key}"] = sum(p.numel() for p in Discriminator(cfg).parameters())
        row = {v: images_per_s(size, channels, v, a.steps, a.batch, run.device) for v in VARIANTS}
        for v, ips in row.items():
            res[f"images_per_s_{key}_{v}"] = round(ips, 1)
        print(f"{key:>10} " + " ".join(f"{ips:16.0f}" for ips in row.values()))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
