"""The processes below a pid, from /proc: what the runner and the grader stop (and measure) when a notebook ends.

Standard library only: the grader's sandbox worker imports it by file path, without the genlab package (and torch).
"""
from __future__ import annotations

import os


def _parents() -> dict[int, int] | None:
    """{pid: parent pid} of every process, from /proc (None where there is no /proc, e.g. macOS)."""
    if not os.path.isdir("/proc/self"):
        return None
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat_line = f.read()
            except OSError:  # exited meanwhile
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
            out[int(entry.name)] = int(stat_line[stat_line.rindex(b")") + 2:].split()[1])
    return out


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (e.g. papermill or a grading worker, its kernel, and what the kernel started).

    The kernel runs in a session of its own (jupyter_client starts it so), so signalling our child's process group
    does not reach it; we signal these pids too.
    """
    parents = _parents()
    if parents is None:
        try:
            import psutil  # installed with ipykernel; without it a kernel stops by itself once papermill is gone
        except ImportError:
            return []
        try:
            return [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found
