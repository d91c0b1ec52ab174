"""Batched inference in eval mode, and sampling a generator from a seed: the two loops every evaluator needs.

:func:`batched` runs a network over a large tensor a slice at a time (bounded memory; a small evaluation batch also
keeps activations in cache on a CPU, see benchmarks/bench_eval_batch.py), in eval mode, and gathers the results on
the CPU. :func:`generate` draws ``n`` samples of a generator G(z) so that they are a function of ``seed`` alone.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from genlab.nn.eval_mode import evaluating


def device_of(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (or buffer); the CPU for a module without either."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def batched(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor, batch_size: int = 100,
            module: nn.Module | None = None) -> torch.Tensor:
    """``fn(*slices)`` for consecutive slices of ``inputs`` (each (N, ...)), concatenated on the CPU -> (N, ...).

    module: the network ``fn`` runs (default ``fn`` itself when it is a module): it is put in eval mode for the loop
    (each submodule's mode restored afterwards) and the slices move to its device.
    """
    if not inputs:
        raise ValueError("batched needs at least one input tensor")
    n = len(inputs[0])
    if any(len(x) != n for x in inputs):
        raise ValueError(f"batched inputs must have the same length, got {[len(x) for x in inputs]}")
    net = module if module is not None else (fn if isinstance(fn, nn.Module) else None)
    device = device_of(net) if net is not None else inputs[0].device
    with evaluating(*([net] if net is not None else [])):
        out = [fn(*(x[i:i + batch_size].to(device) for x in inputs)).cpu() for i in range(0, n, batch_size)]
    return torch.cat(out)


def _takes_noise(G: nn.Module) -> bool:
    return "noise" in inspect.signature(G.forward).parameters


@torch.no_grad()
def generate(G: nn.Module, n: int, *, seed: int = 0, batch_size: int = 250, **forward_kwargs) -> torch.Tensor:
    """n samples of G in [0, 1]: (n, C, H, W) for an image G, (n, T, C, H, W) for a video G; G outputs [-1, 1].

    z ~ N(0, I) of size (b, G.config.z_dim) is drawn batch by batch from ``torch.Generator().manual_seed(seed)``;
    when G's forward takes a ``noise`` argument (StyleGAN's per-pixel noise inputs), every noise map is drawn from
    the same generator, so the samples are a function of the seed alone (never of the global RNG). Extra keyword
    arguments go to G's forward (e.g. ``psi``, ``cutoff`` for the truncation trick). Runs in eval mode.
    """
    g = torch.Generator().manual_seed(seed)
    device = device_of(G)
    if _takes_noise(G):
        forward_kwargs = {**forward_kwargs, "noise": g}
    out = []
    with evaluating(G):
        for i in range(0, n, batch_size):
            z = torch.randn(min(batch_size, n - i), G.config.z_dim, generator=g)
            out.append(G(z.to(device), **forward_kwargs).float().cpu())
    return (torch.cat(out).clamp(-1, 1) + 1) / 2
