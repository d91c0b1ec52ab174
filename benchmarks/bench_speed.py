"""Training speed at the configurations of issue 22, against the reference implementations measured there (one thread,
the same machine): images/s of a full training step (forward, backward, Adam), median of ``--runs`` timed runs after
a warm-up, with one thread and with all threads; also images per CPU second of the process (with one thread, what
the step costs when other jobs share the cores). Prints a table and ends with one JSON line.

* Gated PixelCNN, MNIST 28x28, batch 128, 64 channels, 8 layers (head 128): UvA tutorial 12 ran 19.1 img/s;
* StyleGAN2 G + D, non-saturating loss, D frozen in the G step, no R1 / path length, 32x32, batch 32, channels
  128/128/64/32, z = w = 512: NVlabs stylegan2-ada-pytorch ran 44.1 img/s;
* the same steps for the cpu configs of the shipped ``gated_pixelcnn_mnist`` and ``stylegan2_faces32``.

The references are the issue's numbers, not re-measured here. To measure an older genlab ("before"), put its lib/
first on PYTHONPATH: ``PYTHONPATH=/path/to/old/lib .venv/bin/python benchmarks/bench_speed.py``.

With ``--parts`` (the current genlab only), StyleGAN2's pieces alone: the modulated conv's grouped vs training form,
bilinear resampling by F.interpolate vs genlab.nn.resample's matrix products.

    .venv/bin/python benchmarks/bench_speed.py [--runs 3] [--threads 1,0] [--models pixelcnn,stylegan2,...] [--parts]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import genlab
from bench_pixelcnn import timed_train_steps
from bench_stylegan import gan_training, timed_gan_steps
from genlab.config import setup
from genlab.data import mnist5k
from genlab.models import stylegan2
from genlab.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from genlab.nn import resample
from genlab.nn.modulated import modulated_conv2d
from genlab.train import GANStepConfig
from genlab.zoo import get_recipe

#: the issue's one-thread measurements of the reference implementations on this machine, images/s
REFERENCE = {"pixelcnn": {"implementation": "UvA tutorial 12", "images_per_s": 19.1},
             "stylegan2": {"implementation": "NVlabs stylegan2-ada-pytorch", "images_per_s": 44.1}}


def rates(timed_run, images: int, runs: int) -> list[tuple[float, float]]:
    """(images per wall-clock second, images per CPU second of this process) of each of ``runs`` calls of
    timed_run() -> wall seconds. With one thread the second is what the step costs even when other jobs share the
    cores (time-slicing stretches the wall clock, not the CPU time)."""
    out = []
    for _ in range(runs):
        cpu = time.process_time()
        wall = timed_run()
        out.append((images / wall, images / (time.process_time() - cpu)))
    return out


def pixelcnn_rates(c: GatedPixelCNNConfig, batch: int, runs: int, steps: int) -> list[tuple[float, float]]:
    """A Gated PixelCNN on batches of MNIST digits, Adam: :func:`rates` of each timed run (one warm-up step first)."""
    model = GatedPixelCNN(c)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, _ = mnist5k("train", as_uint8=True)
    timed_train_steps(model, opt, x, None, batch, 1)
    first = iter(range(1, 1 + runs * steps, steps))
    return rates(lambda: timed_train_steps(model, opt, x, None, batch, steps, first=next(first)), steps * batch, runs)


def stylegan2_rates(c: stylegan2.StyleGAN2Config, batch: int, runs: int, steps: int) -> list[tuple[float, float]]:
    """StyleGAN2 G + D, the plain non-saturating step: :func:`rates` of each timed run (two warm-up steps first)."""
    state, step, real = gan_training(stylegan2.Generator(c), stylegan2.Discriminator(c),
                                     GANStepConfig(z_dim=c.z_dim), batch, torch.device("cpu"))
    timed_gan_steps(state, step, real, 2)
    return rates(lambda: timed_gan_steps(state, step, real, steps), steps * batch, runs)


def shipped(name: str) -> tuple:
    """(model config, batch size) of a zoo recipe's cpu profile."""
    cfg = get_recipe(name).config("cpu")
    return cfg.model, cfg.train.batch_size


