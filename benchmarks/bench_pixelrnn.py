"""PixelRNN benchmark: training throughput (images/s) of the Row LSTM and the Diagonal BiLSTM in their shipped (cpu)
configurations, plus the naive sampler's time per image. Prints a table and ends with one JSON line.

    GENLAB_THREADS=1 .venv/bin/python benchmarks/bench_pixelrnn.py [--steps 10] [--batch 32] [--samples 2]

The Row LSTM advances one row per recurrent step (H steps), the Diagonal BiLSTM one diagonal (H + W - 1 steps) for
both directions at once, so on a CPU, where these small networks are bound by per-step overhead, the Row LSTM is the
faster of the two.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from genlab.config import setup
from genlab.data import mnist5k
from genlab.metrics.likelihood import bits_per_dim
from genlab.models.pixelrnn import sample
from genlab.train import StepBatches
from genlab.zoo import get_recipe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--samples", type=int, default=2, help="images drawn to time the naive sampler (0: skip)")
    a = ap.parse_args()
    run = setup("cpu", 0)
    x, _ = mnist5k("train", as_uint8=True)
    data = StepBatches(x, batch_size=a.batch, seed=0)
    result = {"benchmark": "pixelrnn", "batch": a.batch, "steps": a.steps, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine()}
    for name, key in [("row_lstm_mnist", "row_lstm"), ("diagonal_bilstm_mnist", "diagonal_bilstm")]:
        recipe = get_recipe(name)
        model = recipe.build(recipe.config("cpu").as_dict()["model"]).to(run.device)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step(s: int) -> None:
            (xb,) = data(s)
            loss = bits_per_dim(model(xb.to(run.device)), xb.to(run.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step(0)                                                        # warm-up
        t0 = time.perf_counter()
        for s in range(1, a.steps + 1):
            step(s)
        result[f"{key}_train_images_per_s"] = round(a.steps * a.batch / (time.perf_counter() - t0), 2)
        if a.samples:
            t0 = time.perf_counter()
            sample(model, a.samples, (28, 28), generator=torch.Generator(run.device).manual_seed(0))
            result[f"{key}_sample_s_per_image"] = round((time.perf_counter() - t0) / a.samples, 3)
        print(f"{name:24s} train {result[f'{key}_train_images_per_s']:8.1f} images/s"
              + (f"   naive sampling {result[f'{key}_sample_s_per_image']:.2f} s/image" if a.samples else ""))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
