"""The notebooks' ipywidgets in a real JupyterLab, driven by a headless system Chromium (tests/browser.py).

For every notebook whose stored outputs hold an ipywidget (tqdm progress bars aside), the test opens a copy of the
notebook in a JupyterLab started for this module (127.0.0.1, free port, random token, ci profile), runs it up to and
including its first widget cell (Run > Run All Cells), waits for the widget to render, moves the widget's first
slider with the keyboard (End on the focused noUiSlider handle; Home if it is at its maximum) and waits until the
pixels of the picture(s) in the cell's output change. Screenshots of the widget before and after go to
build/test-artifacts/browser/lab-NAME-{before,after}.png. At the end the server is stopped (SIGTERM to its process
group, SIGKILL after a timeout) and the test checks that its port is closed and none of its processes is left.

Speed: running every code cell up to the widget took 185 s for the five notebooks (2 cores, one of them busy; the
widget comes near the end of 01, 02 and 09) against about 95 s for the slices, and nbval already runs every cell. So
the copy opened in the lab holds only the cells the widget cell needs (``widget_slice``: a static analysis of which
earlier code cells bind the names it uses, transitively), with outputs and stored widget state cleared; "Run All
Cells" then runs the notebook's own code for that widget. The trade-off: a widget that depended on a side effect of a
skipped cell (no name bound, e.g. a mutation through a method call) would be tested in a state the full notebook
never has.
"""
from __future__ import annotations

import ast
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil  # a dependency of ipykernel
import pytest

from browser import PageLog, artifact, browser, require_browser  # noqa: F401  (browser: the module's Chromium)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TQDM = re.compile(r"\d+%\|.*\|\s*[\d.]+\w?/")  # "tiny MLP:   0%|          | 0/600 [00:00<?, ?it/s]"
START_TIMEOUT = 90    # s: the server answers (a loaded 2-core machine)
RUN_TIMEOUT = 240     # s: the sliced cells have run and the widget shows its picture
CHANGE_TIMEOUT = 60   # s: the picture changes after the slider moved


def first_widget_cell(nb: dict) -> int | None:
    """Index in ``nb["cells"]`` of the first code cell whose stored outputs show an ipywidget other than a tqdm bar."""
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data = out.get("data", {})
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if WIDGET_MIME in data and not TQDM.search(text):
                return i
    return None


def widget_notebooks() -> list[str]:
    return [p.stem for p in sorted(NOTEBOOK_DIR.glob("*.ipynb"))
            if first_widget_cell(json.loads(p.read_text(encoding="utf-8"))) is not None]


# ---------------------------------------------------------------------------------------------------- cell slicing
def _python(source: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)  # %magics and !shell lines -> plain Python


