"""The course as a static website: the executed notebooks of one course run, rendered with Sphinx + MyST-NB.

    genlab site [--run DIR] [--out DIR]        # DIR = what `genlab run --out DIR` wrote (default build/)
    genlab run ... --site                      # the same, right after the run, into OUT/site

    from genlab.course.site import build_site
    index = build_site("build")                # -> build/site/index.html

The site works offline: serve the folder (``python3 -m http.server -d build/site``, then http://localhost:8000/) or
open ``index.html`` directly.

What :func:`build_site` does, in order:

1. Reads ``RUN/report.json`` (:mod:`genlab.course.report`) and writes a Sphinx source folder in a temporary directory:

   * ``index.md``: the repository's ``index.md`` (the curriculum) with a line naming the run, and a hidden toctree
     of the notebook pages and the results page. Links to notebooks that are not in the run become plain text
     marked "(not in this run)"; other links to files that are not pages of the site become plain text too
     (so a run of one notebook builds, and no link is broken);
   * ``notebooks/NN_name.ipynb``: the executed notebooks of the run (so index.md's ``notebooks/NN_name.ipynb`` links
     resolve), prepared by :func:`prepare_notebook`: widget outputs become static HTML (:func:`widget_html`), the
     font-awesome CDN link of matplotlib's HTML animations is removed, ``metadata.widgets`` is dropped (MyST-NB would
     add CDN scripts for it) and links are rewritten as in index.md;
   * ``results.md``: the run's report as a page (:func:`results_markdown`): profile, date, commit, machine, total
     time, one row per notebook (status, seconds, peak memory) linking to its page, every recorded metric per
     notebook, and the error (failing cell, traceback) of each failed notebook;
   * ``conf.py`` and ``_static/genlab-site.css`` (styles of the static widgets; the fa-* icons of matplotlib's
     animation buttons drawn with unicode glyphs -- where the theme's script runs, it swaps them for the theme's
     own, local, Font Awesome pictures).

2. Builds it with Sphinx (``sphinx_book_theme``, notebooks not executed) into a temporary folder next to ``out``.
   A missing cross-reference (a broken internal link) fails the build; other warnings are printed.
3. Copies MathJax 3 from the sphinx-mathjax-offline package into ``_static/mathjax`` (only what TeX ->
   CommonHTML rendering loads: :data:`MATHJAX_KEEP`; ``mathjax_path`` points at it) and removes the theme's files that no
   page loads (:data:`SITE_PRUNE`).
4. Scans every HTML file for ``src``/``href`` of script, link, img, iframe (and media) tags, and every CSS file for
   ``url(...)``/``@import``, that fetch from the network (``http(s)://`` or ``//``); any one fails the build, naming
   the file and the URL. Ordinary ``<a href>`` links (papers) are fine.
5. Replaces ``out`` with the new site (rename; a failed build leaves the previous site as it was). ``out`` must be
   empty, missing, or a site written by this module (it holds the marker file ``.genlab-site``).

Errors are :class:`SiteError` with a one-line message where there is one cause (no run, a missing executed notebook,
an ``out`` that is not a site); ``genlab site`` prints them without a traceback and exits with 1.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import time
import warnings
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat

from genlab.course.report import cell_label, strip_ansi
from genlab.paths import REPO_ROOT
from genlab.record import MIME as METRIC_MIME

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
#: The marker file that says a folder is a site built here (and may be replaced by the next build).
MARKER = ".genlab-site"
#: The MathJax 3 component the pages load: TeX input, CommonHTML output (woff-v2 fonts), menu.
MATHJAX_ENTRY = "tex-chtml.js"
#: What the site copies of sphinx-mathjax-offline's MathJax 3.2.2 (24 MB: every component, the SVG output, the
#: speech-rule engine's maps): the entry component and what it loads on demand for TeX -> CommonHTML, 1.6 MB.
MATHJAX_KEEP = (MATHJAX_ENTRY, "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui", "a11y", "adaptors")
#: Files of the theme's static folder that no page loads (source maps: 3.4 MB; the theme's translation catalogs,
#: used when Sphinx renders, not in the browser), removed from the site.
SITE_PRUNE = ("*.map", "_static/locales")
#: The note under every interactive widget's static picture.
WIDGET_NOTE = ("Interactive widget: a static copy of its state when the notebook ran. It needs a running kernel: "
               "open the notebook in JupyterLab (<code>jupyter lab notebooks/</code>) to use it.")
NOT_IN_RUN = "(not in this run)"

# matplotlib's jshtml animations link font-awesome 4 from a CDN for their buttons (<i class="fa fa-play">).
_FA_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"'](?:https?:)?//[^\"']*font-awesome[^\"']*[\"'][^>]*>\s*",
                      re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_NETWORK = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_LINK = re.compile(r"(?<![!\]\\])\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^\s*(```+|~~~+)")
_MISSING_XREF = re.compile(r"\[(?:myst\.xref_missing|ref\.[a-z_]+|toc\.not_readable|toc\.excluded|"
                           r"myst\.xref_ambiguous)\]|cross-reference target not found|nonexisting document|"
                           r"unknown document|undefined label")

SITE_CSS = """\
/* genlab site: static copies of ipywidgets, and the buttons of matplotlib's HTML animations without font-awesome */
.genlab-widget { border: 1px solid #ccc; border-radius: 4px; padding: 0.5em; margin: 0.25em 0; }
.genlab-widget-images img { margin: 0 0.5em 0.5em 0; image-rendering: pixelated; vertical-align: top; }
.genlab-widget-caption, .genlab-widget-controls { margin: 0.25em 0; }
.genlab-widget-note { margin: 0.25em 0; padding: 0.25em 0.5em; background: #fff6d6; border-left: 4px solid #e0a800;
                      color: #333; font-size: 0.9em; }
.genlab-progress { margin: 0.25em 0; padding: 0.25em 0.5em; background: #f4f4f4; white-space: pre-wrap; }

.animation .anim-buttons i.fa { font-family: system-ui, "DejaVu Sans", "Segoe UI Symbol", sans-serif;
                                font-style: normal; font-weight: normal; display: inline-block; min-width: 1.1em; }
.animation .anim-buttons i.fa::before { font-family: inherit; }
.animation .anim-buttons i.fa-minus::before { content: "\\2212"; }
.animation .anim-buttons i.fa-plus::before { content: "+"; }
.animation .anim-buttons i.fa-fast-backward::before { content: "\\23EE\\FE0E"; }
.animation .anim-buttons i.fa-step-backward::before { content: "\\25C2"; }
.animation .anim-buttons i.fa-play::before { content: "\\25B6\\FE0E"; }
.animation .anim-buttons i.fa-flip-horizontal { transform: scaleX(-1); }
.animation .anim-buttons i.fa-pause::before { content: "\\23F8\\FE0E"; }
.animation .anim-buttons i.fa-step-forward::before { content: "\\25B8"; }
.animation .anim-buttons i.fa-fast-forward::before { content: "\\23ED\\FE0E"; }
"""


class SiteError(ValueError):
    """The site cannot be built (no run, a missing executed notebook, a broken link, a network URL, a bad ``out``);
    the message says what to do."""


# -------------------------------------------------------------------------------------------------- the run

def read_run(run_dir: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Path | None]]:
    """The report of the run in ``run_dir`` and, per notebook name, its executed notebook (None when the run wrote
    none: the notebook failed before papermill saved it).

    The ``output`` path of a report entry is used as written, else looked up in ``run_dir`` by its file name (a run
    folder that was moved). Raises :class:`SiteError` when there is no ``report.json`` or a recorded executed
    notebook is missing.
    """
    run_dir = Path(run_dir)
    path = run_dir / "report.json"
    if not path.is_file():
        raise SiteError(f"no course run in {run_dir}: run `genlab run --out {run_dir}` first")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        entries = report["notebooks"]
    except (ValueError, KeyError, TypeError) as e:
        raise SiteError(f"{path} is not a course run report ({type(e).__name__}: {e}); rerun "
                        f"`genlab run --out {run_dir}`") from None
    outputs: dict[str, Path | None] = {}
    for e in entries:
        if not e.get("output"):
            outputs[e["name"]] = None
            continue
        recorded = Path(e["output"])
        candidates = [recorded if recorded.is_absolute() else run_dir / recorded, run_dir / recorded.name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise SiteError(f"the executed notebook of {e['name']} is missing: {recorded} (named in {path}); rerun "
                            f"`genlab run --out {run_dir}`")
        outputs[e["name"]] = found
    return report, outputs


# ------------------------------------------------------------------------------------------------ links

def rewrite_links(markdown: str, here: str, pages: set[str]) -> str:
    """Markdown ``markdown`` of the page ``here`` (a source path such as ``notebooks/00_tour.ipynb``) with every
    relative link that does not lead to one of ``pages`` (source paths) turned into its plain text: a link to a
    notebook gets " (not in this run)" after it. URLs, ``#anchors`` and images are kept; fenced code is untouched."""
    base = posixpath.dirname(here)

    def fix(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        if not target or target.startswith("#") or _SCHEME.match(target) or target.startswith("/"):
            return m.group(0)
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = posixpath.normpath(posixpath.join(base, path))
        if resolved in pages or any(resolved + s in pages for s in (".md", ".ipynb")):
            return m.group(0)
        return f"{text} {NOT_IN_RUN}" if path.endswith(".ipynb") else text

    out, fence = [], None
    for line in markdown.splitlines(keepends=True):
        f = _FENCE.match(line)
        if fence is None and f:
            fence = f.group(1)[0] * 3
        elif fence is not None and f and f.group(1).startswith(fence):
            fence = None
        elif fence is None:
            line = _LINK.sub(fix, line)
        out.append(line)
    return "".join(out)


# ---------------------------------------------------------------------------------------------- widgets

def _text(value: Any) -> str:
    """Plain text of a widget's HTML/label value: tags removed, entities decoded, spaces (tqdm's U+2007) collapsed."""
    s = html.unescape(re.sub(r"<[^>]+>", "", str(value)))
    return re.sub(r"[\s\u2007\u00a0]+", " ", s).strip()


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "\u2013".join(_format(v) for v in value)
    return str(value)


def _image_src(fmt: str, data: str) -> str:
    mime = {"svg": "image/svg+xml", "jpg": "image/jpeg"}.get(fmt, f"image/{fmt or 'png'}")
    return f"data:{mime};base64,{data}"


class _Walk:
    """What a widget view shows, gathered from its model tree (``children`` references, Output widgets' outputs)."""

    _PROGRESS = ("FloatProgressModel", "IntProgressModel")
    _TEXT = ("HTMLModel", "HTMLMathModel", "LabelModel")
    _SKIP = ("LayoutModel", "OutputModel", "ImageModel")

    def __init__(self, models: dict[str, Any]):
        self.models = models
        self.images: list[str] = []        # <img> tags
        self.texts: list[str] = []         # HTML/Label values, in tree order
        self.controls: list[str] = []      # "description=value"
        self.progress: list[dict[str, Any]] = []
        self.seen: set[str] = set()

    def visit(self, model_id: str) -> None:
        if model_id in self.seen or model_id not in self.models:
            return
        self.seen.add(model_id)
        model = self.models[model_id]
        name, state = model.get("model_name", ""), model.get("state", {})
        if name == "ImageModel":
            self._image(model, state)
        elif name == "OutputModel":
            for out in state.get("outputs", []):
                self._output(out)
        elif name in self._PROGRESS:
            self.progress.append(state)
        elif name in self._TEXT:
            if _text(state.get("value", "")):
                self.texts.append(_text(state.get("value", "")))
        elif not name.endswith("StyleModel") and name not in self._SKIP:
            control = self._control(name, state)
            if control:
                self.controls.append(control)
        for child in state.get("children", []) or []:
            if isinstance(child, str) and child.startswith("IPY_MODEL_"):
                self.visit(child[len("IPY_MODEL_"):])

    def _image(self, model: dict[str, Any], state: dict[str, Any]) -> None:
        data = None
        for buf in model.get("buffers", []) or []:
            if buf.get("path") == ["value"]:
                raw = buf.get("data", "")
                data = base64.b64encode(bytes.fromhex(raw)).decode() if buf.get("encoding") == "hex" else raw
        if data is None and isinstance(state.get("value"), str) and state["value"]:
            data = state["value"]
        if not data:
            return
        size = "".join(f' {k}="{html.escape(str(state[k]))}"' for k in ("width", "height") if state.get(k))
        self.images.append(f'<img src="{_image_src(state.get("format", "png"), data)}" alt="image widget"{size}>')

    def _output(self, out: dict[str, Any]) -> None:
        data = out.get("data", {})
        if WIDGET_VIEW in data:
            self.visit(data[WIDGET_VIEW].get("model_id", ""))
            return
        for mime, fmt in (("image/png", "png"), ("image/jpeg", "jpeg"), ("image/gif", "gif")):
            if mime in data:
                payload = data[mime] if isinstance(data[mime], str) else "".join(data[mime])
                self.images.append(f'<img src="{_image_src(fmt, payload.strip())}" alt="output widget image">')
                return
        if "image/svg+xml" in data:
            svg = data["image/svg+xml"] if isinstance(data["image/svg+xml"], str) else "".join(data["image/svg+xml"])
            self.images.append(f'<img src="{_image_src("svg", base64.b64encode(svg.encode()).decode())}" '
                               'alt="output widget image">')

    @staticmethod
    def _control(name: str, state: dict[str, Any]) -> str | None:
        kind = name.removesuffix("Model")
        label = _text(state.get("description", "")) or kind
        if "_options_labels" in state and "index" in state:
            labels, index = state["_options_labels"], state["index"]
            pick = (lambda i: labels[i] if isinstance(i, int) and 0 <= i < len(labels) else "none")
            value = ", ".join(pick(i) for i in index) if isinstance(index, (list, tuple)) else pick(index)
            return f"{label}={value}"
        if "value" in state:
            return f"{label}={_format(state['value'])}"
        if kind == "Button":
            return f"[{label}] button"
        return None


def progress_text(walk: _Walk) -> str:
    """tqdm's final line from a progress widget tree: its HTML parts in order (``tiny MLP: 100% 40/40 [...]``), or
    ``description value/max`` for a bare progress bar."""
    if walk.texts:
        return " ".join(walk.texts)
    p = walk.progress[0]
    return f"{_text(p.get('description', ''))} {_format(p.get('value'))}/{_format(p.get('max'))}".strip()


def widget_html(model_id: str, models: dict[str, Any], plain: str = "") -> tuple[str, str]:
    """(HTML, plain text) that stand in for the widget view ``model_id``, from the notebook's widget state ``models``
    (model_id -> {model_name, state, buffers}).

    A progress bar (a tree of progress models and HTML/labels only, as tqdm draws) becomes its final text. Any
    other widget becomes the pictures of its Image widgets and of its Output widgets' image outputs, its labels,
    a line listing the controls with their current values (``image=0``), and the note :data:`WIDGET_NOTE`. A view
    whose state was not saved shows its ``text/plain`` (``plain``) with the note.
    """
    walk = _Walk(models)
    walk.visit(model_id)
    if walk.progress and not walk.images and not walk.controls:
        text = progress_text(walk)
        return f'<pre class="genlab-progress">{html.escape(text)}</pre>', text
    parts = ['<div class="genlab-widget">']
    if walk.images:
        parts.append(f'<div class="genlab-widget-images">{"".join(walk.images)}</div>')
    if walk.texts:
        parts.append(f'<p class="genlab-widget-caption">{html.escape(" · ".join(walk.texts))}</p>')
    if walk.controls:
        parts.append(f'<p class="genlab-widget-controls">Controls: {html.escape(", ".join(walk.controls))}</p>')
    if model_id not in models and plain:
        parts.append(f'<pre>{html.escape(plain)}</pre>')
    parts.append(f'<p class="genlab-widget-note">{WIDGET_NOTE}</p></div>')
    text = "; ".join(walk.texts + walk.controls) or plain
    return "".join(parts), f"[interactive widget, needs a running kernel] {text}".strip()


# --------------------------------------------------------------------------------------------- notebooks

def _joined(value: Any) -> str:
    return value if isinstance(value, str) else "".join(value)


def prepare_notebook(nb: Any, *, here: str = "notebooks/notebook.ipynb",
                     pages: set[str] | None = None) -> dict[str, int]:
    """Make an executed notebook static and offline for the site; modifies ``nb`` in place.

    Every widget output becomes a ``text/html`` output (:func:`widget_html`); :func:`genlab.record.record`'s JSON
    payload is dropped (its ``text/plain`` line stays; MyST-NB warns about unknown MIME types); matplotlib's
    font-awesome CDN link is removed from HTML outputs; ``metadata.widgets`` is dropped; with ``pages`` given,
    markdown links are rewritten by :func:`rewrite_links` (``here``: the notebook's path in the site). Returns
    counts: ``{"widgets", "progress_bars", "animations"}``.
    """
    models = (nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}) or {}).get("state", {}) or {}
    counts = {"widgets": 0, "progress_bars": 0, "animations": 0}
    for cell in nb.cells:
        if cell.cell_type == "markdown" and pages is not None:
            cell.source = rewrite_links(cell.source, here, pages)
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            data.pop(METRIC_MIME, None)  # record()'s payload: its text/plain line stays ("recorded name = value")
            if WIDGET_VIEW in data:
                view = data[WIDGET_VIEW]
                markup, plain = widget_html(view.get("model_id", ""), models, _joined(data.get("text/plain", "")))
                counts["progress_bars" if "genlab-progress" in markup else "widgets"] += 1
                out["data"] = nbformat.from_dict({"text/html": markup, "text/plain": plain})
                out.get("metadata", {}).pop(WIDGET_VIEW, None)
            elif "text/html" in data:
                text = _joined(data["text/html"])
                stripped = _FA_LINK.sub("", text)
                if stripped != text:
                    counts["animations"] += 1
                    data["text/html"] = stripped
    nb.metadata.pop("widgets", None)
    return counts


# ----------------------------------------------------------------------------------------------- results

def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cell(text: str) -> str:
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text}\n{fence}"


def _date(started: str | None) -> str:
    if not started:
        return "unknown"
    try:
        return datetime.fromisoformat(started).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return started


def _machine(m: dict[str, Any]) -> str:
    if not m:
        return "unknown"
    parts = [str(m.get("platform", "?")), f"Python {m.get('python', '?')}",
             f"{m.get('cpu', 'CPU')} ({m.get('cpu_count', '?')} cores)"]
    if m.get("memory_gb"):
        parts.append(f"{m['memory_gb']} GB RAM")
    if m.get("torch"):
        parts.append(f"torch {m['torch']} on {m.get('accelerator') or m.get('device_name') or 'cpu'}")
    return ", ".join(parts)


def results_markdown(report: dict[str, Any], pages: dict[str, str]) -> str:
    """``results.md``: the run's facts, one table row per notebook linking to its page (``pages``: notebook name ->
    source path of its page; a notebook without a page gets no link), every recorded metric per notebook, and
    each failed notebook's error with its failing cell and traceback."""
    nbs = report.get("notebooks", [])
    failed = [e for e in nbs if e.get("status") != "ok"]
    requested = report.get("requested_profile")
    lines = ["# Results of this run", "",
             "What `genlab run` measured in this run (its `report.json`); each notebook's page shows its outputs.", "",
             f"- profile: **{report.get('profile', '?')}**"
             + (f" (requested: {requested})" if requested not in (None, report.get("profile")) else ""),
             f"- date: {_date(report.get('started'))}",
             f"- commit: `{report.get('commit') or 'unknown'}`",
             f"- machine: {_cell(_machine(report.get('machine', {})))}",
             f"- total time: {report.get('seconds', 0):.1f} s (wall time, {report.get('jobs', 1)} job(s))",
             f"- result: {len(nbs) - len(failed)} of {len(nbs)} notebooks ok"
             + (f"; failed: {', '.join(e['name'] for e in failed)}" if failed else "")]
    if report.get("interrupted"):
        lines.append("- **interrupted**: the run was stopped before it finished; notebooks not listed did not run")
    lines += ["", "| notebook | status | seconds | peak memory (MB) | metrics |", "|---|---|--:|--:|--:|"]
    for e in nbs:
        name = f"[{e['name']}]({pages[e['name']]})" if e["name"] in pages else e["name"]
        status = "ok" if e.get("status") == "ok" else f"**{e.get('status', 'failed')}**"
        mem = "" if e.get("peak_memory_mb") is None else f"{e['peak_memory_mb']:.0f}"
        lines.append(f"| {name} | {status} | {e.get('seconds', 0):.1f} | {mem} | {len(e.get('metrics') or {})} |")
    lines += ["", "## Metrics", "", "Every value the notebooks recorded with `record(name, value)`."]
    for e in nbs:
        lines += ["", f"### {e['name']}", ""]
        metrics = e.get("metrics") or {}
        if e.get("status") != "ok":
            lines += [f"**Failed:** `{_cell(e.get('error') or 'unknown error')}` (see [the errors](#errors)).", ""]
        if not metrics:
            lines.append("No metric recorded.")
            continue
        lines += ["| metric | value |", "|---|--:|"]
        lines += [f"| `{k}` | {_cell(_value(v))} |" for k, v in metrics.items()]
    if failed:
        lines += ["", "## Errors"]
    for e in failed:
        lines += ["", f"### {e['name']}: failed", "", "Error:", "", _fence(e.get("error") or "unknown error"), ""]
        cell = e.get("failing_cell")
        if cell:
            lines += [f"Failing cell ({cell_label(cell)}):", "", _fence(cell.get("source", ""), "python"), ""]
            if cell.get("traceback"):
                lines += ["Traceback (last lines):", "", _fence(strip_ansi(cell["traceback"])), ""]
        if e.get("log_tail") and not (cell and cell.get("traceback")):
            lines += ["Log (last lines):", "", _fence(strip_ansi(e["log_tail"])), ""]
    return "\n".join(lines).rstrip() + "\n"


def index_markdown(text: str, report: dict[str, Any], pages: dict[str, str]) -> str:
    """``index.md``: the curriculum ``text`` with its links rewritten (:func:`rewrite_links`), a line naming the run
    after its title, and a hidden toctree of the notebook pages and ``results``."""
    known = set(pages.values()) | {"index.md", "results.md"}
    text = rewrite_links(text, "index.md", known)
    note = (f"*This site shows the notebooks as executed by `genlab run` (profile {report.get('profile', '?')}, "
            f"{_date(report.get('started'))}); the measured numbers of the run are on the "
            f"[results page](results.md).*")
    lines = text.rstrip().splitlines()
    at = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("# ")), 0)
    lines[at:at] = ["", note, ""] if at else [f"# Course run", "", note, ""]
    toc = ["", "```{toctree}", ":hidden:", ":maxdepth: 1", ""]
    toc += [p.removesuffix(".ipynb") for p in pages.values()] + ["results", "```"]
    return "\n".join(lines + toc) + "\n"


