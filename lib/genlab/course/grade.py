"""Grade student notebooks against the instructor notebooks: ``genlab grade SUBMISSION... --out DIR``.

For each submission (a notebook, or a folder of notebooks for one student):

1. **Match** it to an instructor notebook by cell ids (the release keeps them), falling back to nbgrader grade_ids;
   a file that is not a notebook, or shares no cell with any instructor notebook, is ``invalid``.
2. **Assemble** the notebook that is run: the student's cells in the student's order, except that every test cell is
   replaced by the instructor's copy (visible *and* hidden checks; student edits to test cells are discarded) and a
   test cell the student deleted is re-inserted after the closest instructor cell that is still there (we re-insert
   rather than score 0: an accidental deletion should not cost the points of working code). A grader cell at the top
   snapshots the builtins; each test cell first undoes changes to them (``builtins.abs = ...``, a redefined
   ``AssertionError``, IPython custom exception handlers) and ends by displaying a random per-run token.
3. **Run** it with papermill, profile ``ci`` (injected parameter and ``GENLAB_PROFILE=ci``), in a worker process of
   its own (:func:`_worker_main`) with its own temporary working directory holding a *copy* of the notebook, under
   limits set by the worker on itself before it starts the kernel, which inherits them: ``RLIMIT_AS`` (the memory
   cap), ``RLIMIT_FSIZE`` and no core files; a network namespace with only a loopback interface (kernel <-> client
   traffic) where the OS allows it; as user ``nobody`` when the grader runs as root, so that the submission cannot
   write to the instructor notebooks, the submissions or the gradebook. nbclient runs with ``allow_errors`` (an
   exception costs that exercise only), a per-cell timeout that interrupts the kernel and goes on, and the whole run
   has a wall-clock timeout after which every process of the submission is killed.
4. **Score** each test cell from its own execution result, reported by the worker as each cell finishes: it passes
   when the kernel's execute reply says ``ok``, the cell has no error output, and the cell displayed its token (so it
   ran to its last line -- a test cell rewritten by an input transformer does not). Nothing the student's code
   prints or displays is read.

Statuses (``grades.csv``): ``ok``; ``timeout`` (wall-clock limit, or a cell over its time limit); ``crashed`` (the
kernel or the worker died, e.g. ``os._exit``); ``memory`` (an allocation failed under the cap: ``MemoryError``, or
torch's "can't allocate memory"); ``invalid``. Points always count the test cells that passed before the run ended.

Memory cap: ``RLIMIT_AS`` bounds each process's address space, which counts mapped libraries too. Measured here,
a kernel that imported torch and genlab and ran a small model maps about 1 GB (see benchmarks/bench_grading.py,
which prints the kernels' peak), so the default 4096 MB leaves about 3 GB of data. Per-thread stacks and malloc
arenas also count, so the worker sets ``MALLOC_ARENA_MAX=2`` and limits torch/OpenMP threads to cores / jobs;
grading runs on the CPU (``CUDA_VISIBLE_DEVICES=""``) because CUDA reserves far more address space than any cap.

Outputs in ``DIR``: ``grades.csv`` (submission, notebook, points, max_points, status), ``grades.json`` (per-test
detail, errors per cell, the sandbox actually obtained, peak memory), ``feedback/<submission>.md`` per student and
``executed/<submission>/<notebook>.ipynb`` (the run, for audit). Submissions are only read, never written.

Limits of the sandbox (state them to students and colleagues): the checks run in the student's kernel, so code
written to attack this grader specifically (rewriting IPython's execution machinery, reading the run's tokens from
the kernel's own input) can defeat any same-process grader, nbgrader and otter included; the executed notebooks are
kept so such attempts are visible. Without root, files outside the working directory are protected only by their
permissions, and processes a submission detaches with ``setsid`` after double-forking may outlive the kill.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

# This file is also the worker's entry point (`python grade.py --worker FD`): it must not import genlab (and through
# it torch) at module level -- the kernel imports what the notebook needs. Parent-side functions import it lazily.

GRADE_MIME = "application/vnd.genlab.grade+json"
GUARD_ID = "genlab-grade-guard"
GUARD_CALL = "__genlab_guard__()  # genlab grade: undo changes to the builtins before the checks"
GUARD_SOURCE = '''\
# genlab grade: snapshot the builtins; every test cell restores them first (see genlab.course.grade)
def __genlab_make_guard():
    import builtins
    current = vars(builtins)
    snapshot = dict(current)
    shell = get_ipython()
    ns = shell.user_ns
    exceptions = [k for k, v in snapshot.items() if isinstance(v, type) and issubclass(v, BaseException)]

    def guard():
        for name, value in snapshot.items():
            if name not in ("_", "__", "___") and current.get(name, guard) is not value:
                current[name] = value
        ns["__builtins__"] = builtins
        for name in exceptions:
            if name in ns and ns[name] is not snapshot[name]:
                del ns[name]
        shell.set_custom_exc((), None)
    return guard


__genlab_guard__ = __genlab_make_guard()
del __genlab_make_guard
'''
STATUSES = ("ok", "timeout", "memory", "crashed", "invalid")
CSV_COLUMNS = ("submission", "notebook", "points", "max_points", "status")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")


@dataclass
class GradeConfig:
    """How submissions are run. ``cell_timeout`` None: half of ``timeout`` (a hung cell is interrupted and the rest
    of the notebook still runs); ``threads`` None: cores // jobs."""

    timeout: float = 600.0
    cell_timeout: float | None = None
    memory_mb: int = 4096
    jobs: int = 1
    profile: str = "ci"
    isolate_network: bool = True
    run_as: str | None = "nobody"  # user the submissions run as when the grader runs as root (None: stay root)
    threads: int | None = None
    max_file_mb: int = 512  # RLIMIT_FSIZE: largest file a submission may write
    max_submission_mb: int = 64  # larger files are invalid (a notebook with outputs is a few MB)

    def resolved_cell_timeout(self) -> float:
        return float(self.cell_timeout) if self.cell_timeout else max(5.0, self.timeout / 2)

    def resolved_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // max(1, self.jobs))