class _Names(ast.NodeVisitor):
    """Names a cell binds at top level (``bound``), names whose object it changes through an attribute or item
    assignment or ``+=`` (``changed``), and the names it reads, function bodies included, before binding them
    itself (``used``: what it needs from earlier cells). Conservative: a name bound only in one branch of an ``if``
    counts as bound; reads inside functions of names the cell binds later count as needed."""

    def __init__(self):
        self.bound, self.changed, self.used = set(), set(), set()
        self.functions = self.comprehensions = 0  # bindings inside a function, lambda or class body are local

    def _function(self, node):
        """A function, lambda or class body: what it binds is local, and its reads of those names are not reads of
        the notebook's names."""
        local = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        if hasattr(node, "args") and isinstance(node.args, ast.arguments):
            a = node.args
            local |= {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x}
        local -= {name for n in ast.walk(node) if isinstance(n, ast.Global) for name in n.names}
        self.functions += 1
        self._local_scope(node, local)
        self.functions -= 1

    def _comprehension(self, node):
        local = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        self.comprehensions += 1
        self._local_scope(node, local)
        self.comprehensions -= 1

    def _local_scope(self, node, local: set[str]):
        before = set(self.used)
        self.generic_visit(node)
        self.used = before | (self.used - before - local)

    def _define(self, node):
        if not self.functions:
            self.bound.add(node.name)
        self._function(node)  # decorators, defaults and bases are read, like the body

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _define
    visit_Lambda = _function
    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.bound:  # bound earlier in the cell: not a read of an earlier cell's name
                self.used.add(node.id)
        elif not self.functions and not self.comprehensions:
            self.bound.add(node.id)

    def visit_NamedExpr(self, node):  # binds in the enclosing scope, also from inside a comprehension
        if not self.functions:
            self.bound.add(node.target.id)
        self.visit(node.value)

    def visit_Global(self, node):
        self.bound.update(node.names)

    def visit_Import(self, node):
        if not self.functions:
            self.bound.update((a.asname or a.name).split(".")[0] for a in node.names)

    visit_ImportFrom = visit_Import

    @staticmethod
    def _base(target) -> str | None:
        while isinstance(target, (ast.Attribute, ast.Subscript, ast.Starred)):
            target = target.value
        return target.id if isinstance(target, ast.Name) else None

    def visit_Assign(self, node):  # the value is read before the targets are bound, as Python does
        self.visit(node.value)
        for t in node.targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)) and self._base(t) and not self.functions:
                self.changed.add(self._base(t))
            self.visit(t)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node):
        self.visit(node.iter)
        for child in (node.target, *node.body, *node.orelse):
            self.visit(child)

    visit_AsyncFor = visit_For

    def visit_AugAssign(self, node):  # x += ... changes x (its earlier binding is still needed)
        base = self._base(node.target)
        if base and not self.functions:
            self.changed.add(base)
        if isinstance(node.target, ast.Name):
            self.used.add(node.target.id)
        else:
            self.visit(node.target)
        self.visit(node.value)


def _names(source) -> _Names | None:
    source = "".join(source) if isinstance(source, list) else source
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return None  # a cell we cannot read is kept
    v = _Names()
    v.visit(tree)
    return v


def widget_slice(nb: dict, widget: int) -> list[int]:
    """Indices of the code cells up to ``widget`` that the widget cell needs: walking backwards, a cell is kept when it
    binds or changes a name a kept cell later reads (its own reads become needed in turn); the parameters cell and
    cells that cannot be parsed are always kept."""
    cells = nb["cells"]
    needed = _names(cells[widget]["source"]).used
    keep = [widget]
    for i in range(widget - 1, -1, -1):
        cell = cells[i]
        if cell["cell_type"] != "code":
            continue
        names = _names(cell["source"])
        params = "parameters" in cell.get("metadata", {}).get("tags", [])
        if names is None or params or (names.bound | names.changed) & needed:
            keep.append(i)
            if names is not None:
                needed = (needed - names.bound) | names.used
    return sorted(keep)


