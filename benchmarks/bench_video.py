"""Video GAN benchmark: G+D training steps per second (clips/s) of the five recipes of notebook 07 in their cpu
configuration (16 frames, 32x32, batch 16), and the critics' cost: FLOPs (forward) and forward+backward time of
D_S (k = 4 random frames) + D_T (the clip pooled 2x2) against one full-resolution full-clip 3-D critic. Prints a
table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_video.py [--steps 10] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.config import info, setup
from genlab.models.dvdgan import SpatialDiscriminator, pixel_ratio, pool_clip, random_frames
from genlab.models.videogan import VideoDiscriminator
from genlab.train import GANStepConfig, gan_state, make_gan_step
from genlab.worlds.moving_digits import moving_digits
from genlab.zoo import get_recipe
from genlab.zoo.videogan import CRITICS, make_critics

RECIPES = ["videogan_single_z", "videogan_per_frame", "dvdgan_digits", "dvdgan_digits_ds", "dvdgan_digits_dt"]


def clips_per_s(name: str, steps: int, device: torch.device) -> float:
    recipe = get_recipe(name)
    cfg = recipe.config("cpu")
    t = cfg.train
    G = recipe.build(cfg.as_dict()["model"]).to(device)
    nets, critics = make_critics(CRITICS[t.critics], G.config, t.k_frames)
    nets = {k: v.to(device) for k, v in nets.items()}
    opts = {k: torch.optim.Adam(v.parameters(), t.lr_d, betas=t.betas) for k, v in nets.items()}
    state = gan_state(G, nets, torch.optim.Adam(G.parameters(), t.lr_g, betas=t.betas), opts)
    step = make_gan_step(GANStepConfig(loss=t.loss, z_dim=G.config.z_dim), critics=critics)
    real = (moving_digits("train", t.batch_size, digits=1).videos * 2 - 1).to(device)
    for _ in range(2):
        step(state, real)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(state, real)
    return steps * t.batch_size / (time.perf_counter() - t0)


def critic_cost(device: torch.device, width: int = 16, k: int = 4, repeats: int = 10) -> dict:
    x = (moving_digits("train", 16, digits=1).videos * 2 - 1).to(device)
    full = VideoDiscriminator(1, width, 32, 16).to(device)
    d_s, d_t = SpatialDiscriminator(1, width).to(device), VideoDiscriminator(1, width, 16, 16).to(device)

    def flops(fn) -> int:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    def seconds(fn) -> float:
        fn().backward()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn().backward()
        return (time.perf_counter() - t0) / repeats

    f_full = lambda: full(x).sum()                                                   # noqa: E731
    f_dual = lambda: d_s(random_frames(x, k)).sum() + d_t(pool_clip(x)).sum()        # noqa: E731
    return {"flops_full": flops(f_full), "flops_dual": flops(f_dual), "ms_full": 1000 * seconds(f_full),
            "ms_dual": 1000 * seconds(f_dual), "pixel_ratio": pixel_ratio(16, 32, k)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = setup("cpu", 0)
    rates = {name: clips_per_s(name, args.steps, run.device) for name in RECIPES}
    cost = critic_cost(run.device)
    print(f"device {run.device}, {args.threads} thread(s), torch {torch.__version__}, {platform.processor() or '?'}")
    for name, r in rates.items():
        print(f"{name:22s} {r:7.1f} clips/s (G+D step, batch 16, 16x32x32)")
    print(f"critic forward FLOPs: full-clip 3-D critic {cost['flops_full'] / 1e6:.1f} M, D_S + D_T "
          f"{cost['flops_dual'] / 1e6:.1f} M (ratio {cost['flops_dual'] / cost['flops_full']:.3f}; pixel ratio "
          f"{cost['pixel_ratio']:.3f}); forward+backward {cost['ms_full']:.1f} ms vs {cost['ms_dual']:.1f} ms")
    print(json.dumps({"bench": "video", "threads": args.threads, "clips_per_s": rates, **cost, "info": info()}))


if __name__ == "__main__":
    main()
