"""Shared timing helper of the benchmarks (run as scripts: ``benchmarks/`` is on sys.path)."""
from __future__ import annotations

import time


def best_of(fn, repeats: int = 3) -> float:
    """Seconds of the fastest of ``repeats`` calls of fn(), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def threads_from_args(default: int = 1) -> int:
    """Parse ``--threads N`` from the command line, set torch's intra-op threads to N and return N."""
    import argparse

    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=default)
    threads = ap.parse_args().threads
    torch.set_num_threads(threads)
    return threads
