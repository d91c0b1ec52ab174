"""The report of a course run: what ``genlab run`` learned from each executed notebook, as JSON and as Markdown.

``report.json`` (other fields are additions)::

    {"profile": "cpu",                       # the resolved profile (ci | cpu | gpu)
     "notebooks": [{"name": "05_pixelcnn_blind_spot", "status": "ok" | "failed", "seconds": 81.2,
                    "metrics": {"test_bpd": 1.31, ...}, "error": null | "ValueError: ... (cell 7, In [5])",
                    "failing_cell": null | {"index", "execution_count", "state", "source", "ename", "evalue",
                                            "traceback"},
                    "peak_memory_mb": 812.4 | null, "path", "output", "log", "log_tail", ...}],
     "started", "seconds", "jobs", "machine": {...}, "commit", ...}

Metrics are what the notebook recorded with :func:`genlab.record.record` (read back from the executed notebook by
:func:`genlab.record.read_records`). A failure names the cell that raised (papermill stops there and stores the
exception as the cell's ``error`` output) or, when no cell raised (a timeout, a dead kernel, an unreadable notebook),
the cell that was running and the tail of the child's log. ``peak_memory_mb`` is the peak resident memory of the
notebook's processes (papermill + kernel + the kernel's children; see :class:`genlab.course.run.MemoryPeak`).
``report.md`` is the same for people: one table row per notebook, then a section per failure with the failing cell's
source and its error.
"""
from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import nbformat

from genlab.record import read_records

#: Tags of the cells papermill adds to an executed notebook (never part of a source notebook).
PAPERMILL_TAGS = ("injected-parameters", "papermill-error-cell-tag")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SOURCE_LINES, _TRACE_LINES, _LOG_LINES = 25, 30, 30


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _excerpt(source: str, lines: int = _SOURCE_LINES) -> str:
    rows = source.splitlines()
    return source if len(rows) <= lines else "\n".join(rows[:lines] + [f"# ... ({len(rows) - lines} more lines)"])