#: name -> rates(runs); the issue's two configurations, then the cpu configs of the shipped checkpoints (the same
#: steps: Adam, no R1 / path length for StyleGAN2)
MODELS = {
    "pixelcnn": lambda runs: pixelcnn_rates(GatedPixelCNNConfig(channels=64, n_layers=8, head_channels=128), 128,
                                            runs, 2),
    "stylegan2": lambda runs: stylegan2_rates(stylegan2.StyleGAN2Config(resolution=32, max_channels=128,
                                                                        channel_base=1024, z_dim=512, w_dim=512),
                                              32, runs, 6),
    "gated_pixelcnn_mnist": lambda runs: pixelcnn_rates(*shipped("gated_pixelcnn_mnist"), runs, 6),
    "stylegan2_faces32": lambda runs: stylegan2_rates(*shipped("stylegan2_faces32"), runs, 10),
}


def forward_backward_ms(fn, *inputs: torch.Tensor, reps: int = 10) -> float:
    """Milliseconds for fn(*inputs) and its backward (a dense random output gradient, as in training), median of
    ``reps`` after one warm-up call."""
    leaves = [t.clone().requires_grad_() for t in inputs]
    dy = torch.randn_like(fn(*inputs))
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        fn(*leaves).backward(dy)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) * 1000


def parts_ms() -> dict[str, tuple[float, float]]:
    """StyleGAN2's pieces at config (b)'s shapes, batch 32, forward + backward: (straightforward ms, fast ms) for the
    modulated 3x3 conv (grouped per-sample weights vs the training form) and bilinear up / antialiased down
    (F.interpolate vs the matrix products of genlab.nn.resample)."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for c, r in ((128, 4), (128, 8), (64, 16), (32, 32)):
        x, s = torch.randn(32, c, r, r, generator=g), torch.rand(32, c, generator=g) + 0.5
        w = torch.randn(c, c, 3, 3, generator=g) / (9 * c) ** 0.5
        out[f"modconv_{c}ch_{r}x{r}"] = tuple(forward_backward_ms(
            lambda *t, fused=fused: modulated_conv2d(*t, fused=fused), x, w, s) for fused in (True, False))
    interpolate = {True: lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False),
                   False: lambda t: F.interpolate(t, scale_factor=0.5, mode="bilinear", align_corners=False,
                                                  antialias=True)}
    fast = {True: resample.upsample, False: resample.downsample}
    for up, c, r in ((True, 128, 8), (True, 64, 16), (False, 64, 32), (False, 128, 16), (False, 128, 8)):
        x = torch.randn(32, c, r, r, generator=g)
        out[f"{'up' if up else 'down'}_{c}ch_{r}x{r}"] = (forward_backward_ms(interpolate[up], x),
                                                           forward_backward_ms(fast[up], x))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,0", help="thread counts to measure (0: all cores)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--parts", action="store_true", help="also time the modulated conv and resampling forms")
    a = ap.parse_args()
    setup("cpu", 0)
    res = {"bench": "speed", "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "genlab": os.path.dirname(genlab.__file__), "runs": a.runs, "reference": REFERENCE, "images_per_s": {},
           "images_per_cpu_s": {}}
    print(f"training images/s, median of {a.runs} runs (genlab from {res['genlab']})")
    print(f"{'model':>20} {'threads':>7} {'img/s':>7} {'runs':>16} {'img/cpu-s':>9} {'ref (1 thread)':>15} "
          f"{'ratio':>6}")
    for threads in (int(t) or os.cpu_count() or 1 for t in a.threads.split(",")):
        torch.set_num_threads(threads)
        for name in a.models.split(","):
            wall, cpu = zip(*MODELS[name](a.runs))
            median = statistics.median(wall)
            res["images_per_s"][f"{name}_{threads}t"] = round(median, 1)
            res["images_per_cpu_s"][f"{name}_{threads}t"] = round(statistics.median(cpu), 1)
            ref = f"{REFERENCE[name]['images_per_s']:15.1f} {median / REFERENCE[name]['images_per_s']:5.2f}x" \
                if name in REFERENCE else ""
            print(f"{name:>20} {threads:>7} {median:7.1f} {' '.join(f'{r:.1f}' for r in wall):>16} "
                  f"{statistics.median(cpu):9.1f} {ref}")
    if a.parts:
        torch.set_num_threads(1)
        res["parts_ms"] = {k: [round(v, 2) for v in pair] for k, pair in parts_ms().items()}
        print("\nStyleGAN2's pieces, batch 32, one thread, forward + backward: straightforward vs fast form (ms)")
        for k, (slow, quick) in res["parts_ms"].items():
            print(f"  {k:22s} {slow:8.2f} {quick:8.2f}  {slow / quick:5.1f}x")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