# ------------------------------------------------------------------------------------------------ MathJax

def mathjax_source() -> Path:
    """The MathJax 3 folder shipped by the sphinx-mathjax-offline package (``static/mathjax``)."""
    from importlib import metadata

    try:
        dist = metadata.distribution("sphinx-mathjax-offline")
    except metadata.PackageNotFoundError:
        raise SiteError("sphinx-mathjax-offline is not installed (it ships MathJax for the site): run "
                        "`python3 bootstrap.py setup`") from None
    path = Path(dist.locate_file("sphinx-mathjax-offline/static/mathjax")).resolve()
    if not (path / MATHJAX_ENTRY).is_file():
        raise SiteError(f"{MATHJAX_ENTRY} not found in {path}: reinstall sphinx-mathjax-offline")
    return path


def copy_mathjax(dest: str | os.PathLike) -> int:
    """Copy the parts of MathJax in :data:`MATHJAX_KEEP` into ``dest``; return the bytes copied."""
    src, dest = mathjax_source(), Path(dest)
    for part in MATHJAX_KEEP:
        if (src / part).is_dir():
            shutil.copytree(src / part, dest / part)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dest / part)
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ offline check

class _Fetches(HTMLParser):
    """The URLs an HTML page fetches by itself: src/href/data of script, link, img, iframe and media tags."""

    ATTRS = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",),
             "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",), "embed": ("src",),
             "track": ("src",), "object": ("data",), "input": ("src",)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in self.ATTRS.get(tag, ()):
                for url in (value.split(",") if name == "srcset" else [value]):
                    url = url.strip().split(" ", 1)[0]
                    if _NETWORK.match(url):
                        self.urls.append(f"<{tag} {name}> {url}")


