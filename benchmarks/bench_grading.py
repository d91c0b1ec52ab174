"""Grading throughput: 20 submissions of one notebook graded with 2 workers (``genlab grade``, profile ci).

    .venv/bin/python benchmarks/bench_grading.py [--notebook PATH] [--submissions 20] [--jobs 2]

The notebook defaults to the first course notebook with exercises (notebooks/NN_*.ipynb); half of the submissions
are its instructor version (full marks), half its released version (every exercise fails). Prints seconds per
submission and ends with one JSON line (for benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from genlab.course.exercises import course_notebooks, read_exercises
from genlab.course.grade import GradeConfig, grade
from genlab.course.release import release

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = ROOT / "tests" / "fixtures" / "grading" / "instructor" / "02_torch_norm.ipynb"


def default_notebook() -> Path:
    with_exercises = [p for p in course_notebooks() if read_exercises(p).tests]
    return with_exercises[0] if with_exercises else FALLBACK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notebook", type=Path, default=None)
    ap.add_argument("--submissions", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    notebook = (a.notebook or default_notebook()).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        release([notebook], tmp / "released")
        subs = []
        for i in range(a.submissions):
            src = notebook if i % 2 == 0 else tmp / "released" / notebook.name
            dst = tmp / "subs" / f"student{i:02d}.ipynb"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            subs.append(dst)
        config = GradeConfig(timeout=a.timeout, jobs=a.jobs)
        t0 = time.perf_counter()
        results = grade(subs, tmp / "grades", instructor=[notebook], config=config)
        wall = time.perf_counter() - t0
    statuses = {s: sum(r.status == s for r in results) for s in {r.status for r in results}}
    per_run = [r.seconds for r in results]
    peaks = [r.kernel_peak_vm_mb for r in results if r.kernel_peak_vm_mb]
    print(f"notebook {notebook.relative_to(ROOT)}: {len(results)} submissions, {a.jobs} workers, "
          f"{os.cpu_count()} cores")
    print(f"wall {wall:.1f} s -> {wall / len(results):.2f} s per submission "
          f"(one run: median {statistics.median(per_run):.1f} s, max {max(per_run):.1f} s)")
    print(f"statuses {statuses}; kernel peak address space {max(peaks):.0f} MB (cap {config.memory_mb} MB)")
    print(f"sandbox: {results[0].sandbox}")
    print(json.dumps({
        "bench": "grading", "notebook": notebook.name, "submissions": len(results), "jobs": a.jobs,
        "cores": os.cpu_count(), "wall_s": round(wall, 1), "s_per_submission": round(wall / len(results), 2),
        "run_s_median": round(statistics.median(per_run), 2), "kernel_peak_vm_mb": round(max(peaks)),
        "statuses": statuses, "machine": platform.machine(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
