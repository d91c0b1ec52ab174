"""VQ-VAE-2 benchmark: encode / decode / train throughput (images/s at 64x64) of the shipped faces model and the
one-level baseline, and prior sampling (top 8x8 codes, then bottom 16x16 codes given them) naive vs cached with the
shipped priors: times, speed-up and whether the codes are identical. Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_vqvae.py [--n 8] [--batch 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from genlab.zoo import load_pretrained
from genlab.config import setup
from genlab.worlds.faces import faces
from genlab.zoo.vqvae import to_model


def _timed(fn, repeats: int) -> float:
    fn()                                                                        # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def throughput(name: str, batch: int, repeats: int) -> dict:
    model = load_pretrained(name).model
    x = to_model(faces("test", n=batch, resolution=64, as_uint8=True)[0])
    with torch.no_grad():
        enc = _timed(lambda: model.encode(x), repeats)
        if hasattr(model, "quant_t"):
            top, bottom = model.encode(x)
            dec = _timed(lambda: model.decode_codes(top.codes, bottom.codes), repeats)
        else:
            codes = model.encode(x).codes
            dec = _timed(lambda: model.decode_codes(codes), repeats)
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step():
        out = model(x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    train = _timed(step, repeats)
    return {"encode": round(batch / enc, 1), "decode": round(batch / dec, 1), "train": round(batch / train, 1)}


def sampling(n: int) -> dict:
    top_prior = load_pretrained("vqvae2_faces64_prior_top").model
    bottom_prior = load_pretrained("vqvae2_faces64_prior_bottom").model
    out = {}
    for cached in (False, True):
        t0 = time.perf_counter()
        top = top_prior.sample(n, 8, generator=torch.Generator().manual_seed(0), cached=cached)
        t_top = time.perf_counter() - t0
        bottom = bottom_prior.sample(n, 16, top, generator=torch.Generator().manual_seed(1), cached=cached)
        out["cached" if cached else "naive"] = (t_top, time.perf_counter() - t0 - t_top, top, bottom)
    (nt, nb, top_n, bot_n), (ct, cb, top_c, bot_c) = out["naive"], out["cached"]
    return {"n_images": n, "naive_top_s": round(nt, 2), "naive_bottom_s": round(nb, 2), "cached_top_s": round(ct, 2),
            "cached_bottom_s": round(cb, 2), "speedup_x": round((nt + nb) / (ct + cb), 1),
            "identical": bool(torch.equal(top_n, top_c) and torch.equal(bot_n, bot_c))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8, help="images to sample")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    setup("cpu", 0, threads=a.threads or None)
    speed = {}
    for name in ("vqvae2_faces64", "vqvae_faces64"):
        speed[name] = throughput(name, a.batch, a.repeats)
        r = speed[name]
        print(f"{name:16s} images/s at 64x64: encode {r['encode']:7.1f}  decode {r['decode']:7.1f}  "
              f"train {r['train']:6.1f}")
    s = sampling(a.n)
    print(f"prior sampling of {s['n_images']} code pairs: naive {s['naive_top_s'] + s['naive_bottom_s']:.2f} s "
          f"(top {s['naive_top_s']:.2f} + bottom {s['naive_bottom_s']:.2f}), cached "
          f"{s['cached_top_s'] + s['cached_bottom_s']:.2f} s -> {s['speedup_x']:.1f}x, identical: {s['identical']}")
    print(json.dumps({"bench": "vqvae", "machine": platform.processor() or platform.machine(),
                      "threads": torch.get_num_threads(), "images_per_s": speed, "sampling": s}))


if __name__ == "__main__":
    main()