@dataclass
class TestResult:
    """One test cell of one submission."""

    __test__ = False  # not a pytest class

    grade_id: str
    cell_id: str | None
    points: float
    max_points: float
    result: str  # passed | failed | not run
    reinserted: bool = False
    error: dict | None = None  # {"ename", "evalue", "where"}


@dataclass
class SubmissionResult:
    """One row of the gradebook: one notebook of one submission."""

    submission: str
    path: str
    notebook: str
    status: str
    points: float = 0.0
    max_points: float = 0.0
    seconds: float = 0.0
    message: str = ""
    sha256: str = ""
    tests: list[TestResult] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # every cell that raised: index, cell_id, kind, ename, evalue
    sandbox: dict = field(default_factory=dict)
    kernel_peak_vm_mb: float | None = None
    kernel_peak_rss_mb: float | None = None
    executed: str | None = None

    def row(self) -> dict:
        return {"submission": self.submission, "notebook": self.notebook, "points": f"{self.points:g}",
                "max_points": f"{self.max_points:g}", "status": self.status}


# ----------------------------------------------------------------------------------------------------------------
# Instructor notebooks, submissions, matching


@dataclass
class _Job:
    label: str
    path: Path
    data: bytes = b""
    sha256: str = ""
    nb: Any = None
    instructor: Any = None  # Exercises
    result: SubmissionResult | None = None


def load_instructor(paths: list[str | Path] | None = None) -> dict[str, Any]:
    """Exercises of each instructor notebook that has test cells, by notebook name (default: the course's)."""
    from genlab.course.exercises import course_notebooks, read_exercises

    files: list[Path] = []
    for p in (paths or [course_notebooks()]):
        p = Path(p)
        files += course_notebooks(p) if p.is_dir() else [p]
    out = {}
    for f in files:
        ex = read_exercises(f)
        if ex.tests:
            out[ex.name] = ex
    if not out:
        raise ValueError(f"none of the instructor notebooks has test cells: {[str(f) for f in files]}")
    return out