_CSS_URL = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])\s*((?:https?:)?//[^"')\s]+)""", re.IGNORECASE)


def network_fetches(site: str | os.PathLike) -> list[tuple[str, str]]:
    """(file relative to ``site``, URL) of everything the site's HTML and CSS files would fetch from the network."""
    site = Path(site)
    found = []
    for path in sorted(site.rglob("*.html")):
        if "_static/mathjax" in path.as_posix():
            continue
        parser = _Fetches()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        found += [(path.relative_to(site).as_posix(), u) for u in parser.urls]
    for path in sorted(site.rglob("*.css")):
        for url in _CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace")):
            found.append((path.relative_to(site).as_posix(), f"css {url}"))
    return found


# ------------------------------------------------------------------------------------------------ Sphinx

def _conf(report: dict[str, Any]) -> str:
    conf = {
        "project": "Generative Models for Images and Video",
        "author": "genlab",
        "language": "en",
        "extensions": ["myst_nb"],
        "nb_execution_mode": "off",
        "nb_merge_streams": True,
        "myst_enable_extensions": ["dollarmath", "amsmath"],
        "myst_heading_anchors": 4,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "html_theme": "sphinx_book_theme",
        "html_title": f"Generative Models for Images and Video ({report.get('profile', '?')} run)",
        "html_static_path": ["_static"],
        "html_css_files": ["genlab-site.css"],
        "html_favicon": "_static/favicon.png",
        "html_show_sourcelink": False,
        "html_show_copyright": False,
        "html_theme_options": {"home_page_in_toc": True, "use_download_button": True, "show_toc_level": 2},
        "html_context": {"default_mode": "light"},      # the theme logs a console error on a first visit without it
        # MathJax 3 from this site (copied after the build); MyST-NB adds the config that makes MathJax typeset its
        # math elements (processHtmlClass).
        "mathjax_path": f"mathjax/{MATHJAX_ENTRY}",
    }
    return "".join(f"{k} = {v!r}\n" for k, v in conf.items())


def _sphinx(src: Path, out: Path) -> tuple[list[str], str]:
    """Build ``src`` into ``out`` with Sphinx in this process; return (warnings, status log)."""
    from sphinx.application import Sphinx
    from sphinx.errors import SphinxError
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    status, warning = io.StringIO(), io.StringIO()
    try:
        with patch_docutils(src), docutils_namespace(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)          # the theme's and MyST's, not ours
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            app = Sphinx(str(src), str(src), str(out), str(src / "_doctrees"), "html", status=status,
                         warning=warning, freshenv=True, verbosity=0)
            app.build(force_all=True)
    except SphinxError as e:
        raise SiteError(f"Sphinx failed: {type(e).__name__}: {e}") from None
    found: list[str] = []
    for line in strip_ansi(warning.getvalue()).splitlines():
        if not found or "WARNING:" in line or "ERROR:" in line or "CRITICAL:" in line:
            found.append(line)
        else:
            found[-1] += "\n" + line
    return [w.replace(str(src) + os.sep, "") for w in found if w.strip()], status.getvalue()


def _favicon(path: Path) -> None:
    """A 32x32 icon (a colour gradient): without one the browser asks for /favicon.ico and logs a 404."""
    import numpy as np
    from matplotlib import image

    t = np.linspace(0, 1, 32)
    rgb = np.stack([np.outer(t, np.ones(32)), np.outer(np.ones(32), t), np.full((32, 32), 0.6)], -1)
    image.imsave(path, rgb)


def write_source(src: Path, report: dict[str, Any], outputs: dict[str, Path | None]) -> dict[str, Any]:
    """Write the Sphinx source folder of the site into ``src`` (see the module docstring); return what it holds:
    ``{"pages": name -> source path, "counts": name -> prepare_notebook's counts}``."""
    pages = {name: f"notebooks/{name}.ipynb" for name, p in outputs.items() if p is not None}
    known = set(pages.values()) | {"index.md", "results.md"}
    (src / "notebooks").mkdir(parents=True)
    counts = {}
    for name, path in outputs.items():
        if path is None:
            continue
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as e:  # a half-written notebook: name it
            raise SiteError(f"cannot read the executed notebook of {name} ({path}): {type(e).__name__}: {e}") from None
        counts[name] = prepare_notebook(nb, here=pages[name], pages=known)
        nbformat.write(nb, str(src / pages[name]))
    index = REPO_ROOT / "index.md"
    text = index.read_text(encoding="utf-8") if index.is_file() else "# Generative Models for Images and Video\n"
    (src / "index.md").write_text(index_markdown(text, report, pages), encoding="utf-8")
    (src / "results.md").write_text(results_markdown(report, pages), encoding="utf-8")
    (src / "_static").mkdir()
    (src / "_static" / "genlab-site.css").write_text(SITE_CSS, encoding="utf-8")
    _favicon(src / "_static" / "favicon.png")
    (src / "conf.py").write_text(_conf(report), encoding="utf-8")
    return {"pages": pages, "counts": counts}


def prune(site: Path) -> None:
    """Remove :data:`SITE_PRUNE` from a built site."""
    for pattern in SITE_PRUNE:
        for path in list(site.glob(pattern) if "/" in pattern else site.rglob(pattern)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _check_out(out: Path, run_dir: Path) -> None:
    if out.resolve() == run_dir.resolve() or run_dir.resolve().is_relative_to(out.resolve()):
        raise SiteError(f"--out {out} would replace the run in {run_dir}: choose another folder (default: "
                        f"{run_dir / 'site'})")
    if out.exists() and not (out.is_dir() and ((out / MARKER).exists() or not any(out.iterdir()))):
        raise SiteError(f"--out {out} exists and is not a site built by `genlab site` (no {MARKER} in it): choose "
                        "another folder or remove it")


def build_site(run_dir: str | os.PathLike = "build", out: str | os.PathLike | None = None, *,
               log: Any = None) -> Path:
    """Build the static website of the course run in ``run_dir`` into ``out`` (default ``run_dir/site``) and return
    the path of its ``index.html``.

    log: a file to print Sphinx's non-fatal warnings to (default: stderr). Raises :class:`SiteError` for a folder
    without a run, a recorded executed notebook that is missing, a broken internal link, a page that would fetch
    from the network, or an ``out`` that is not a site. ``out`` is replaced only by a complete build.
    """
    log = sys.stderr if log is None else log
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "site"
    report, outputs = read_run(run_dir)
    _check_out(out, run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The staging folder lies next to `out` (one file system: the final rename is atomic). Sphinx writes the site
    # into stage/html; MyST-NB puts its own files into the html folder's parent (stage/jupyter_execute).
    stage = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    html_dir = stage / "html"
    try:
        with tempfile.TemporaryDirectory(prefix="genlab-site-") as src:
            write_source(Path(src), report, outputs)
            notes, _ = _sphinx(Path(src), html_dir)
        broken = [w for w in notes if _MISSING_XREF.search(w)]
        if broken:
            raise SiteError("broken internal links (the site was not written):\n  " + "\n  ".join(broken))
        for w in notes:
            print(f"genlab site: {w}", file=log)
        if not (html_dir / "index.html").is_file():
            raise SiteError(f"Sphinx wrote no index.html (warnings: {'; '.join(notes) or 'none'})")
        prune(html_dir)
        copy_mathjax(html_dir / "_static" / "mathjax")
        fetches = network_fetches(html_dir)
        if fetches:
            raise SiteError("pages would fetch from the network (the site must work offline):\n  "
                            + "\n  ".join(f"{f}: {u}" for f, u in fetches))
        (html_dir / MARKER).write_text(f"built by genlab site from {run_dir.resolve()}\n", encoding="utf-8")
        if out.exists():
            os.replace(out, stage / "previous")
        os.replace(html_dir, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out / "index.html"


def folder_size(path: str | os.PathLike) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main(args: argparse.Namespace) -> int:
    """``genlab site``: 0 and the path of index.html with how to open it; 1 with a one-line error."""
    t0 = time.monotonic()
    try:
        index = build_site(args.run, args.out)
    except SiteError as e:
        print(f"genlab site: error: {e}", file=sys.stderr)
        return 1
    site = index.parent.resolve()
    print(f"site: {index.resolve()} ({folder_size(site) / 2**20:.1f} MB, built in {time.monotonic() - t0:.1f} s)")
    print(f"open it offline: python3 -m http.server -d {site}  (then http://localhost:8000/), "
          f"or open {index.resolve()} in a browser")
    return 0
