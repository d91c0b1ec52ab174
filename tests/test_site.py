"""`genlab site` and `genlab run --site` (genlab.course.site): a static, offline website of a course run.

One synthetic run (two small executed notebooks and a report.json in the real format) is built once for the module,
through `genlab run --site` with the runner replaced by a stub that writes the run (the site must be built even when a
notebook failed); the tests read that site. Two more builds check that a failing build (a network URL, a broken
link) leaves the previous site intact. No browser: the pages are read as text.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402

from genlab import cli  # noqa: E402
from genlab.course import site as site_mod  # noqa: E402
from genlab.course.site import SiteError, build_site, network_fetches, rewrite_links, widget_html  # noqa: E402
from genlab.record import MIME as METRIC_MIME  # noqa: E402

GENLAB = str(Path(sys.executable).with_name("genlab"))
V4 = nbformat.v4


def _png() -> str:
    buf = io.BytesIO()
    plt.imsave(buf, [[0.0, 1.0], [1.0, 0.0]], format="png", cmap="gray")
    return base64.b64encode(buf.getvalue()).decode()


def _jshtml() -> str:
    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    im = ax.imshow([[0.0, 1.0], [1.0, 0.0]])
    anim = FuncAnimation(fig, lambda i: [im], frames=2, blit=False)
    html = anim.to_jshtml()
    plt.close(fig)
    return html


def _model(name: str, state: dict, buffers: list | None = None) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "model_module_version": "2.0.0",
            "state": {"_model_name": name, **state}, **({"buffers": buffers} if buffers else {})}


def _view(model_id: str, plain: str, output_type: str = "display_data") -> dict:
    data = {"application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2,
                                                          "version_minor": 0}, "text/plain": plain}
    if output_type == "execute_result":
        return V4.new_output("execute_result", data=data, execution_count=1)
    return V4.new_output("display_data", data=data)


def widget_state(png: str) -> dict:
    """An image browser (VBox: IntSlider + Image + Label) and a tqdm bar (HBox: HTML + FloatProgress + HTML)."""
    return {
        "browser": _model("VBoxModel", {"children": ["IPY_MODEL_slider", "IPY_MODEL_image", "IPY_MODEL_label"]}),
        "slider": _model("IntSliderModel", {"description": "image", "value": 3, "min": 0, "max": 49}),
        "image": _model("ImageModel", {"format": "png", "width": "48", "height": "48"},
                        [{"path": ["value"], "data": png, "encoding": "base64"}]),
        "label": _model("LabelModel", {"value": "image 3 of 50 - label: 7"}),
        "bar": _model("HBoxModel", {"children": ["IPY_MODEL_left", "IPY_MODEL_progress", "IPY_MODEL_right"]}),
        "left": _model("HTMLModel", {"value": "tiny\u2007MLP:\u2007100%"}),
        "progress": _model("FloatProgressModel", {"value": 600.0, "max": 600.0, "bar_style": "success"}),
        "right": _model("HTMLModel", {"value": "\u2007600/600\u2007[00:01&lt;00:00,\u2007500.00it/s]"}),
        "style": _model("SliderStyleModel", {"description_width": ""}),
    }


def write_run(run: Path, *, extra_markdown: str = "") -> Path:
    """A course run in ``run``: 00_tour (widgets, math) ok, 10_everybody_dance_now (animation, image) failed."""
    run.mkdir(parents=True, exist_ok=True)
    png = _png()
    tour = V4.new_notebook(cells=[
        V4.new_markdown_cell("# A tour with widgets\n\nThe loss is $x^2$ and\n\n$$\\sum_i x_i^2$$\n\n"
                             "Next: [the dance](10_everybody_dance_now.ipynb), then "
                             "[01 · GAN recap](01_gan_recap.ipynb); see [the index](../index.md)." + extra_markdown),
        V4.new_code_cell("image_browser(x)", outputs=[_view("browser", "VBox(children=(IntSlider(...), ...))",
                                                           "execute_result")], execution_count=1),
        V4.new_code_cell("fit(...)", outputs=[
            _view("bar", "tiny MLP: 100%|##########| 600/600"),
            V4.new_output("display_data", data={METRIC_MIME: {"name": "test_bpd", "value": 1.25},
                                                "text/plain": "recorded test_bpd = 1.25"})], execution_count=2),
    ])
    tour.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "version_major": 2, "version_minor": 0, "state": widget_state(png)}}
    dance = V4.new_notebook(cells=[
        V4.new_markdown_cell("# Dancing\n\nBack to [the tour](00_tour.ipynb)."),
        V4.new_code_cell("animate_video(v)", outputs=[V4.new_output("display_data", data={
            "text/html": _jshtml(), "text/plain": "<IPython.core.display.HTML object>"})], execution_count=1),
        V4.new_code_cell("frame_strip(v)", outputs=[V4.new_output("display_data", data={
            "image/png": png, "text/plain": "<Figure>"})], execution_count=2),
        V4.new_code_cell("raise ValueError('boom')", outputs=[V4.new_output(
            "error", ename="ValueError", evalue="boom", traceback=["ValueError: boom"])], execution_count=3),
    ])
    for nb in (tour, dance):
        nb.metadata.update(kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
                           language_info={"name": "python", "pygments_lexer": "ipython3"})
    nbformat.write(tour, str(run / "00_tour.ipynb"))
    nbformat.write(dance, str(run / "10_everybody_dance_now.ipynb"))
    entry = {"path": "notebooks/x.ipynb", "error": None, "failing_cell": None, "returncode": 0,
             "started": "2026-12-03T12:41:00+00:00", "profile": "cpu"}
    report = {
        "profile": "cpu", "requested_profile": "auto", "started": "2026-12-03T12:41:00+00:00", "jobs": 1,
        "timeout_s": 3600, "machine": {"platform": "Linux-6.1-x86_64", "python": "3.11.7", "cpu": "AMD EPYC",
                                       "cpu_count": 2, "memory_gb": 23.5, "torch": "2.13.0+cpu"},
        "commit": "35442f5fab80b503395e2e1e7f2b48626fae2f38", "seconds": 98.76, "ok": False,
        "notebooks": [
            {**entry, "name": "00_tour", "status": "ok", "seconds": 12.34, "peak_memory_mb": 612.9,
             "metrics": {"test_bpd": 1.25, "modes_covered": 7}, "output": str(run / "00_tour.ipynb"),
             "log": str(run / "logs" / "00_tour.log")},
            {**entry, "name": "10_everybody_dance_now", "status": "failed", "seconds": 45.6, "peak_memory_mb": 835.2,
             "metrics": {"dance_psnr_face": 28.36}, "returncode": 1,
             "error": "ValueError: boom (cell 3, In [3])",
             "failing_cell": {"index": 3, "execution_count": 3, "state": "error", "source": "raise ValueError('boom')",
                              "ename": "ValueError", "evalue": "boom", "traceback": "ValueError: boom"},
             "output": str(run / "10_everybody_dance_now.ipynb"), "log": str(run / "logs" / "10.log")},
        ],
    }
    (run / "report.json").write_text(json.dumps(report, indent=2))
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`genlab run NB --out RUN --site` with the runner stubbed: it writes the synthetic run and returns 1 (a
    notebook failed); the site must be built anyway into RUN/site."""
    run = tmp_path_factory.mktemp("course") / "run"
    calls = []

    def fake_run_main(args):
        calls.append(args.out)
        write_run(Path(args.out))
        return 1

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("genlab.course.run.main", fake_run_main)
        code = cli.main(["run", "notebooks/00_tour.ipynb", "--out", str(run), "--site"])
    assert calls == [str(run)] and code == 1          # the run's exit status is kept
    site = run / "site"
    assert (site / "index.html").is_file()
    return site