def write_slice(src: Path, dest: Path) -> list[int]:
    """Write to ``dest`` the notebook ``src`` reduced to its first widget cell and the code cells it needs (title
    cell kept), outputs and stored widget state cleared. Returns the kept cells' indices in ``src``."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    widget = first_widget_cell(nb)
    kept = widget_slice(nb, widget)
    cells = []
    for i in ([0] if nb["cells"][0]["cell_type"] == "markdown" else []) + kept:
        cell = dict(nb["cells"][i])
        if cell["cell_type"] == "code":
            cell.update(outputs=[], execution_count=None)
        cells.append(cell)
    nb["cells"] = cells
    nb["metadata"].pop("widgets", None)  # no saved widget state: what shows must come from the live kernel
    dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return kept


# ---------------------------------------------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, whatever $http_proxy says


class Lab:
    """A ``jupyter lab`` of the .venv serving ``root`` on 127.0.0.1 (free port, random token) in its own process
    group, with its settings, runtime files and log under ``home``; GENLAB_PROFILE=ci and one thread per kernel."""

    def __init__(self, root: Path, home: Path):
        self.root, self.home = root, home
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "jupyter-lab.log"
        venv_bin = Path(sys.executable).parent
        env = dict(os.environ, GENLAB_PROFILE="ci", GENLAB_THREADS="1", OMP_NUM_THREADS="1",
                   PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                   # user settings, workspaces and IPython startup files stay out of the test
                   JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
                   JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"))
        cmd = [str(venv_bin / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--port-retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]  # nothing online
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # containers and CI run as root
        settings = home / "settings" / "@jupyterlab"  # no news toast; a notebook's own kernel starts unasked
        (settings / "apputils-extension").mkdir(parents=True)
        (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        (settings / "notebook-extension").mkdir()
        (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
            '{"autoStartDefaultKernel": true}')
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # its own process group, kernels below it

    def log_tail(self, n: int = 15) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-n:]
        return "jupyter lab log (tail):\n  " + "\n  ".join(lines)

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with _NO_PROXY.open(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {self.proc.returncode}\n{self.log_tail()}", pytrace=False)
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"jupyter lab did not answer on {self.url} within {START_TIMEOUT} s\n{self.log_tail()}",
                    pytrace=False)

    def shutdown_kernels(self):
        """End the sessions (and kernels) of the notebooks opened so far."""
        for s in self.api("/api/sessions"):
            self.api(f"/api/sessions/{s['id']}", method="DELETE")

    def stop(self) -> list[str]:
        """SIGTERM the server's process group (the server shuts its kernels down), SIGKILL after a timeout; kill
        whatever of its processes is left and return their descriptions (empty when all ended on their own)."""
        try:
            procs = [psutil.Process(self.proc.pid)]
            procs += procs[0].children(recursive=True)  # kernels run in their own sessions: collect them now
        except psutil.NoSuchProcess:
            procs = []
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        _, alive = psutil.wait_procs(procs, timeout=10)
        left = []
        for p in alive:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                left.append(f"pid {p.pid}: {' '.join(p.cmdline())[:200]}")
                p.kill()
            except psutil.NoSuchProcess:
                pass
        return left


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab for the module; notebooks are copied into its (temporary) root folder by the tests."""
    require_browser()  # skip before starting a server for nothing
    server = Lab(tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home"))
    try:
        server.wait_ready()
        yield server
    finally:
        left = server.stop()
        assert server.proc.returncode is not None, "jupyter lab is still running after SIGKILL"
        assert not _port_open(server.port), f"port {server.port} still accepts connections after the server stopped"
        assert not left, "processes of the test's jupyter lab were left running (killed now):\n" + "\n".join(left)


# ---------------------------------------------------------------------------------------------------- the page
# state of the last code cell (the widget cell) of the open notebook
CELL_STATE = r"""() => {
  const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell');
  if (!cells.length) return null;
  const cell = cells[cells.length - 1];
  const area = cell.querySelector('.jp-Cell-outputArea');
  const imgs = area ? Array.from(area.querySelectorAll('img')) : [];
  const errors = Array.from(document.querySelectorAll('.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]'))
      .map(e => e.innerText).filter(t => /Traceback \(most recent call last\)|^\w*Error: /m.test(t));
  return {prompt: (cell.querySelector('.jp-InputPrompt') || {}).innerText || '',
          sliders: area ? area.querySelectorAll('.noUi-handle').length : 0,
          images: imgs.length, loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
          errors: errors};
}"""
# the pixels of every picture in the widget cell's output, as PNG data URLs (null while one is still loading)
PICTURES = """() => {
  const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell');
  const imgs = Array.from(cells[cells.length - 1].querySelectorAll('.jp-Cell-outputArea img'));
  if (!imgs.length || imgs.some(i => !i.complete || !i.naturalWidth)) return null;
  return imgs.map(i => {
    const c = document.createElement('canvas');
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    c.getContext('2d').drawImage(i, 0, 0);
    return c.toDataURL('image/png');
  });
}"""


def exercise_widget(browser, lab: Lab, name: str, picture: str = PICTURES):  # noqa: F811
    """Open ``NAME.ipynb`` (already in the lab's root) in Chromium, run all its cells, wait for the widget in its last
    code cell, move the widget's first slider to its end and wait until its picture changes. ``picture``: the JS
    function whose result must change (a parameter so that the test itself can be checked against a fixed
    element). Fails with the notebook, the step, the page's last console errors and a page screenshot."""
    for old in ("before", "after", "failed"):
        artifact(f"lab-{name}-{old}.png").unlink(missing_ok=True)
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(START_TIMEOUT * 1000)  # a loaded 2-core machine loads JupyterLab slowly
    page = context.new_page()
    log = PageLog(page)
    what = "opening the notebook"

    timings = []

    @contextmanager
    def step(description: str):
        nonlocal what
        what, t0 = description, time.monotonic()
        yield
        timings.append(f"{description.split(' (')[0]}: {time.monotonic() - t0:.1f} s")

    def fail(msg: str):
        shot = artifact(f"lab-{name}-failed.png")
        try:
            page.screenshot(path=shot, full_page=True)
        except Exception:  # noqa: BLE001 - the failure message matters more than the screenshot
            shot = "(no screenshot)"
        pytest.fail(f"{name}: {what}: {msg}\npage screenshot: {shot}\n{log.tail()}", pytrace=False)

    def poll(check, timeout: float, message: str):
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                fail(message())
            time.sleep(0.25)

    try:
        with step("opening the notebook"):
            page.goto(f"{lab.url}/lab/tree/{name}.ipynb?token={lab.token}")
            idle = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator'
                                '[data-status="idle"]')
            poll(lambda: idle.count() > 0 and any(s["path"] == f"{name}.ipynb" for s in lab.api("/api/sessions")),
                 START_TIMEOUT, lambda: "the notebook's kernel did not start (or did not become idle)")

        with step("running the cells (Run > Run All Cells) until the widget shows its picture"):
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click()
            started = time.monotonic()
            state = {}

            def rendered():
                state.update(page.evaluate(CELL_STATE) or {})
                if state.get("errors"):
                    fail("a cell raised:\n" + state["errors"][-1][-3000:])
                if state.get("prompt", "").strip() == "[ ]:" and time.monotonic() - started > 10:
                    fail(f"the widget cell was not run (prompt {state['prompt']!r})")
                return state.get("sliders") and state.get("images") and state["loaded"] == state["images"]

            poll(rendered, RUN_TIMEOUT, lambda: f"no widget with a slider and a loaded picture within {RUN_TIMEOUT} "
                                                f"s (last cell: {state})")
            area = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell").last.locator(
                ".jp-Cell-outputArea")
            area.scroll_into_view_if_needed()
            before = poll(lambda: page.evaluate(picture), 30, lambda: "the picture did not load")
            area.screenshot(path=artifact(f"lab-{name}-before.png"))

        with step("moving the widget's first slider with the keyboard"):
            handle = area.locator(".noUi-handle").first  # noUiSlider: aria-valuetext is the value
            value = handle.get_attribute("aria-valuetext")
            at_max = float(value) >= float(handle.get_attribute("aria-valuemax"))
            key = "Home" if at_max else "End"  # the largest move: one arrow step of a float slider may not show
            handle.focus()
            handle.press(key)
            poll(lambda: handle.get_attribute("aria-valuetext") != value, 10,
                 lambda: f"the slider stayed at {value} after pressing {key}")
            moved = handle.get_attribute("aria-valuetext")

        with step(f"waiting for the picture to change (slider {value} -> {moved})"):
            poll(lambda: (now := page.evaluate(picture)) is not None and now != before, CHANGE_TIMEOUT,
                 lambda: f"the picture did not change within {CHANGE_TIMEOUT} s after the slider moved")
            area.screenshot(path=artifact(f"lab-{name}-after.png"))
        print(f"{name}: " + "; ".join(timings))
    except PlaywrightError as e:
        fail(f"{type(e).__name__}: {e}")
    finally:
        context.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", widget_notebooks())
def test_widget_redraws_in_jupyterlab(lab, browser, name):  # noqa: F811
    kept = write_slice(NOTEBOOK_DIR / f"{name}.ipynb", lab.root / f"{name}.ipynb")
    print(f"{name}: running cells {kept} of the notebook")
    try:
        exercise_widget(browser, lab, name)
    finally:
        lab.shutdown_kernels()
