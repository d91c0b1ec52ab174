"""The course runner behind ``genlab run``: execute notebooks with papermill, one process each, and write a report.

    genlab run [NOTEBOOK...] [--profile P] [--jobs N] [--out DIR] [--timeout S] [--store]

Why one process per notebook: papermill's ``--cwd`` is a process-wide ``chdir`` (DESIGN.md, "Tool facts"), and a
separate process gives each notebook its own timeout, its own peak-memory figure (sampled from /proc over the child
 and its kernel, see :class:`MemoryPeak`) and a crash
that cannot take the others down. Each child runs ``python -m papermill`` with

* the kernel started in the notebook's folder (``--cwd``), so notebooks open sibling files by relative path;
* the parameter ``profile`` injected as given (``"auto"`` stays ``"auto"`` and the notebook resolves it) and
  ``$GENLAB_PROFILE`` set to the resolved profile, so helper code outside the notebook agrees with it;
* the kernel ``python3`` pinned to the runner's own interpreter (a kernelspec written for this run comes first on
  ``$JUPYTER_PATH``, so a user-wide ``python3`` kernel from another environment cannot hijack the run);
* stdout/stderr (papermill's log and the notebook's own output) captured to ``DIR/logs/<name>.log``.

The executed notebooks go to ``DIR/<name>.ipynb``; :mod:`genlab.course.report` turns them into ``DIR/report.json``
and ``DIR/report.md``. ``--store`` writes a successfully executed notebook back over its source after
:func:`clean_executed` (how maintainers refresh the committed cpu-profile outputs).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from genlab.course import report as reporting
from genlab.course.report import PAPERMILL_TAGS
from genlab.course.proctree import descendants
from genlab.paths import REPO_ROOT
from genlab.provenance import git_commit

KERNEL_NAME = "python3"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
_POLL_S = 0.1      # how often a worker checks its child (exit, timeout, cancellation)
_GRACE_S = 5.0     # SIGTERM -> SIGKILL delay when stopping a notebook
_SAMPLE_EVERY = 5  # memory samples every _SAMPLE_EVERY polls (0.5 s)


class UsageError(ValueError):
    """Bad input to the runner (missing notebook, clashing names, bad --jobs): ``genlab run`` exits with 2."""


# ----------------------------------------------------------------------------------------------- which notebooks

def default_notebooks(root: str | os.PathLike = REPO_ROOT) -> list[Path]:
    """Every course notebook ``root/notebooks/NN_*.ipynb``, sorted by name (the reading order)."""
    return sorted((Path(root) / "notebooks").glob(NOTEBOOK_GLOB))


def resolve_notebooks(paths: list[str | os.PathLike] | None) -> list[Path]:
    """Absolute paths of the notebooks to run (the course's notebooks when ``paths`` is empty). A relative path that is
    not found from the current folder is looked up from the repository root, so the README's commands work from any
    folder. :class:`UsageError` for a missing file, a file that is not ``.ipynb``, or two notebooks whose outputs would share a name."""
    if not paths:
        found = default_notebooks()
        if not found:
            raise UsageError(f"no notebooks to run: {REPO_ROOT / 'notebooks'} has no {NOTEBOOK_GLOB} files "
                             "(name the notebooks to run on the command line)")
        return found
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file() and not path.is_absolute() and (REPO_ROOT / path).is_file():
            path = REPO_ROOT / path                  # "notebooks/00_tour.ipynb" works from any folder
        path = path.resolve()
        if not path.is_file():
            raise UsageError(f"notebook {p} does not exist (run `genlab run` without arguments to run every "
                             f"notebook in {REPO_ROOT / 'notebooks'})")
        if path.suffix != ".ipynb":
            raise UsageError(f"{p} is not a notebook: genlab run takes .ipynb files")
        out.append(path)
    seen: dict[str, Path] = {}
    for path in out:
        if path.stem in seen:
            raise UsageError(f"two notebooks are both named {path.stem!r} ({seen[path.stem]} and {path}): their "
                             "executed copies would overwrite each other in --out; run them separately")
        seen[path.stem] = path
    return out


# ------------------------------------------------------------------------------------- the child's environment

def write_kernelspec(folder: str | os.PathLike) -> Path:
    """Write a ``python3`` kernelspec for *this* interpreter under ``folder/kernels/`` and return ``folder``.

    jupyter_client looks up kernelspecs on ``$JUPYTER_PATH`` before the user's and the environment's folders, so
    putting ``folder`` first there makes ``python3`` mean ``sys.executable`` whatever else is installed.
    """
    spec_dir = Path(folder) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return Path(folder)


def child_env(profile: str, *, jobs: int = 1, jupyter_dir: str | os.PathLike | None = None,
              base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a papermill child: the runner's venv first on PATH, ``$GENLAB_PROFILE`` = the resolved
    ``profile``, the run's kernelspec first on ``$JUPYTER_PATH``, and torch threads shared out when ``jobs > 1``."""
    env = dict(os.environ if base is None else base)
    bin_dir = os.path.dirname(sys.executable)  # not resolved: a venv's bin/python is a symlink to the base python
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env["GENLAB_PROFILE"] = profile
    if jupyter_dir is not None:
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in [str(jupyter_dir), env.get("JUPYTER_PATH", "")] if p)
    if jobs > 1 and not env.get("GENLAB_THREADS"):
        env["GENLAB_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))  # read by genlab.config.setup
    # Executed notebooks must keep their figures: with MPLBACKEND unset ipykernel selects the inline backend,
    # whereas an inherited non-interactive one (Agg) would silently drop every figure from the outputs.
    env.pop("MPLBACKEND", None)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # debugpy's frozen-modules warning, noise in the logs
    return env


def papermill_command(source: Path, output: Path, profile: str, *, kernel: str = KERNEL_NAME) -> list[str]:
    """The papermill CLI call for one notebook (``-r`` passes ``profile`` as a raw string, never re-typed)."""
    return [sys.executable, "-m", "papermill", str(source), str(output),
            "-r", "profile", profile, "--kernel", kernel, "--cwd", str(source.parent),
            "--log-output", "--no-progress-bar", "--request-save-on-cell-execute"]


# ------------------------------------------------------------------------------------------- one child process

def _status_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB from /proc/PID/status; (0, 0) if it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class MemoryPeak:
    """Peak resident memory of a process tree (papermill + kernel + the kernel's children), sampled from /proc.

    peak = max(largest sampled sum of VmRSS over the tree, largest VmHWM of any one process): the sum catches
    memory spread over processes, the per-process high-water mark catches spikes between samples. Not
    ``ru_maxrss``: Linux charges a child, at exec, with the resident set of the process it was forked from (here the
    runner, torch imported), which would put a floor of a few hundred MB under every notebook.
    """

    def __init__(self, pid: int):
        self.pid, self.kib = pid, 0
        self.available = os.path.isdir(f"/proc/{pid}")

    def sample(self) -> None:
        if not self.available:
            return
        total = 0
        for p in [self.pid, *descendants(self.pid)]:
            rss, hwm = _status_kib(p)
            total += rss
            self.kib = max(self.kib, hwm)
        self.kib = max(self.kib, total)

    @property
    def mb(self) -> float | None:
        return round(self.kib / 1024, 1) if self.kib else None


def _signal_all(pgid: int, pids: list[int], sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def run_process(cmd: list[str], *, cwd: str | os.PathLike, env: dict[str, str], log: str | os.PathLike,
                timeout: float, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run ``cmd`` in a new session with stdout+stderr to ``log``; stop its whole tree after ``timeout`` seconds
    (or when ``cancel`` is set): SIGTERM, then SIGKILL after a grace period.

    Returns ``{"returncode", "seconds", "peak_memory_mb", "timed_out", "cancelled"}``. ``peak_memory_mb`` comes from
    :class:`MemoryPeak` on Linux; elsewhere from ``os.wait4``'s ``ru_maxrss`` (largest resident set of the child or
    of a descendant it reaped, inflated by the exec effect described there); None if neither is known.
    """
    start = time.monotonic()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    memory = MemoryPeak(proc.pid)
    timed_out = cancelled = False
    polls = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if polls % _SAMPLE_EVERY == 0:
            memory.sample()
        polls += 1
        timed_out = time.monotonic() - start > timeout
        cancelled = cancel is not None and cancel.is_set()
        if timed_out or cancelled:
            tree = descendants(proc.pid)
            _signal_all(proc.pid, tree, signal.SIGTERM)
            deadline = time.monotonic() + _GRACE_S
            while time.monotonic() < deadline:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(_POLL_S)
            else:
                _signal_all(proc.pid, tree, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
            _signal_all(proc.pid, tree, signal.SIGKILL)  # whatever of the tree survived SIGTERM
            break
        time.sleep(_POLL_S)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen so it does not wait again
    seconds = time.monotonic() - start
    peak = memory.mb
    if peak is None and not memory.available and usage.ru_maxrss > 0:
        # ru_maxrss is in KiB on Linux, in bytes on macOS.
        peak = round(usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10), 1)
    return {"returncode": proc.returncode, "seconds": round(seconds, 2), "peak_memory_mb": peak,
            "timed_out": timed_out, "cancelled": cancelled}


def run_notebook(source: Path, *, out: Path, profile: str, requested_profile: str, timeout: float,
                 env: dict[str, str], cancel: threading.Event | None = None) -> dict[str, Any]:
    """Execute one notebook into ``out/<name>.ipynb`` (log in ``out/logs/<name>.log``); return its report entry."""
    name = source.stem
    output, log = out / f"{name}.ipynb", out / "logs" / f"{name}.log"
    if output.exists():
        output.unlink()  # a stale copy from an earlier run must not be mistaken for this run's result
    cmd = papermill_command(source, output, requested_profile)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    proc = run_process(cmd, cwd=source.parent, env=env, log=log, timeout=timeout, cancel=cancel)
    entry = reporting.notebook_entry(name, source=source, output=output, log=log, process=proc, timeout=timeout)
    entry["started"] = started
    entry["profile"] = profile
    return entry


# ---------------------------------------------------------------------------------------------------- --store

def clean_executed(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip what papermill/nbclient add to an executed notebook, keeping what a committed notebook should hold.

    Removes ``metadata.papermill`` (notebook and cells), papermill's injected-parameters and error-marker cells,
    nbclient's per-cell ``metadata.execution`` timestamps, and empty ``tags`` lists; keeps cell ids and outputs and
    renumbers execution counts 1, 2, ... in order (their ``execute_result`` outputs too). Modifies ``nb`` in place and
    returns it.
    """
    nb.metadata.pop("papermill", None)
    kept = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if any(t in tags for t in PAPERMILL_TAGS):
            continue
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]
        kept.append(cell)
    nb.cells = kept
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.get("execution_count") is None:
            continue
        count += 1
        cell.execution_count = count
        for o in cell.get("outputs", []):
            if o.get("output_type") == "execute_result":
                o["execution_count"] = count
    return nb


def store_notebook(executed: Path, source: Path) -> None:
    """Write the cleaned executed notebook over ``source`` (atomically: temp file in the same folder + replace)."""
    nb = clean_executed(nbformat.read(str(executed), as_version=4))
    nbformat.validate(nb)
    reporting.atomic_write(source, nbformat.writes(nb) + "\n", mode=stat.S_IMODE(source.stat().st_mode))


# --------------------------------------------------------------------------------------------------- the run

def _progress(total: int):
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, nothing when stderr is a file or a pipe (CI logs stay clean).
    return tqdm(total=total, desc="genlab run", unit="nb", disable=None, file=sys.stderr, dynamic_ncols=True)


def run_notebooks(paths: list[str | os.PathLike] | None = None, *, profile: str = "auto", jobs: int = 1,
                  out: str | os.PathLike = "build", timeout: float = 3600.0, store: bool = False) -> dict[str, Any]:
    """Execute notebooks (default: every ``notebooks/NN_*.ipynb``), write ``out/`` and return the report dict.

    profile: ``auto`` | ``ci`` | ``cpu`` | ``gpu``, injected as the notebooks' ``profile`` parameter; the report and
      ``$GENLAB_PROFILE`` carry the resolved one. jobs: notebooks executed at once. timeout: seconds per notebook.
    store: write each notebook that succeeded back over its source, cleaned (:func:`clean_executed`).
    Raises :class:`UsageError` for bad input; a failing notebook never raises (it is reported).
    """
    from genlab.config import resolve_profile

    sources = resolve_notebooks(paths)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if not timeout > 0:
        raise UsageError(f"--timeout must be positive (seconds per notebook), got {timeout}")
    try:
        resolved = resolve_profile(profile)
    except ValueError as e:
        raise UsageError(str(e)) from None
    out = Path(out).resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)

    report: dict[str, Any] = {
        "profile": resolved, "requested_profile": profile,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "jobs": jobs, "timeout_s": timeout, "machine": reporting.machine_info(), "commit": git_commit(),
        "notebooks": [],
    }
    t0 = time.monotonic()
    entries: dict[Path, dict[str, Any]] = {}
    cancel = threading.Event()
    running: list[str] = []
    lock = threading.Lock()
    bar = _progress(len(sources))

    def work(source: Path) -> dict[str, Any]:
        with lock:
            running.append(source.stem)
            bar.set_postfix_str(", ".join(running), refresh=True)
        try:
            entry = run_notebook(source, out=out, profile=resolved, requested_profile=profile, timeout=timeout,
                                 env=env, cancel=cancel)
            if store and entry["status"] != "ok":
                entry["stored"] = False  # a failed notebook is never written back
            elif store:
                try:
                    store_notebook(out / f"{source.stem}.ipynb", source)
                    entry["stored"] = True
                except (OSError, ValueError, nbformat.ValidationError) as e:
                    entry.update(status="failed", stored=False,
                                 error=f"executed, but could not be stored back into {source}: {e}")
            return entry
        finally:
            with lock:
                running.remove(source.stem)
                bar.set_postfix_str(", ".join(running), refresh=True)

    with tempfile.TemporaryDirectory(prefix="genlab-jupyter-") as jupyter_dir:
        env = child_env(resolved, jobs=jobs, jupyter_dir=write_kernelspec(jupyter_dir))
        pool = cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="genlab-run")
        futures = {pool.submit(work, s): s for s in sources}
        try:
            for fut in cf.as_completed(futures):
                entry = fut.result()
                entries[futures[fut]] = entry
                bar.update(1)
                line = f"{entry['name']}: {entry['status']} in {entry['seconds']:.1f} s"
                bar.write(line if entry["status"] == "ok" else f"{line} -- {entry['error']}")
        except BaseException:  # Ctrl-C: stop every child we started, report what finished, let the interrupt through
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            for fut, source in futures.items():
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    entries[source] = fut.result()
            _finish(report, [entries[s] for s in sources if s in entries], out, t0, interrupted=True)
            raise
        pool.shutdown(wait=True)
    bar.close()
    return _finish(report, [entries[s] for s in sources], out, t0)


