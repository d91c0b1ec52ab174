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
3. **Run** it in the sandbox (:mod:`genlab.course.sandbox`): a worker process of its own, its own temporary working
   directory holding a *copy* of the notebook, papermill with the ``ci`` profile (injected ``profile="ci"`` and
   ``GENLAB_PROFILE=ci``), a memory cap, a per-cell timeout that interrupts the kernel and goes on (an exception or a
   hang costs that exercise only), a wall-clock timeout for the whole run, and where Linux allows it no network, a
   read-only view of every file outside the job's folder and a PID namespace of its own. What was obtained is
   recorded per submission (``sandbox`` in grades.json).
4. **Score** each test cell from its own execution result, reported by the worker as each cell finishes: it passes
   when the kernel's execute reply says ``ok``, the cell has no error output, and the cell displayed its token (so it
   ran to its last line -- a test cell rewritten by an input transformer does not). Nothing the student's code
   prints or displays is read.

Statuses (``grades.csv``): ``ok``; ``timeout`` (wall-clock limit, or a cell over its time limit); ``crashed`` (the
kernel or the worker died, e.g. ``os._exit``); ``memory`` (an allocation failed under the cap: ``MemoryError``, or
torch's "can't allocate memory"); ``invalid``. Points always count the test cells that passed before the run ended.

Memory cap: ``RLIMIT_AS`` bounds each process's address space, which counts mapped libraries too. Measured here
(grades.json records each kernel's peak), a kernel that imported torch and genlab peaks at 0.8 GB of address space,
and 1.3 GB after running notebook 00 in the ci profile, so the default 4096 MB leaves well over 2 GB for data; the
sandbox keeps threads and malloc arenas, which also count, small. We keep RLIMIT_AS rather than cgroups because it
needs no privileges and works the same on every Linux (and is inherited by the kernel for free).

Outputs in ``DIR``: ``grades.csv`` (submission, notebook, points, max_points, status, path), ``grades.json`` (per-test
detail, errors per cell, the sandbox actually obtained, peak memory), ``feedback/<submission>.md`` per student and
``executed/<submission>/<notebook>.ipynb`` (the run, for audit: it contains the hidden tests, so hand students their
feedback file only). Submissions are only read, never written.

Limits (state them to students and colleagues): the checks run in the student's kernel, so code written to attack
this grader specifically (rewriting IPython's execution machinery, reading the run's tokens from the kernel's own
input) can defeat any same-process grader, nbgrader and otter included; the executed notebooks are kept so that such
attempts are visible. See :mod:`genlab.course.sandbox` for what the confinement does not cover.
"""
from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import nbformat

from genlab.course.exercises import Exercises, TestCell, course_notebooks, nbgrader_meta, read_exercises
from genlab.course.sandbox import ConfinedRun, Limits, run_confined

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
CSV_COLUMNS = ("submission", "notebook", "points", "max_points", "status", "path")
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
    isolate: bool = True  # network, mount (read-only files) and PID namespaces where Linux allows them
    threads: int | None = None
    max_file_mb: int = 512  # RLIMIT_FSIZE: largest file a submission may write
    max_submission_mb: int = 64  # larger files are invalid (a notebook with outputs is a few MB)

    def resolved_cell_timeout(self) -> float:
        return float(self.cell_timeout) if self.cell_timeout else max(5.0, self.timeout / 2)

    def resolved_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // max(1, self.jobs))

    def limits(self) -> Limits:
        return Limits(timeout=self.timeout, cell_timeout=self.resolved_cell_timeout(), memory_mb=self.memory_mb,
                      max_file_mb=self.max_file_mb, threads=self.resolved_threads(), isolate=self.isolate,
                      profile=self.profile)


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
                "max_points": f"{self.max_points:g}", "status": self.status, "path": self.path}


# ----------------------------------------------------------------------------------------------------------------
# Instructor notebooks, submissions, matching


@dataclass
class _Job:
    label: str
    path: Path
    data: bytes = b""
    sha256: str = ""
    nb: Any = None
    instructor: Exercises | None = None
    result: SubmissionResult | None = None


def load_instructor(paths: str | Path | list[str | Path] | None = None) -> dict[str, Exercises]:
    """Exercises of each instructor notebook that has test cells, by notebook name.

    paths: one or several instructor folders (their ``NN_topic.ipynb``) or notebooks; default: the course's
    notebooks/. A path that does not exist raises FileNotFoundError naming it and what to pass instead.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    if not paths:
        files = course_notebooks()
    for p in paths or []:
        p = Path(p).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"instructor notebooks not found at {p}: pass --instructor FOLDER (the folder of "
                                    "the instructor notebooks NN_topic.ipynb, e.g. the course's notebooks/) or "
                                    "--instructor NOTEBOOK.ipynb, once per folder or notebook")
        files += course_notebooks(p) if p.is_dir() else [p]
    out = {}
    for f in files:
        ex = read_exercises(f)
        if ex.tests:
            out[ex.name] = ex
    if not out:
        raise ValueError(f"none of the instructor notebooks has test cells: {[str(f) for f in files]}")
    return out


STUDENT_FROM = ("auto", "folder", "stem")


def expand_submissions(submissions: list[str | Path], student_from: str = "auto") -> list[tuple[str, Path]]:
    """(label, notebook path) per notebook. A folder argument is one student's submission (label: the folder name)
    with every ``*.ipynb`` under it (checkpoints excluded). A notebook argument is labelled by ``student_from``:
    "folder" -- its folder's name (``submissions/<student>/00_tour.ipynb``); "stem" -- its file name; "auto" -- the
    folder's name when several notebook arguments share a file name (students upload the same file), else the stem.
    Labels are unique: a clash gets -2, -3, ... only when two arguments would otherwise share one."""
    if student_from not in STUDENT_FROM:
        raise ValueError(f"student_from must be one of {STUDENT_FROM}, got {student_from!r}")
    files = [Path(s) for s in submissions if not Path(s).is_dir()]
    stems = [f.stem for f in files]
    by_folder = student_from == "folder" or (student_from == "auto" and len(set(stems)) < len(stems))
    items = []
    for s in submissions:
        p = Path(s)
        if p.is_dir():
            nbs = sorted(f for f in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts)
            items += [(p.resolve().name, f) for f in nbs] or [(p.resolve().name, p)]
        else:
            items.append((p.resolve().parent.name if by_folder else p.stem, p))
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


def match_instructor(nb: Any, instructor: dict[str, Exercises], filename: str = "") -> Exercises | None:
    """The instructor notebook (Exercises) sharing the most cell ids with ``nb``, then the most grade_ids; None if
    it shares neither with any. Ties go to the notebook whose name matches the file name."""
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


def assemble(nb: Any, ex: Exercises, tokens: dict[str, str]) -> tuple[Any, dict[str, dict]]:
    """The notebook to run for submission ``nb`` against instructor exercises ``ex`` (a new notebook).

    Returns it and a plan: cell id -> {"kind": "test"|"solution"|"guard"|"student", "grade_id", "reinserted"}.
    ``tokens``: grade_id -> the secret each test cell displays when it runs to its end.
    """
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


def _test_cell(test: TestCell, token: str) -> Any:
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


def _run_job(job: _Job, config: GradeConfig, scratch: Path, out: Path) -> SubmissionResult:
    """Run one assembled submission in the sandbox and score it."""
    ex = job.instructor
    tokens = {t.grade_id: secrets.token_hex(16) for t in ex.tests}
    nb, plan = assemble(job.nb, ex, tokens)
    executed = out / "executed" / job.label / f"{job.path.stem}.ipynb"
    executed.unlink(missing_ok=True)  # from an earlier batch into the same folder
    run = run_confined(json.dumps(nb), filename=job.path.name, data=job.data, limits=config.limits(), scratch=scratch,
                       parameters={"profile": config.profile}, collect=(GRADE_MIME,), executed_to=executed)
    res = SubmissionResult(job.label, str(job.path), ex.name, "ok", max_points=ex.max_points, sha256=job.sha256,
                           seconds=run.seconds, sandbox=run.sandbox)
    if executed.is_file():
        res.executed = str(executed.relative_to(out))
    _score(res, run, plan, tokens, ex, config)
    return res


def _is_memory_error(err: dict) -> bool:
    ename, evalue = err.get("ename") or "", err.get("evalue") or ""
    return ename.endswith("MemoryError") or "t allocate memory" in evalue or "Cannot allocate memory" in evalue


def _where(err: dict, test: TestCell) -> str:
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


def _score(res: SubmissionResult, run: ConfinedRun, plan: dict, tokens: dict, ex: Exercises,
           config: GradeConfig) -> None:
    """Fill in tests, points, errors and status of ``res`` from the run's events."""
    cells, done = run.cells, run.done
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
            shown = [d.get("data") for d in ev.get("displayed") or [] if d.get("mime") == GRADE_MIME]
            token_ok = any(isinstance(g, dict) and g.get("grade_id") == test.grade_id
                           and secrets.compare_digest(str(g.get("token", "")), tokens[test.grade_id]) for g in shown)
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
    if run.killed or outcome == "stuck":
        res.status = "timeout"
        res.message = f"stopped at the {config.timeout:g} s time limit" if run.killed else done.get("message", "")
    elif done is None:
        res.status = "crashed"
        res.message = f"the grading process died (exit code {run.returncode})" + (
            f": {run.log_tail}" if run.log_tail else "")
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
          config: GradeConfig | None = None, progress: Callable[[SubmissionResult], None] | None = None,
          student_from: str = "auto") -> list[SubmissionResult]:
    """Grade every submission; write ``out``/grades.csv, grades.json, feedback/, executed/. Returns the rows.

    submissions: notebooks, or folders of notebooks (one student each). instructor: notebooks or folders (default:
    the course's notebooks/). A broken or hostile submission gets its own status; the batch always completes.
    """
    config = config or GradeConfig()
    inst = load_instructor(instructor)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [_Job(label, path) for label, path in expand_submissions(submissions, student_from)]
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
    if isinstance(instructor, (str, Path)):
        instructor = [instructor]
    config = GradeConfig(timeout=args.timeout, memory_mb=args.memory_mb, jobs=args.jobs)

    def show(r: SubmissionResult) -> None:
        print(f"{r.submission:>20} {r.notebook or '-':<24} {r.points:g}/{r.max_points:g} {r.status}"
              + (f"  {r.message}" if r.message and r.status != "ok" else ""), flush=True)

    try:
        results = grade(args.submissions, args.out, instructor, config, progress=show,
                        student_from=getattr(args, "student_from", "auto"))
    except (ValueError, FileNotFoundError) as e:
        print(f"genlab grade: {e}", file=sys.stderr)
        return 1
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    print(f"graded {len(results)} notebook(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
          + f" -> {Path(args.out) / 'grades.csv'}")
    return 0
