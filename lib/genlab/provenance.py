"""Where and from what a result was made: the git commit and the machine, recorded in checkpoints' provenance files,
in the runner's report and in benchmark results (STYLE.md: every number traceable to how it was made)."""
from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

import torch

from genlab.paths import REPO_ROOT


def git_commit(repo: str | os.PathLike = REPO_ROOT) -> str:
    """``git rev-parse HEAD`` of ``repo`` (+ ``-dirty`` if tracked files changed); ``"unknown"`` without git/commits.

    Untracked files do not count as dirty (the same rule as ``git describe --dirty``).
    """
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    return head + ("-dirty" if status else "")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what :mod:`platform` knows."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu


def machine() -> dict[str, Any]:
    """Where a run happened: OS, Python, CPU model and counts, memory, torch build and threads, accelerator.

    No host or user names.
    """
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        facts["cpus_usable"] = len(os.sched_getaffinity(0))
    try:
        facts["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    facts.update({
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "accelerator": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    })
    return facts