def _finish(report: dict[str, Any], entries: list[dict[str, Any]], out: Path, t0: float, *,
            interrupted: bool = False) -> dict[str, Any]:
    report["notebooks"] = entries
    report["seconds"] = round(time.monotonic() - t0, 2)
    report["ok"] = not interrupted and all(e["status"] == "ok" for e in entries)
    if interrupted:
        report["interrupted"] = True
    reporting.write_report(report, out)
    return report


def main(args: argparse.Namespace) -> int:
    """``genlab run``: 0 when every notebook ran, 1 when any failed, 2 for usage errors, 130 when interrupted."""
    try:
        rep = run_notebooks(args.notebooks, profile=args.profile, jobs=args.jobs, out=args.out,
                            timeout=args.timeout, store=args.store)
    except UsageError as e:
        print(f"genlab run: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genlab run: interrupted; running notebooks were stopped (partial report in {args.out})",
              file=sys.stderr)
        return 130
    failed = [e["name"] for e in rep["notebooks"] if e["status"] != "ok"]
    out = Path(args.out)
    summary = (f"{len(rep['notebooks']) - len(failed)}/{len(rep['notebooks'])} notebooks ok "
               f"(profile {rep['profile']}, {rep['seconds']:.0f} s); report: {out / 'report.md'}")
    print(summary if not failed else f"{summary}\nfailed: {', '.join(failed)}")
    return 1 if failed else 0