def _page(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------- the pages

def test_every_page_exists(built):
    for page in ("index.html", "results.html", "notebooks/00_tour.html", "notebooks/10_everybody_dance_now.html"):
        assert (built / page).is_file(), page
    assert (built / site_mod.MARKER).is_file()
    index = _page(built, "index.html")
    assert 'href="notebooks/00_tour.html"' in index and 'href="results.html"' in index


def test_widget_became_a_picture_with_its_controls_and_the_note(built):
    page = _page(built, "notebooks/00_tour.html")
    widget = page[page.index('class="genlab-widget"'):]
    widget = widget[:widget.index("</div></div>")] if "</div></div>" in widget else widget[:5000]
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', widget)
    assert "image=3" in widget                                   # the slider's description and current value
    assert "image 3 of 50 - label: 7" in widget                  # the label
    assert "needs a running kernel" in widget and "jupyter lab notebooks/" in widget
    assert "widget-view+json" not in page and "widget-state+json" not in page
    assert "@jupyter-widgets" not in page and "require.js" not in page and "embed-amd" not in page


def test_progress_bar_became_its_text(built):
    page = _page(built, "notebooks/00_tour.html")
    m = re.search(r'<pre class="genlab-progress">([^<]*)</pre>', page)
    assert m and m.group(1).startswith("tiny MLP: 100% 600/600 [00:01&lt;00:00"), m
    assert "|##########|" not in page
    assert "recorded test_bpd = 1.25" in page                    # record()'s text line, its JSON payload dropped


def test_nothing_is_fetched_from_the_network(built):
    assert network_fetches(built) == []
    for path in built.rglob("*.html"):
        if "_static/mathjax" in path.as_posix():
            continue
        text = path.read_text(encoding="utf-8")
        for tag in re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", text):
            assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", tag), (path, tag)
    dance = _page(built, "notebooks/10_everybody_dance_now.html")
    assert "maxcdn" not in dance and "font-awesome" not in dance
    assert 'class="fa fa-play"' in dance                           # matplotlib's buttons are still there ...
    css = _page(built, "_static/genlab-site.css")                  # ... drawn by the local stylesheet
    assert ".fa-play::before" in css and ".fa-fast-backward::before" in css
    assert re.search(r'<link[^>]+href="\.\./_static/genlab-site\.css', dance)


def test_mathjax_is_local(built):
    mathjax = built / "_static" / "mathjax"
    assert (mathjax / site_mod.MATHJAX_ENTRY).is_file()
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert not (mathjax / "sre").exists() and not (mathjax / "output" / "svg").exists()     # only what it loads
    page = _page(built, "notebooks/00_tour.html")
    assert re.search(r'<script[^>]+src="\.\./_static/mathjax/' + re.escape(site_mod.MATHJAX_ENTRY), page)
    assert '<span class="math notranslate nohighlight">\\(x^2\\)</span>' in page
    # MyST-NB's MathJax 3 config: typeset the elements MyST marks "math" (MathJax 3 processes no class by default)
    assert re.search(r'"processHtmlClass": "[^"]*\bmath\b', page)


def test_results_page(built):
    page = _page(built, "results.html")
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    for needle in ("cpu", "2026-12-03 12:41 UTC", "35442f5fab80b503395e2e1e7f2b48626fae2f38", "AMD EPYC",
                   "98.8 s", "test_bpd 1.25", "modes_covered 7", "dance_psnr_face 28.36", "12.3", "613",
                   "45.6", "835", "1 of 2 notebooks ok", "ValueError: boom (cell 3, In [3])"):
        assert needle in text, needle
    assert re.search(r"00_tour\s*</span></a>\s*</td>\s*<td[^>]*><p>ok</p>", page) or re.search(
        r'href="notebooks/00_tour.html".*?</td>\s*<td[^>]*><p>ok', page, re.S)
    assert re.search(r'href="notebooks/10_everybody_dance_now.html".*?<strong>failed</strong>', page, re.S)
    assert "Failing cell (cell 3, In [3])" in text and re.sub(r"<[^>]+>", "", page).count("ValueError(")  # its source


def test_links_to_notebooks_outside_the_run_are_plain_text(built):
    index = _page(built, "index.html")
    assert "01_gan_recap.ipynb (not in this run)" in re.sub(r"<[^>]+>", "", index)
    assert 'href="notebooks/01_gan_recap' not in index
    tour = _page(built, "notebooks/00_tour.html")
    assert "01 · GAN recap (not in this run)" in tour
    assert 'href="10_everybody_dance_now.html"' in tour and 'href="../index.html"' in tour


# ------------------------------------------------------------------------------------- failing builds

def test_a_failed_build_leaves_the_previous_site(built, tmp_path):
    """A page that would fetch from the network fails the build after Sphinx ran; the old site stays."""
    run = write_run(tmp_path / "run", extra_markdown='\n\n<img src="https://example.com/cat.png">')
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("previous site")
    (out / site_mod.MARKER).write_text("")
    with pytest.raises(SiteError, match=r"notebooks/00_tour\.html: <img src> https://example\.com/cat\.png"):
        build_site(run, out, log=io.StringIO())
    assert (out / "index.html").read_text() == "previous site"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "site"]      # no temporary folder left behind


