"""Foundation benchmark: training throughput of the shipped digit classifier with genlab.train.fit vs a bare loop
(the loop's overhead), and checkpoint save/load time. Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_foundation.py [--steps 60]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab.checkpoints import load_checkpoint, save_checkpoint
from genlab.config import info, setup
from genlab.data import mnist5k
from genlab.models.digit_classifier import DigitClassifier
from genlab.train import StepBatches, TrainState, fit, make_ema


def step(model, opt, x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    run = setup("cpu", 0)
    x, y = mnist5k("train")
    data = StepBatches(x, y, batch_size=a.batch, seed=0)

    model = DigitClassifier().to(run.device)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for s in range(5):  # warm-up
        step(model, opt, *data(s))
    t0 = time.perf_counter()
    for s in range(a.steps):
        step(model, opt, *data(s))
    bare = a.steps * a.batch / (time.perf_counter() - t0)

    model = DigitClassifier().to(run.device)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    state = TrainState(model=model, optimizer=opt, ema=make_ema(model, 0.99))
    fit(state, lambda st, b: {"loss": step(st.model, st.optimizer, *b)}, data, 5, progress=False)
    t0 = time.perf_counter()
    fit(state, lambda st, b: {"loss": step(st.model, st.optimizer, *b)}, data, 5 + a.steps, progress=False)
    with_fit = a.steps * a.batch / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.pt"
        t0 = time.perf_counter()
        save_checkpoint(path, states=state.state_dicts(), config={}, metrics={}, seed=0, command="bench", data="",
                        train_seconds=0.0)
        save_ms = 1000 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_checkpoint(path)
        load_ms = 1000 * (time.perf_counter() - t0)
        size_kb = path.stat().st_size / 1024

    res = {"bench": "foundation", "machine": f"{platform.machine()} {info()['threads']} threads, {info()['device_name']}",
           "torch": torch.__version__, "batch": a.batch, "steps": a.steps,
           "train_images_per_s_bare": round(bare, 1), "train_images_per_s_fit_ema": round(with_fit, 1),
           "fit_overhead_pct": round(100 * (bare / with_fit - 1), 1),
           "checkpoint_save_ms": round(save_ms, 1), "checkpoint_load_ms": round(load_ms, 1),
           "checkpoint_kb": round(size_kb, 1)}
    print(f"digit classifier, batch {a.batch}: bare loop {bare:.0f} img/s, fit+EMA {with_fit:.0f} img/s "
          f"({res['fit_overhead_pct']}% overhead)")
    print(f"training checkpoint ({size_kb:.0f} KiB): save {save_ms:.0f} ms, load {load_ms:.0f} ms")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
