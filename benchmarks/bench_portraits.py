"""Deep Video Portraits benchmark (notebook 09): frames per second of the conditioning images (the tracker's
parametric render: shaded, correspondence, gaze) against the detailed "real" render of the target, of the
rendering-to-video network's forward pass (cpu config at 64x64, gpu config at 128x128, random init, batches of 32),
and of one training step of the cpu recipe (the recipe's own cGAN + 100 L1 step: D on real and fake, G through D
plus L1, both Adam updates; batch 8). Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_portraits.py [--threads 1]
"""
from __future__ import annotations

import json
import platform

import torch
from timing import best_of, threads_from_args

from genlab.config import info
from genlab.models.rendering_to_video import RenderingToVideo, make_discriminator
from genlab.train import Critic, GANStepConfig, gan_state, make_gan_step
from genlab.worlds.portraits import TARGET, conditioning, motion, recording, render_target
from genlab.zoo.portraits import Conditioned, portraits_config, render_video, training_batches


def main() -> None:
    threads = threads_from_args()
    out: dict[str, float] = {}
    params = motion(TARGET, 200)
    for r in (64, 128):
        out[f"conditioning_frames_per_s_{r}x{r}"] = 200 / best_of(lambda: conditioning(params, r))
        out[f"render_target_frames_per_s_{r}x{r}"] = 200 / best_of(lambda: render_target(params, TARGET, r))
    torch.manual_seed(0)
    for profile, frames in (("cpu", 64), ("gpu", 32)):
        cfg = portraits_config(profile).model
        net = RenderingToVideo(cfg).eval()
        cond = conditioning(motion(TARGET, frames), cfg.resolution)
        seconds = best_of(lambda: render_video(net, cond, batch_size=32), repeats=3 if profile == "cpu" else 1)
        out[f"network_{profile}_{cfg.resolution}x{cfg.resolution}_frames_per_s"] = frames / seconds
    # one step of the cpu recipe (genlab.zoo.portraits.train without fit: no EMA, no checkpoint)
    cfg = portraits_config("cpu")
    t, m = cfg.train, cfg.model
    clip = recording(TARGET, 64, 0, m.resolution)
    G, D = Conditioned(RenderingToVideo(m)), make_discriminator(m)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), t.lr, betas=t.betas),
                      torch.optim.Adam(D.parameters(), t.lr, betas=t.betas), ema_decay=t.ema_decay)
    step = make_gan_step(GANStepConfig(loss="nonsaturating"), critics=[Critic("D", loss="nonsaturating")],
                         g_input=lambda batch, n, device: batch,
                         g_extra=lambda fake, batch: {"l1": t.lambda_l1 * (fake[:, -3:] - batch[:, -3:]).abs().mean()})
    data = training_batches(clip.cond, clip.frames, m.window, t.batch_size)
    batch = data(0)
    out["train_step_cpu_64x64_batch8_s"] = best_of(lambda: step(state, batch))
    out["train_step_cpu_64x64_frames_per_s"] = t.batch_size / out["train_step_cpu_64x64_batch8_s"]
    for k, v in out.items():
        print(f"{k:45s} {v:10.3f}" if v < 10 else f"{k:45s} {v:10.1f}")
    print(json.dumps({"bench": "portraits", "threads": threads, "machine": platform.machine(), **info(),
                      **{k: round(v, 3) for k, v in out.items()}}))


if __name__ == "__main__":
    main()