def test_a_run_of_one_notebook_builds_and_replaces_the_previous_site(tmp_path, capsys, monkeypatch):
    """`genlab site --run RUN --out OUT` (in process) for a run of one notebook, over an earlier site."""
    run = write_run(tmp_path / "run")
    report = json.loads((run / "report.json").read_text())
    report["notebooks"] = report["notebooks"][:1]
    (run / "report.json").write_text(json.dumps(report))
    out = tmp_path / "site"
    out.mkdir()
    (out / "stale.html").write_text("from the previous build")
    (out / site_mod.MARKER).write_text("")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["site", "--run", "run", "--out", "site"]) == 0
    printed = capsys.readouterr().out
    assert f"site: {out / 'index.html'}" in printed and f"python3 -m http.server -d {out}" in printed
    assert not (out / "stale.html").exists() and not (out / "notebooks" / "10_everybody_dance_now.html").exists()
    tour = _page(out, "notebooks/00_tour.html")
    assert "the dance (not in this run)" in tour
    assert "10_everybody_dance_now.ipynb (not in this run)" in re.sub(r"<[^>]+>", "", _page(out, "index.html"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "site"]


def test_a_broken_internal_link_fails_the_build(tmp_path):
    run = write_run(tmp_path / "run", extra_markdown="\n\nSee [the missing section](#no-such-section).")
    with pytest.raises(SiteError, match="(?s)broken internal links.*no-such-section"):
        build_site(run, log=io.StringIO())
    assert not (run / "site").exists()


def test_missing_run_and_missing_notebook(tmp_path):
    with pytest.raises(SiteError, match=r"no course run in .*: run `genlab run --out .*` first"):
        build_site(tmp_path)
    run = write_run(tmp_path / "run")
    (run / "10_everybody_dance_now.ipynb").unlink()
    with pytest.raises(SiteError, match="executed notebook of 10_everybody_dance_now is missing: .*10_every"):
        build_site(run)
    write_run(tmp_path / "run2")
    with pytest.raises(SiteError, match="would replace the run"):
        build_site(tmp_path / "run2", tmp_path / "run2")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("mine")
    with pytest.raises(SiteError, match="is not a site built by `genlab site`"):
        build_site(tmp_path / "run2", tmp_path / "elsewhere")


@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_cli_without_a_run_prints_one_line(tmp_path, where):
    empty = tmp_path / "empty"
    empty.mkdir()
    cwd = Path(__file__).resolve().parents[1] if where == "root" else tmp_path
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENLAB_")}
    r = subprocess.run([GENLAB, "site", "--run", str(empty)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"genlab site: error: no course run in {empty}: run `genlab run "
                                             f"--out {empty}` first"]


# --------------------------------------------------------------------------------------- the pieces

def test_widget_html_pieces():
    state = widget_state(_png())
    state["out"] = _model("OutputModel", {"outputs": [{"output_type": "display_data",
                                                       "data": {"image/png": _png(), "text/plain": "<Figure>"}}]})
    state["dd"] = _model("DropdownModel", {"description": "factor", "_options_labels": ["pose", "hair"], "index": 1})
    state["box"] = _model("HBoxModel", {"children": ["IPY_MODEL_out", "IPY_MODEL_dd", "IPY_MODEL_box"]})  # a cycle
    markup, plain = widget_html("box", state)
    assert markup.count("<img ") == 1 and "factor=hair" in markup and "needs a running kernel" in markup
    markup, plain = widget_html("bar", state)
    assert plain == "tiny MLP: 100% 600/600 [00:01<00:00, 500.00it/s]" and "genlab-widget-note" not in markup
    markup, plain = widget_html("unsaved", state, "IntSlider(value=2)")
    assert "IntSlider(value=2)" in markup and "needs a running kernel" in markup


def test_results_markdown_without_an_executed_notebook():
    """A notebook that failed before papermill saved it has no page: its row is plain text, its error is shown."""
    report = {"profile": "ci", "notebooks": [
        {"name": "05_x", "status": "failed", "seconds": 1.0, "peak_memory_mb": None, "metrics": {},
         "error": "papermill exited with code 1 without an executed notebook: No such kernel", "output": None}]}
    md = site_mod.results_markdown(report, {})
    assert "| 05_x | **failed** | 1.0 |  | 0 |" in md
    assert "No such kernel" in md and "No metric recorded." in md and "0 of 1 notebooks ok; failed: 05_x" in md


def test_rewrite_links():
    pages = {"index.md", "results.md", "notebooks/00_tour.ipynb"}
    md = ("[tour](notebooks/00_tour.ipynb) [gan](notebooks/01_gan_recap.ipynb) [paper](https://arxiv.org/abs/1)"
          " [top](#top) ![pic](x.png) [design](DESIGN.md) [res](results.md#metrics)\n```\n[code](nowhere.ipynb)\n```\n")
    assert rewrite_links(md, "index.md", pages) == (
        "[tour](notebooks/00_tour.ipynb) gan (not in this run) [paper](https://arxiv.org/abs/1)"
        " [top](#top) ![pic](x.png) design [res](results.md#metrics)\n```\n[code](nowhere.ipynb)\n```\n")
    assert rewrite_links("[i](../index.md) [t](00_tour.ipynb)", "notebooks/00_tour.ipynb", pages) == \
        "[i](../index.md) [t](00_tour.ipynb)"
