"""StyleGAN / StyleGAN2 benchmark: training throughput of one G+D step (batch 32) at 32x32 and 64x64 for StyleGAN
configs A and F (at full resolution, no fade-in) and StyleGAN2 (lazy R1 every 16, path length every 4: the average
over a 16-step cycle); the modulated convolution as one grouped conv vs a per-sample loop; sampling images/s.
Prints tables and ends with one JSON line. Sizes are the cpu profile's (channels <= 64, channel_base 512); with
``--device cuda --sizes 32,64,128`` the same on a GPU.

    .venv/bin/python benchmarks/bench_stylegan.py [--steps 16] [--batch 32] [--threads 1] [--sizes 32,64]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from genlab.config import info, setup
from genlab.train import GANStepConfig, gan_state, make_gan_step
from genlab.models import stylegan, stylegan2
from genlab.nn.modulated import modulated_conv2d

SIZE = dict(max_channels=64, channel_base=512)


def build(model: str, res: int):
    if model == "stylegan2":
        c = stylegan2.StyleGAN2Config(resolution=res, **SIZE)
        return stylegan2.Generator(c), stylegan2.Discriminator(c), GANStepConfig(z_dim=c.z_dim, r1_gamma=0.1,
                                                                                 r1_every=16, pl_weight=2.0)
    c = stylegan.StyleGANConfig.of(model[-1], resolution=res, start_resolution=res, **SIZE)
    return stylegan.Generator(c), stylegan.Discriminator(c), GANStepConfig(z_dim=c.z_dim, r1_gamma=0.1, r1_every=16)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def gan_training(G, D, cfg: GANStepConfig, batch: int, device: torch.device):
    """(state, step, real): a G+D training step of ``make_gan_step`` (Adam, lr 2e-3, betas (0, 0.99)) and a fixed
    real batch (batch, C, R, R) in [-1, 1], for :func:`timed_gan_steps`."""
    G, D = G.to(device), D.to(device)
    state = gan_state(G, D, torch.optim.Adam(G.parameters(), 2e-3, betas=(0.0, 0.99)),
                      torch.optim.Adam(D.parameters(), 2e-3, betas=(0.0, 0.99)))
    c = G.config
    return state, make_gan_step(cfg), torch.rand(batch, c.image_channels, c.resolution, c.resolution,
                                                 device=device) * 2 - 1


def timed_gan_steps(state, step, real: torch.Tensor, steps: int, first: int = 0) -> float:
    """Seconds for ``steps`` G+D steps numbered first, first + 1, ... (the number decides the lazy R1 / PL steps)."""
    sync(real.device)
    t0 = time.perf_counter()
    for s in range(first, first + steps):
        state.step = s
        step(state, real)
    sync(real.device)
    return time.perf_counter() - t0


def train_images_per_s(model: str, res: int, steps: int, batch: int, device: torch.device) -> float:
    state, step, real = gan_training(*build(model, res), batch, device)
    timed_gan_steps(state, step, real, 2, first=1)                       # two warm-up steps without R1 / PL
    return steps * batch / timed_gan_steps(state, step, real, steps)


@torch.no_grad()
def sample_images_per_s(model: str, res: int, batch: int, device: torch.device, reps: int = 5) -> float:
    G = build(model, res)[0].to(device).eval()
    z = torch.randn(batch, G.config.z_dim, device=device)
    G(z)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        G(z)
    sync(device)
    return reps * batch / (time.perf_counter() - t0)


def modconv_ms(batch: int, channels: int, res: int, device: torch.device, reps: int = 10) -> tuple[float, float, float]:
    """(grouped ms, loop ms, max |difference|) for one 3x3 modulated conv with demodulation."""
    x = torch.randn(batch, channels, res, res, device=device)
    w = torch.randn(channels, channels, 3, 3, device=device) / (9 * channels) ** 0.5
    s = torch.rand(batch, channels, device=device) + 0.5

    def loop():
        out = []
        for b in range(batch):
            wb = w * s[b][None, :, None, None]
            wb = wb * torch.rsqrt(wb.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
            out.append(F.conv2d(x[b:b + 1], wb, padding=1))
        return torch.cat(out)

    times = []
    for fn in (lambda: modulated_conv2d(x, w, s), loop):
        fn()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync(device)
        times.append((time.perf_counter() - t0) / reps * 1000)
    diff = float((modulated_conv2d(x, w, s) - loop()).abs().max())
    return times[0], times[1], diff


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=16, help="timed steps (16: one full lazy-R1 cycle)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    run = setup("gpu" if a.device == "cuda" else "cpu", 0, threads=a.threads)
    device = torch.device(a.device)
    sizes = [int(s) for s in a.sizes.split(",")]
    res = {"bench": "stylegan", "machine": f"{platform.machine()} {info()['threads']} threads, {info()['device_name']}",
           "device": str(device), "torch": torch.__version__, "batch": a.batch, "steps": a.steps, **SIZE}
    models = ["config_A", "config_F", "stylegan2"]
    print(f"G+D training step, batch {a.batch}, {info()['threads']} thread(s), device {device}: images/s")
    print(f"{'res':>5} " + " ".join(f"{m:>12}" for m in models))
    for r in sizes:
        row = {m: train_images_per_s(m, r, a.steps, a.batch, device) for m in models}
        for m, v in row.items():
            res[f"train_images_per_s_{m}_{r}"] = round(v, 1)
        print(f"{r:>5} " + " ".join(f"{v:12.0f}" for v in row.values()))
    print(f"\nsampling (eval, batch {a.batch}): images/s")
    for r in sizes:
        row = {m: sample_images_per_s(m, r, a.batch, device) for m in models}
        for m, v in row.items():
            res[f"sample_images_per_s_{m}_{r}"] = round(v, 1)
        print(f"{r:>5} " + " ".join(f"{v:12.0f}" for v in row.values()))
    print("\nmodulated 3x3 conv with demodulation, batch 32: grouped conv vs per-sample loop (ms)")
    for channels, r in ((64, 16), (32, 32)):
        g, l, diff = modconv_ms(a.batch, channels, r, device)
        res[f"modconv_grouped_ms_{channels}ch_{r}"] = round(g, 3)
        res[f"modconv_loop_ms_{channels}ch_{r}"] = round(l, 3)
        print(f"  {channels} ch at {r}x{r}: grouped {g:.2f} ms, loop {l:.2f} ms ({l / g:.1f}x), max |diff| {diff:.1e}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