def expand_submissions(submissions: list[str | Path]) -> list[tuple[str, Path]]:
    """(label, notebook path) per notebook: a file is its own submission (label: its stem); a folder is one
    student's submission (label: the folder name) with every ``*.ipynb`` under it (checkpoints excluded)."""
    items = []
    for s in submissions:
        p = Path(s)
        if p.is_dir():
            nbs = sorted(f for f in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
            items += [(p.resolve().name, f) for f in nbs] or [(p.resolve().name, p)]
        else:
            items.append((p.stem, p))
    # labels become file names: make them safe, and unique per command-line argument
    used: dict[str, str] = {}
    out = []
    for label, path in items:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "submission"
        owner = _owner(path, submissions)
        name, n = base, 2
        while name in used and used[name] != owner:
            name, n = f"{base}-{n}", n + 1
        used[name] = owner
        out.append((name, path))
    return out


def _owner(path: Path, submissions: list[str | Path]) -> str:
    """The command-line argument a notebook came from (a folder groups its notebooks under one label)."""
    for s in submissions:
        s = Path(s)
        if s.is_dir() and (path == s or s in path.parents):
            return str(s.resolve())
    return str(path.resolve())


def _read_submission(job: _Job, config: GradeConfig) -> str | None:
    """Load the notebook; return why it is invalid, or None."""
    import nbformat

    if not job.path.is_file():
        return "not a file" if job.path.exists() else "no such file"
    size = job.path.stat().st_size
    if size > config.max_submission_mb * 2**20:
        return f"file is {size / 2**20:.0f} MB, over the {config.max_submission_mb} MB limit for a notebook"
    job.data = job.path.read_bytes()
    job.sha256 = hashlib.sha256(job.data).hexdigest()
    try:
        raw = json.loads(job.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return f"not a notebook: the file is not valid JSON ({str(e)[:120]})"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list) or raw.get("nbformat") != 4:
        return "not a notebook: expected nbformat 4 JSON with a list of cells"
    try:
        job.nb = nbformat.reads(job.data.decode("utf-8"), as_version=4)
        for c in job.nb.cells:
            if c.get("cell_type") not in ("code", "markdown", "raw") or not isinstance(c.get("source"), str):
                return "not a notebook: a cell has no valid cell_type/source"
    except Exception as e:  # nbformat raises a variety of errors for malformed documents
        return f"not a notebook: {type(e).__name__}: {str(e)[:120]}"
    return None


def match_instructor(nb: Any, instructor: dict[str, Any], filename: str = "") -> Any | None:
    """The instructor notebook (Exercises) sharing the most cell ids with ``nb``, then the most grade_ids; None if
    it shares neither with any. Ties go to the notebook whose name matches the file name."""
    from genlab.course.exercises import nbgrader_meta

    ids = {c.get("id") for c in nb.cells if c.get("id")}
    gids = {nbgrader_meta(c).get("grade_id") for c in nb.cells} - {None}
    best, best_key = None, (0, 0, 0)
    for name, ex in instructor.items():
        inst_ids = {c.get("id") for c in ex.nb.cells if c.get("id")}
        inst_gids = {s.grade_id for s in ex.solutions} | {t.grade_id for t in ex.tests}
        key = (len(ids & inst_ids), len(gids & inst_gids), int(name in filename))
        if key[:2] != (0, 0) and key > best_key:
            best, best_key = ex, key
    return best


def assemble(nb: Any, ex: Any, tokens: dict[str, str]) -> tuple[Any, dict[str, dict]]:
    """The notebook to run for submission ``nb`` against instructor exercises ``ex`` (a new notebook).

    Returns it and a plan: cell id -> {"kind": "test"|"solution"|"guard"|"student", "grade_id", "reinserted"}.
    ``tokens``: grade_id -> the secret each test cell displays when it runs to its end.
    """
    import copy

    import nbformat
    from genlab.course.exercises import nbgrader_meta

    by_id, by_gid = ex.test_by_cell_id(), ex.test_by_grade_id()
    sol_ids = {s.cell_id: s.grade_id for s in ex.solutions if s.cell_id}
    sol_gids = {s.grade_id for s in ex.solutions}
    used: set[str] = set()
    cells: list[tuple[Any, dict]] = []
    for c in nb.cells:
        meta = nbgrader_meta(c)
        test = by_id.get(c.get("id")) if c.get("cell_type") == "code" else None
        if test is None and c.get("cell_type") == "code" and meta.get("grade"):
            test = by_gid.get(meta.get("grade_id"))
        if test is not None and test.grade_id not in used:
            used.add(test.grade_id)
            cells.append((_test_cell(test, tokens[test.grade_id]), {"kind": "test", "grade_id": test.grade_id,
                                                                      "reinserted": False}))
            continue
        c = copy.deepcopy(c)
        if c.get("cell_type") == "code":
            c.outputs, c.execution_count = [], None
        c.metadata.pop("nbgrader", None)  # a student cell cannot declare itself a test (or claim points)
        gid = sol_ids.get(c.get("id")) or (meta.get("grade_id") if meta.get("grade_id") in sol_gids else None)
        cells.append((c, {"kind": "solution", "grade_id": gid} if gid else {"kind": "student"}))
    # re-insert deleted test cells after the closest preceding instructor cell still present
    inst_ids = [c.get("id") for c in ex.nb.cells]
    for test in ex.tests:
        if test.grade_id in used:
            continue
        present = {c.get("id"): i for i, (c, _) in enumerate(cells)}
        pos = next((present[cid] + 1 for cid in reversed(inst_ids[:test.index]) if cid in present), None)
        if pos is None:  # nothing before it survived: after the parameters cell, else at the top
            pos = next((i + 1 for i, (c, _) in enumerate(cells)
                        if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
        cells.insert(pos, (_test_cell(test, tokens[test.grade_id]),
                           {"kind": "test", "grade_id": test.grade_id, "reinserted": True}))
    guard = nbformat.v4.new_code_cell(GUARD_SOURCE)
    guard.id = GUARD_ID
    cells.insert(0, (guard, {"kind": "guard"}))
    # ids must be unique: test cells and the guard keep theirs, other cells get a fresh one on conflict
    reserved = {c.id for c, p in cells if p["kind"] in ("test", "guard")}
    seen, plan = set(), {}
    for n, (c, p) in enumerate(cells):
        if p["kind"] not in ("test", "guard") and (not c.get("id") or c.get("id") in reserved or c.get("id") in seen):
            c["id"] = f"genlab-cell-{n}"
        seen.add(c["id"])
        plan[c["id"]] = p
    out = nbformat.v4.new_notebook(cells=[c for c, _ in cells], metadata=copy.deepcopy(ex.nb.metadata))
    out.metadata.pop("papermill", None)
    out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return out, plan


def _test_cell(test: Any, token: str) -> Any:
    import nbformat

    payload = json.dumps({GRADE_MIME: {"grade_id": test.grade_id, "token": token}})
    source = (f"{GUARD_CALL}\n{test.source}\n"
              f"__import__('IPython.display').display.display({payload}, raw=True)  # genlab grade: reached the end")
    cell = nbformat.v4.new_code_cell(source)
    cell.id = test.cell_id or f"genlab-test-{test.grade_id}"
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": test.grade_id,
                                 "points": test.points, "schema_version": 3}
    return cell


# ----------------------------------------------------------------------------------------------------------------
# Running one submission (parent side)


def _worker_env(home: Path, config: GradeConfig) -> dict[str, str]:
    keep = ("PATH", "LANG", "TZ", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "LD_LIBRARY_PATH")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith(("LC_", "GENLAB_"))}
    threads = str(config.resolved_threads())
    env.update({
        "GENLAB_PROFILE": config.profile, "HOME": str(home), "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_PLATFORM_DIRS": "1", "MPLCONFIGDIR": str(home / ".matplotlib"), "MPLBACKEND": "Agg",
        "XDG_CACHE_HOME": str(home / ".cache"), "TMPDIR": str(home / "tmp"), "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "GENLAB_THREADS": threads,
        "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    })
    return env


def _run_user(config: GradeConfig) -> tuple[int, int] | None:
    if config.run_as is None or os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam(config.run_as)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def _run_job(job: _Job, config: GradeConfig, scratch: Path, out: Path) -> SubmissionResult:
    """Run one assembled submission in a worker process and score it."""
    ex = job.instructor
    tokens = {t.grade_id: secrets.token_hex(16) for t in ex.tests}
    nb, plan = assemble(job.nb, ex, tokens)
    res = SubmissionResult(job.label, str(job.path), ex.name, "ok", max_points=ex.max_points, sha256=job.sha256)
    jobdir = Path(tempfile.mkdtemp(prefix="job-", dir=scratch))
    home, work, outdir = jobdir / "home", jobdir / "work", jobdir / "out"
    for d in (home, home / "runtime", home / "tmp", home / ".matplotlib", work, outdir):
        d.mkdir(parents=True, exist_ok=True)
    (work / job.path.name).write_bytes(job.data)  # the kernel's folder holds a copy; the submission stays untouched
    _seed_matplotlib_cache(home / ".matplotlib")
    user = _run_user(config)
    if user:
        for p in [jobdir, *jobdir.rglob("*")]:
            os.chown(p, *user, follow_symlinks=False)
    payload = {
        "notebook": json.dumps(nb), "parameters": {"profile": config.profile}, "workdir": str(work),
        "output": str(outdir / "executed.ipynb"), "cell_timeout": config.resolved_cell_timeout(),
        "start_timeout": min(60.0, config.timeout), "memory_mb": config.memory_mb,
        "max_file_mb": config.max_file_mb, "isolate_network": config.isolate_network,
        "user": list(user) if user else None, "parent_pid": os.getpid(),
    }
    r, w = os.pipe()
    t0 = time.monotonic()
    deadline = t0 + config.timeout
    with open(jobdir / "worker.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(w)],
                                stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(w,), cwd=work,
                                env=_worker_env(home, config), start_new_session=True)
    os.close(w)
    events: list[dict] = []
    killed = False
    try:
        feeder = threading.Thread(target=_feed, args=(proc, json.dumps(payload).encode()), daemon=True)
        feeder.start()
        killed = not _read_events(r, deadline, events)
    finally:
        os.close(r)
        if killed:
            _kill_tree(proc.pid)
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()) + 10)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
    res.seconds = round(time.monotonic() - t0, 2)
    _score(res, events, plan, tokens, ex, killed, proc.returncode, config)
    executed = outdir / "executed.ipynb"
    if executed.is_file():
        target = out / "executed" / job.label / f"{job.path.stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed, target)
        res.executed = str(target.relative_to(out))
    if res.status == "crashed" and (jobdir / "worker.log").is_file():
        tail = (jobdir / "worker.log").read_bytes()[-2000:].decode("utf-8", "replace").strip().splitlines()
        tail = [ln for ln in tail if "Traceback" not in ln][-3:]
        if tail and "kernel" not in res.message:
            res.message += " | worker log: " + " / ".join(tail)
    shutil.rmtree(jobdir, ignore_errors=True)
    return res


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except OSError:  # the worker died before reading: its exit code tells the rest
        pass


def _read_events(fd: int, deadline: float, events: list[dict]) -> bool:
    """Collect JSON lines from the worker until it closes the pipe (True) or the deadline passes (False)."""
    import selectors

    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not sel.select(timeout=min(left, 1.0)):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return True
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    events.append(ev)
            if len(buf) > 64 << 20:  # no legitimate event is that long
                buf = b""


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker, the kernel and everything they started (each in its own process group)."""
    for _ in range(2):  # a second pass catches what was forked while the first one ran
        procs = [pid, *_descendants(pid)]
        for p in procs:
            for kill in (lambda q: os.killpg(os.getpgid(q), signal.SIGKILL), lambda q: os.kill(q, signal.SIGKILL)):
                try:
                    kill(p)
                except (ProcessLookupError, PermissionError):
                    pass


def _seed_matplotlib_cache(target: Path) -> None:
    """Copy matplotlib's font list into a fresh config dir (building it costs seconds in every kernel)."""
    candidates = [os.environ.get("MPLCONFIGDIR"), os.path.join(os.path.expanduser("~"), ".cache", "matplotlib"),
                  os.path.join(os.path.expanduser("~"), ".matplotlib")]
    for c in candidates:
        if c and os.path.isdir(c):
            for f in Path(c).glob("fontlist-*.json"):
                shutil.copyfile(f, target / f.name)
            return


def _is_memory_error(err: dict) -> bool:
    ename, evalue = err.get("ename") or "", err.get("evalue") or ""
    return ename.endswith("MemoryError") or "t allocate memory" in evalue or "Cannot allocate memory" in evalue


def _where(err: dict, test: Any) -> str:
    """Which part of a test cell raised: 'visible checks (line N)', 'hidden checks' or ''."""
    tb = _ANSI.sub("", "\n".join(err.get("traceback") or []))
    m = _CELL_LINE.search(tb)
    if not m:
        return ""
    line = int(m.group(1)) - 1  # the guard call is line 1 of the run
    if line in test.hidden_line_numbers():
        return "hidden checks"
    if 1 <= line <= len(test.source.splitlines()):
        return f"visible checks (line {line})"
    return ""


def _brief(err: dict) -> dict:
    value = "\n".join((err.get("evalue") or "").splitlines()[:3])[:300]
    return {"ename": err.get("ename") or "Error", "evalue": value}


def _score(res: SubmissionResult, events: list[dict], plan: dict, tokens: dict, ex: Any, killed: bool,
           returncode: int | None, config: GradeConfig) -> None:
    cells = {e.get("id"): e for e in events if e.get("event") == "cell"}
    res.sandbox = next((e for e in events if e.get("event") == "sandbox"), {})
    res.sandbox.pop("event", None)
    done = next((e for e in events if e.get("event") == "done"), None)
    peaks = [e["kernel"] for e in cells.values() if isinstance(e.get("kernel"), dict)]
    if peaks:
        res.kernel_peak_vm_mb = max(p.get("vm_peak_mb", 0) for p in peaks)
        res.kernel_peak_rss_mb = max(p.get("rss_peak_mb", 0) for p in peaks)
    memory = False
    for cid, ev in cells.items():
        errs = ev.get("errors") or ([{"ename": ev.get("ename"), "evalue": ev.get("evalue")}]
                                    if ev.get("status") == "error" else [])
        memory |= any(_is_memory_error(e) for e in errs)
        if errs and plan.get(cid, {}).get("kind") != "test":
            p = plan.get(cid, {"kind": "student"})
            res.errors.append({"index": ev.get("index"), "cell_id": cid, "kind": p["kind"],
                               "grade_id": p.get("grade_id"), **_brief(errs[0]),
                               "timed_out": bool(ev.get("timed_out"))})
    timed_out_cell = any(e.get("timed_out") for e in cells.values())
    tests_by_gid = ex.test_by_grade_id()
    for cid, p in plan.items():
        if p["kind"] != "test":
            continue
        test = tests_by_gid[p["grade_id"]]
        ev = cells.get(cid)
        tr = TestResult(test.grade_id, cid, 0.0, test.points, "not run", reinserted=p["reinserted"])
        if ev is not None:
            errs = ev.get("errors") or []
            token_ok = any(isinstance(g, dict) and g.get("grade_id") == test.grade_id
                           and secrets.compare_digest(str(g.get("token", "")), tokens[test.grade_id])
                           for g in ev.get("grade") or [])
            if ev.get("status") == "ok" and not errs and not ev.get("timed_out") and token_ok:
                tr.result, tr.points = "passed", test.points
            else:
                tr.result = "failed"
                err = errs[0] if errs else {"ename": ev.get("ename"), "evalue": ev.get("evalue")}
                if ev.get("timed_out"):
                    err = {"ename": "Timeout", "evalue": f"the cell ran over {config.resolved_cell_timeout():g} s"}
                elif not err.get("ename"):
                    err = {"ename": "Incomplete", "evalue": "the test cell did not run to its end"}
                tr.error = {**_brief(err), "where": _where(err, test)}
        res.tests.append(tr)
    res.points = float(sum(t.points for t in res.tests))
    outcome = (done or {}).get("outcome")
    if killed or outcome == "stuck":
        res.status = "timeout"
        res.message = (f"stopped at the {config.timeout:g} s time limit" if killed else (done or {}).get("message", ""))
    elif done is None:
        res.status = "crashed"
        res.message = f"the grading process died (exit code {returncode})"
    elif outcome in ("crashed", "error"):
        res.status = "crashed"
        res.message = done.get("message", "")
    elif memory:
        res.status = "memory"
        res.message = f"an allocation failed under the {config.memory_mb} MB memory limit"
    elif timed_out_cell:
        res.status = "timeout"
        res.message = f"a cell ran over {config.resolved_cell_timeout():g} s and was interrupted"


# ----------------------------------------------------------------------------------------------------------------
# The batch


def grade(submissions: list[str | Path], out: str | Path, instructor: list[str | Path] | None = None,
          config: GradeConfig | None = None, progress: Callable[[SubmissionResult], None] | None = None
          ) -> list[SubmissionResult]:
    """Grade every submission; write ``out``/grades.csv, grades.json, feedback/, executed/. Returns the rows.

    submissions: notebooks, or folders of notebooks (one student each). instructor: notebooks or folders (default:
    the course's notebooks/). A broken or hostile submission gets its own status; the batch always completes.
    """
    config = config or GradeConfig()
    inst = load_instructor(instructor)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [_Job(label, path) for label, path in expand_submissions(submissions)]
    if not jobs:
        raise ValueError("no submissions to grade")
    for job in jobs:
        why = _read_submission(job, config)
        if why is None:
            job.instructor = match_instructor(job.nb, inst, job.path.name)
            if job.instructor is None:
                why = ("matches no instructor notebook (no cell id or grade_id in common with "
                       f"{', '.join(inst)}): start from the released notebook")
        if why is not None:
            guess = next((ex for name, ex in inst.items() if name in job.path.name), None)
            job.result = SubmissionResult(job.label, str(job.path), guess.name if guess else "", "invalid",
                                          max_points=guess.max_points if guess else 0.0, message=why,
                                          sha256=job.sha256)
    runnable = [j for j in jobs if j.result is None]
    scratch = Path(tempfile.mkdtemp(prefix="genlab-grade-"))
    os.chmod(scratch, 0o711)  # workers (maybe another user) enter their own job dir but cannot list the others
    try:
        with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
            futures = {pool.submit(_run_job, j, config, scratch, out): j for j in runnable}
            for job in jobs:
                if job.result is not None and progress:
                    progress(job.result)
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    job.result = fut.result()
                except Exception as e:  # a grader bug on one submission must not lose the batch
                    job.result = SubmissionResult(job.label, str(job.path), job.instructor.name, "crashed",
                                                  max_points=job.instructor.max_points, sha256=job.sha256,
                                                  message=f"grader error: {type(e).__name__}: {e}")
                if progress:
                    progress(job.result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = [j.result for j in jobs]
    write_gradebook(results, inst, out, config)
    return results


def write_gradebook(results: list[SubmissionResult], inst: dict[str, Any], out: Path, config: GradeConfig) -> None:
    """grades.csv, grades.json and feedback/<submission>.md in ``out``."""
    with open(out / "grades.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in results:
            w.writerow(r.row())
    doc = {
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {**asdict(config), "cell_timeout": config.resolved_cell_timeout(),
                   "threads": config.resolved_threads()},
        "instructor": {name: {"max_points": ex.max_points,
                              "tests": [{"grade_id": t.grade_id, "cell_id": t.cell_id, "points": t.points}
                                        for t in ex.tests],
                              "written_answers": [s.grade_id for s in ex.solutions if s.cell_type == "markdown"]}
                       for name, ex in inst.items()},
        "submissions": [asdict(r) for r in results],
    }
    (out / "grades.json").write_text(json.dumps(doc, indent=1))
    fb = out / "feedback"
    fb.mkdir(exist_ok=True)
    by_label: dict[str, list[SubmissionResult]] = {}
    for r in results:
        by_label.setdefault(r.submission, []).append(r)
    for label, rows in by_label.items():
        (fb / f"{label}.md").write_text(feedback(label, rows, config))


def feedback(label: str, rows: list[SubmissionResult], config: GradeConfig) -> str:
    """The student's feedback: score per notebook, each failed test with the first lines of its error."""
    out = io.StringIO()
    out.write(f"# Feedback: {label}\n")
    for r in rows:
        title = r.notebook or Path(r.path).name
        out.write(f"\n## {title}: {r.points:g} / {r.max_points:g} points ({r.status})\n\n")
        if r.message:
            out.write(f"{_status_text(r.status)}: {r.message}\n\n")
        if r.tests:
            out.write("| test | points | result |\n|---|---|---|\n")
            for t in r.tests:
                note = " (re-inserted: the cell was missing)" if t.reinserted else ""
                out.write(f"| {t.grade_id} | {t.points:g} / {t.max_points:g} | {t.result}{note} |\n")
        failed = [t for t in r.tests if t.error]
        if failed or r.errors:
            out.write("\nWhat went wrong:\n\n")
        for t in failed:
            where = f" in the {t.error['where']}" if t.error.get("where") else ""
            out.write(f"- test `{t.grade_id}`{where}: {_one_line(t.error)}\n")
        for e in r.errors:
            what = {"solution": f"your exercise cell `{e.get('grade_id')}`", "student": "a cell of yours",
                    "guard": "the grader's first cell"}.get(e["kind"], "a cell")
            out.write(f"- {what} (cell {e.get('index')}) raised {_one_line(e)}\n")
    out.write(f"\nGraded {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: profile {config.profile}, time limit "
              f"{config.timeout:g} s ({config.resolved_cell_timeout():g} s per cell), memory limit "
              f"{config.memory_mb} MB. A test cell scores its points when it runs without an error; printed output "
              "does not count.\n")
    return out.getvalue()


def _one_line(err: dict) -> str:
    value = (err.get("evalue") or "").replace("\n", " / ")
    return f"{err.get('ename')}: {value}" if value else str(err.get("ename"))


def _status_text(status: str) -> str:
    return {"timeout": "Time limit", "memory": "Memory limit", "crashed": "The run crashed",
            "invalid": "Not graded", "ok": "Note"}[status]


def main(args: argparse.Namespace) -> int:
    """``genlab grade``: 0 when the gradebook was written (whatever the grades), 1 on a usage error.

    Instructor notebooks: ``args.instructor`` if the CLI defines it, else ``$GENLAB_INSTRUCTOR`` (paths separated by
    os.pathsep), else the course's notebooks/.
    """
    instructor = getattr(args, "instructor", None) or (
        os.environ["GENLAB_INSTRUCTOR"].split(os.pathsep) if os.environ.get("GENLAB_INSTRUCTOR") else None)
    config = GradeConfig(timeout=args.timeout, memory_mb=args.memory_mb, jobs=args.jobs)

    def show(r: SubmissionResult) -> None:
        print(f"{r.submission:>20} {r.notebook or '-':<24} {r.points:g}/{r.max_points:g} {r.status}"
              + (f"  {r.message}" if r.message and r.status != "ok" else ""), flush=True)

    try:
        results = grade(args.submissions, args.out, instructor, config, progress=show)
    except (ValueError, FileNotFoundError) as e:
        print(f"genlab grade: {e}", file=sys.stderr)
        return 1
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    print(f"graded {len(results)} notebook(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
          + f" -> {Path(args.out) / 'grades.csv'}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# The worker: runs in its own process, sandboxes itself, executes the notebook, reports each cell on a private pipe


class _KernelStuck(Exception):
    """A cell ran over its time limit and the kernel ignored the interrupt."""


def _enter_sandbox(payload: dict) -> dict:
    """Apply the limits to this process (the kernel inherits them). Returns what was obtained, for the gradebook."""
    import resource

    info: dict[str, Any] = {"pid": os.getpid()}
    libc = None
    if sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the kernel stay ours to kill
    if payload.get("isolate_network"):
        info["network"] = _isolate_network(libc)
    else:
        info["network"] = "not isolated (disabled)"
    user = payload.get("user")
    if user and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(user[1])
        os.setuid(user[0])
    try:
        import pwd

        info["user"] = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        info["user"] = str(os.geteuid()) if hasattr(os, "geteuid") else "?"
    if libc is not None:  # PR_SET_PDEATHSIG (after the uid change, which clears it): die with the grader
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != payload.get("parent_pid"):
            os._exit(1)
    cap = int(payload["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    fsize = int(payload["max_file_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    info["memory"] = f"RLIMIT_AS {payload['memory_mb']} MB per process"
    return info


def _isolate_network(libc: Any) -> str:
    """Move this process into a new network namespace with only loopback up; say what happened."""
    if libc is None:
        return f"not isolated: network namespaces need Linux (this is {sys.platform})"
    import ctypes

    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    how = "network namespace"
    if libc.unshare(clone_newnet) != 0:
        first = os.strerror(ctypes.get_errno())
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(clone_newuser | clone_newnet) != 0:
            return (f"not isolated: unshare(CLONE_NEWNET) failed ({first}) and unprivileged user namespaces are "
                    f"unavailable ({os.strerror(ctypes.get_errno())})")
        try:
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
            Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
        except OSError as e:
            return f"isolated, but the user namespace could not map ids ({e})"
        how = "user + network namespace"
    try:  # the kernel talks to its client over 127.0.0.1: bring loopback up (SIOCGIFFLAGS / SIOCSIFFLAGS)
        import fcntl
        import socket
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
            fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 0x1))
    except OSError as e:
        return f"isolated ({how}), but loopback could not be brought up ({e}): the kernel may fail to start"
    return f"isolated ({how}: loopback only)"


def _kernel_memory() -> dict | None:
    """Peak address space and peak RSS of this worker's child (the kernel), from /proc."""
    for pid in _descendants(os.getpid()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        vals = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
        if "ipykernel" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace"):
            continue
        mb = lambda k: round(int(vals.get(k, "0 kB").split()[0]) / 1024, 1)  # noqa: E731
        return {"vm_peak_mb": mb("VmPeak"), "rss_peak_mb": mb("VmHWM")}
    return None


def _error_output(o: dict) -> dict:
    return {"ename": str(o.get("ename", "")), "evalue": str(o.get("evalue", ""))[:2000],
            "traceback": [str(t)[:2000] for t in (o.get("traceback") or [])[:30]]}


def _execute(payload: dict, emit: Callable[..., None]) -> tuple[str, str]:
    # jsonschema imports rfc3987_syntax (an IRI checker nbformat never needs) when present; it costs ~2 s per worker
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import nbformat
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.reads(payload["notebook"], as_version=4)
    cell_timeout = float(payload["cell_timeout"])

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict | None, **_: Any) -> None:
        reply = execute_reply or {}
        timed_out = bool(reply) and "header" not in reply  # nbclient's stand-in reply after a cell timeout
        content = reply.get("content", {})
        outputs = cell.get("outputs", [])
        errors = [_error_output(o) for o in outputs if o.get("output_type") == "error"]
        grade = [o["data"][GRADE_MIME] for o in outputs
                 if o.get("output_type") in ("display_data", "execute_result") and GRADE_MIME in o.get("data", {})]
        emit("cell", id=cell.get("id"), index=cell_index, status=content.get("status"), timed_out=timed_out,
             ename=content.get("ename"), evalue=str(content.get("evalue", ""))[:2000], errors=errors, grade=grade,
             kernel=_kernel_memory())
        if timed_out and not any(e["ename"] == "KeyboardInterrupt" for e in errors):
            raise _KernelStuck(f"a cell ran over {cell_timeout:g} s and the kernel did not respond to the interrupt")

    try:
        papermill.execute_notebook(
            nb, payload["output"], parameters=payload["parameters"], kernel_name="python3", cwd=payload["workdir"],
            progress_bar=False, log_output=False, start_timeout=int(payload["start_timeout"]),
            execution_timeout=cell_timeout,
            # nbclient options (papermill passes them through): keep going past errors, interrupt a cell that runs
            # over its time and go on, do not wait for a graceful shutdown
            allow_errors=True, interrupt_on_timeout=True, raise_on_iopub_timeout=False, iopub_timeout=5,
            error_on_timeout={"ename": "Timeout", "evalue": f"the cell ran over {cell_timeout:g} s", "traceback": []},
            shutdown_kernel="immediate", on_cell_executed=on_cell_executed)
    except PapermillExecutionError:
        pass  # some cells raised: expected, they are scored from the events
    except DeadKernelError:
        return "crashed", "the kernel died (the notebook exited its process or was killed)"
    except _KernelStuck as e:
        return "stuck", str(e)
    except Exception as e:  # noqa: BLE001 -- reported to the grader, which records it as 'crashed'
        return "error", f"{type(e).__name__}: {str(e)[:300]}"
    return "ok", ""


def _worker_main(argv: list[str]) -> int:
    """Entry point of the worker process: payload (JSON) on stdin, events (JSON lines) on the fd in argv."""
    fd = int(argv[argv.index("--worker") + 1])
    os.set_inheritable(fd, False)  # the kernel must not get the event pipe
    payload = json.loads(sys.stdin.buffer.read())
    events = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def emit(event: str, **kw: Any) -> None:
        events.write(json.dumps({"event": event, **kw}) + "\n")
        events.flush()

    emit("sandbox", **_enter_sandbox(payload))
    try:
        outcome, message = _execute(payload, emit)
    except BaseException as e:  # noqa: BLE001
        outcome, message = "error", f"{type(e).__name__}: {e}"
    emit("done", outcome=outcome, message=message)
    for pid in _descendants(os.getpid()):  # anything the notebook left running
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.path.pop(0)  # run by path: this file's folder must not shadow top-level modules
    sys.exit(_worker_main(sys.argv[1:]))