def log_tail(log: str | os.PathLike, lines: int = _LOG_LINES) -> str:
    """The last ``lines`` lines of a child's log ('' if there is none), colour codes removed."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return _tail(strip_ansi(text), lines)


def find_failing_cell(nb: nbformat.NotebookNode) -> dict[str, Any] | None:
    """The cell that stopped an executed notebook, or None (call it for a notebook that failed).

    In order: the cell papermill marked ``failed`` (it raised; ``state`` "error", with its ``error`` output), the
    cell papermill left ``running`` (the run was stopped: a timeout), a cell with an ``error`` output, and last the
    last cell that papermill started (``state`` "started": e.g. the kernel died in it). ``index`` counts the cells
    of the *source* notebook from 0 (papermill's added cells are skipped); None when the failure is in papermill's
    injected-parameters cell.
    """
    located: list[tuple[int | None, Any]] = []
    index = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        added = any(t in tags for t in PAPERMILL_TAGS)
        if not (added and "injected-parameters" not in tags):  # skip papermill's error-marker cells entirely
            located.append((None if added else index, cell))
        if not added:
            index += 1
    code = [(i, c) for i, c in located if c.cell_type == "code"]

    def pm(cell: Any) -> dict[str, Any]:
        return cell.get("metadata", {}).get("papermill", {})

    def error_of(cell: Any) -> Any:
        return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)

    for state, mark in (("error", "failed"), ("running", "running")):
        for i, cell in code:
            if pm(cell).get("status") == mark:
                return _describe(i, cell, state, error_of(cell))
    for i, cell in code:
        if error_of(cell) is not None and "raises-exception" not in cell.get("metadata", {}).get("tags", []):
            return _describe(i, cell, "error", error_of(cell))
    started = [(i, c) for i, c in code if pm(c).get("start_time")]
    return _describe(*started[-1], "started", None) if started else None


def _describe(index: int | None, cell: Any, state: str, error: Any) -> dict[str, Any]:
    return {
        "index": index,
        "execution_count": cell.get("execution_count"),
        "state": state,
        "source": _excerpt(cell.source),
        "ename": error.get("ename") if error else None,
        "evalue": error.get("evalue") if error else None,
        "traceback": _tail(strip_ansi("\n".join(error.get("traceback", []))), _TRACE_LINES) if error else None,
    }


def cell_label(cell: dict[str, Any]) -> str:
    """'cell 3, In [2]' -- the source index and the execution count a reader sees in Jupyter."""
    where = "papermill's injected parameters" if cell["index"] is None else f"cell {cell['index']}"
    return where if cell.get("execution_count") is None else f"{where}, In [{cell['execution_count']}]"


def notebook_entry(name: str, *, source: Path, output: Path, log: Path, process: dict[str, Any],
                   timeout: float) -> dict[str, Any]:
    """The report entry of one notebook from its executed copy ``output`` and the child's ``process`` result
    (:func:`genlab.course.run.run_process`)."""
    nb, unreadable = None, None
    if output.exists():
        try:
            nb = nbformat.read(str(output), as_version=4)
        except Exception as e:  # a half-written notebook of a killed child: report it, do not crash the run
            unreadable = f"{type(e).__name__}: {e}"
    ok = process["returncode"] == 0 and nb is not None and not process["timed_out"] and not process["cancelled"]
    entry: dict[str, Any] = {
        "name": name,
        "path": _display_path(source),
        "status": "ok" if ok else "failed",
        "seconds": process["seconds"],
        "peak_memory_mb": process["peak_memory_mb"],
        "metrics": read_records(nb) if nb is not None else {},
        "error": None,
        "failing_cell": None,
        "returncode": process["returncode"],
        "output": str(output) if output.exists() else None,
        "log": str(log),
    }
    if ok:
        return entry
    cell = find_failing_cell(nb) if nb is not None else None
    tail = log_tail(log)
    last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "")
    at = f" ({cell_label(cell)})" if cell else ""
    if process["timed_out"]:
        error = f"timeout: still running after {timeout:g} s{at}; stopped (process tree killed)"
    elif process["cancelled"]:
        error = f"interrupted{at}: stopped before it finished"
    elif cell and cell["ename"]:
        error = f"{cell['ename']}: {cell['evalue']}{at}"
    elif nb is None:
        error = (f"papermill exited with code {process['returncode']} without an executed notebook"
                 f"{' (' + unreadable + ')' if unreadable else ''}: {last}")
    else:
        error = f"papermill exited with code {process['returncode']}{at}: {last}"
    entry.update(error=error, failing_cell=cell, log_tail=tail)
    return entry


def _display_path(path: Path) -> str:
    from genlab.paths import REPO_ROOT

    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------ run-level facts

def machine_info() -> dict[str, Any]:
    """Where the run happened (:func:`genlab.provenance.machine`) plus the genlab version."""
    import genlab
    from genlab.provenance import machine

    return {**machine(), "genlab": genlab.__version__}


# ------------------------------------------------------------------------------------------------- writing

def atomic_write(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path``: readers see the old file or the
    new one, never half of one. ``mode``: permission bits to give the file (default: the umask's)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(report: dict[str, Any], out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``out/report.json`` and ``out/report.md`` atomically; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "report.json", out / "report.md"
    atomic_write(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    atomic_write(md_path, render_markdown(report, out))
    return json_path, md_path


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text}\n{fence}"


def _rel(path: str | None, base: Path | None) -> str | None:
    if path is None or base is None:
        return path
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


def render_markdown(report: dict[str, Any], out: str | os.PathLike | None = None) -> str:
    """``report.md``: a summary, one table row per notebook, then a section per failed notebook.

    Links to executed notebooks and logs are relative to ``out`` (where report.md lives) when it is given.
    """
    base = Path(out).resolve() if out is not None else None
    nbs = report.get("notebooks", [])
    failed = [e for e in nbs if e["status"] != "ok"]
    m = report.get("machine", {})
    lines = ["# Course run report", ""]
    lines.append(f"- profile: **{report['profile']}**"
                 + (f" (requested: {report['requested_profile']})" if report.get("requested_profile") not in
                    (None, report["profile"]) else ""))
    if "started" in report:
        lines.append(f"- started: {report['started']} (UTC); wall time {report.get('seconds', 0):.1f} s with "
                     f"{report.get('jobs', 1)} job(s)")
    if m:
        torch_part = f"torch {m.get('torch')} on {m.get('device_name', 'cpu')}" if m.get("torch") else ""
        lines.append(f"- machine: {m.get('platform')}, Python {m.get('python')}, {m.get('cpu_count')} CPUs"
                     + (f", {m['memory_gb']} GB RAM" if m.get("memory_gb") else "") + (f", {torch_part}"
                                                                                          if torch_part else ""))
    if report.get("commit"):
        lines.append(f"- commit: `{report['commit'][:12]}`")
    if report.get("interrupted"):
        lines.append("- **interrupted**: the run was stopped before it finished; notebooks not listed did not run")
    lines.append(f"- result: {len(nbs) - len(failed)} of {len(nbs)} notebooks ok"
                 + (f"; failed: {', '.join(e['name'] for e in failed)}" if failed else ""))
    lines += ["", "| notebook | status | seconds | peak memory (MB) | metrics |", "|---|---|--:|--:|---|"]
    for e in nbs:
        out_link = _rel(e.get("output"), base)
        name = f"[{e['name']}]({out_link})" if out_link else e["name"]
        status = "ok" if e["status"] == "ok" else f"**{e['status']}**"
        mem = "" if e.get("peak_memory_mb") is None else f"{e['peak_memory_mb']:.0f}"
        metrics = "; ".join(f"`{k}` = {_value(v)}" for k, v in e.get("metrics", {}).items()) or "-"
        lines.append(f"| {name} | {status} | {e['seconds']:.1f} | {mem} | {_cell(metrics)} |")
    for e in failed:
        lines += ["", f"## {e['name']}: failed", "", f"**Error:** {e['error']}", ""]
        cell = e.get("failing_cell")
        if cell:
            lines += [f"Failing cell ({cell_label(cell)}):", "", _fence(cell["source"], "python"), ""]
            if cell.get("traceback"):
                lines += ["Traceback (last lines):", "", _fence(cell["traceback"]), ""]
        if e.get("log_tail") and not (cell and cell.get("traceback")):
            lines += ["Log (last lines):", "", _fence(e["log_tail"]), ""]
        log = _rel(e.get("log"), base)
        if log:
            lines.append(f"Full log: [{log}]({log})")
    return "\n".join(lines).rstrip() + "\n"
