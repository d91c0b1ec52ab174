"""Profiles, device choice, seeding and determinism: the one place a notebook or script sets up its run.

Profiles (DESIGN.md, "Notebook anatomy"):

* ``ci``  -- seconds per notebook: CI, grading smoke runs.
* ``cpu`` -- a student laptop: minutes per notebook (the default without CUDA).
* ``gpu`` -- full-size runs on a CUDA device.
* ``auto`` -- ``$GENLAB_PROFILE`` if set (nbval cannot inject parameters, so CI sets it), else ``gpu`` when CUDA is
  available, else ``cpu``.

A notebook's ``parameters`` cell holds ``profile = "auto"`` and ``seed = 0``; its next cell calls :func:`setup`, which
returns a :class:`Run` whose :meth:`Run.pick` chooses a size per profile::

    run = setup(profile, seed)
    steps = run.pick(ci=20, cpu=2_000, gpu=50_000)
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

PROFILES = ("ci", "cpu", "gpu")
ENV_PROFILE = "GENLAB_PROFILE"
ENV_DEVICE = "GENLAB_DEVICE"
T = TypeVar("T")


def resolve_profile(profile: str | None = "auto") -> str:
    """Turn ``"auto"`` (or None) into a concrete profile name; reject unknown names with the list of valid ones."""
    if profile is None or profile == "auto":
        env = os.environ.get(ENV_PROFILE, "").strip()
        if env:
            profile = env
        else:
            return "gpu" if torch.cuda.is_available() else "cpu"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {PROFILES + ('auto',)} "
                         f"(check the notebook's `profile` parameter or ${ENV_PROFILE})")
    return profile


def choose_device(preference: str | None = None) -> torch.device:
    """Pick the compute device: ``preference`` or ``$GENLAB_DEVICE`` if given, else cuda > mps > cpu."""
    pref = preference or os.environ.get(ENV_DEVICE) or None
    if pref:
        dev = torch.device(pref)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {pref!r} requested but CUDA is not available: install the CUDA build of "
                               "torch (README, 'GPU') or unset GENLAB_DEVICE")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU ``torch.Generator`` seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (bitwise-repeatable runs on the same machine and build).

    On CUDA this also needs ``CUBLAS_WORKSPACE_CONFIG``; we set it if absent. ``warn_only`` keeps ops without a
    deterministic implementation usable (they warn instead of failing).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def keep_freed_memory() -> bool:
    """Let glibc's malloc serve large blocks from its heap and keep freed memory for reuse (Linux with glibc; a no-op
    returning False elsewhere). Returns whether the setting took.

    By default glibc returns every block over 32 MB to the OS when it is freed and maps a fresh one at the next
    allocation, so each large tensor of a training step (one 128 x 128 x 28 x 28 float map is 51 MB) costs a page
    fault per 4 KiB, every step: a third of a Gated PixelCNN step at batch 128 on the course machine
    (benchmarks/RESULTS.md, 2026-12-03). The price: the process keeps its peak memory between steps.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3                                   # <malloc.h>
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))


@dataclass
class Run:
    """What :func:`setup` decided: the concrete profile, the device, the seed and a seeded generator."""

    profile: str
    device: torch.device
    seed: int
    generator: torch.Generator = field(repr=False)
    deterministic: bool = True

    def pick(self, *, ci: T, cpu: T, gpu: T | None = None) -> T:
        """Return the value for this run's profile (``gpu`` defaults to ``cpu``'s value)."""
        return {"ci": ci, "cpu": cpu, "gpu": cpu if gpu is None else gpu}[self.profile]

    @property
    def use_amp(self) -> bool:
        """bf16 autocast and channels_last are used only on CUDA (DESIGN.md)."""
        return self.device.type == "cuda"

    def describe(self) -> str:
        """One line for a notebook's first output: profile, device, seed, torch version."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type
        return (f"profile={self.profile} device={name} seed={self.seed} torch={torch.__version__.split('+')[0]} "
                f"threads={torch.get_num_threads()}")


def setup(profile: str | None = "auto", seed: int = 0, *, device: str | None = None,
          deterministic: bool = True, threads: int | None = None) -> Run:
    """Resolve the profile, choose the device, seed everything and set determinism. Returns a :class:`Run`.

    ``threads`` caps torch's intra-op threads (``$GENLAB_THREADS`` if unset), useful when the runner executes several
    notebooks at once on a small machine. Also keeps freed memory in the process for reuse (:func:`keep_freed_memory`).
    """
    prof = resolve_profile(profile)
    dev = choose_device(device)
    threads = threads or int(os.environ.get("GENLAB_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    keep_freed_memory()
    set_deterministic(deterministic)
    gen = seed_everything(seed)
    return Run(profile=prof, device=dev, seed=seed, generator=gen, deterministic=deterministic)


def info() -> dict[str, Any]:
    """Environment facts for reports and provenance files."""
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }
