"""The course website in a real browser (system Chromium through Playwright): every page of a site built from the
stored notebooks (each one the executed output of a cpu run) loads without console errors or failed requests, over
HTTP and from disk, shows its figures, animations and formulas, and every internal link resolves.

The run folder is made from the stored notebooks themselves (report.json pointing at notebooks/NN_*.ipynb, metrics
read back from their outputs), so this test needs no notebook execution.
"""
from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from browser import PageLog, artifact, browser, require_browser  # noqa: F401  (browser: a fixture)
from genlab.course.site import build_site
from genlab.record import read_records

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_browser()                                  # skip before building anything when no browser
    run = tmp_path_factory.mktemp("stored-run")
    report = {"profile": "cpu", "started": "2026-12-03T00:00:00+00:00", "seconds": 0.0, "jobs": 1, "commit": "stored",
              "machine": {"note": "the stored notebooks of the repository"},
              "notebooks": [{"name": nb.stem, "status": "ok", "seconds": 0.0, "peak_memory_mb": None, "error": None,
                             "metrics": read_records(nb), "path": str(nb), "output": str(nb)} for nb in NOTEBOOKS]}
    (run / "report.json").write_text(json.dumps(report))
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(run, out)
    return out


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))

    class Quiet(handler.func):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _pages(site: Path) -> list[str]:
    return ["index.html", "results.html"] + [f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS]


def _stored_kinds(nb: Path) -> dict[str, int]:
    """How many figures and animations a stored notebook has (what its page must show)."""
    cells = json.loads(nb.read_text())["cells"]
    outs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    figures = sum("image/png" in o.get("data", {}) for o in outs)
    animations = sum("Animation" in "".join(o.get("data", {}).get("text/html", "")) for o in outs)
    return {"figures": figures, "animations": animations}


def _check_page(page, url: str, name: str) -> PageLog:
    log = PageLog(page)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)                        # MathJax typesets after load
    page.screenshot(path=str(artifact(f"site-{name.replace('/', '-')}.png")))
    assert not log.entries, f"{name}: {log.tail()}"
    broken = page.evaluate("""() => [...document.images].filter(i => i.complete && i.naturalWidth === 0)
                                                     .map(i => i.src.slice(0, 80))""")
    assert not broken, f"{name}: images that did not load: {broken}"
    return log


def test_every_page_loads_cleanly_over_http_and_shows_its_outputs(browser, site, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    for name in _pages(site):
        _check_page(page, urljoin(server, name), name)
        if name.startswith("notebooks/"):
            want = _stored_kinds(ROOT / "notebooks" / (Path(name).stem + ".ipynb"))
            imgs = page.evaluate("() => [...document.images].filter(i => i.naturalWidth > 40).length")
            assert imgs >= want["figures"], f"{name}: {imgs} pictures shown, {want['figures']} figures stored"
            anims = page.locator(".animation").count()
            assert anims >= want["animations"], f"{name}: {anims} animations shown, {want['animations']} stored"
            formulas = page.locator("span.math, div.math").count()           # what MyST marks as math
            if formulas:
                rendered = page.locator("mjx-container").count()
                assert rendered >= formulas, f"{name}: {rendered} of {formulas} formulas typeset by the local MathJax"
    page.close()


def test_animations_play(browser, site, server):
    """The first animation of notebook 07: stepping one frame forward changes the frame shown."""
    name = next(f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS if _stored_kinds(nb)["animations"])
    page = browser.new_page()
    log = PageLog(page)
    page.goto(urljoin(server, name), wait_until="load")
    anim = page.locator(".animation").first
    anim.scroll_into_view_if_needed()
    frame = anim.locator("img").first
    before = frame.get_attribute("src")
    anim.locator("button[title*='Next frame'], button[onclick*='next_frame']").first.click()
    page.wait_for_timeout(200)
    assert frame.get_attribute("src") != before, f"{name}: the next-frame button did not change the frame"
    anim.screenshot(path=str(artifact("site-animation.png")))
    assert not log.entries, log.tail()
    page.close()


def test_every_internal_link_resolves(browser, site, server):
    page = browser.new_page()
    checked, bad = set(), []
    for name in _pages(site):
        page.goto(urljoin(server, name), wait_until="load")
        hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        for href in hrefs:
            u = urlparse(href)
            if not href.startswith(server) or (u.path, u.fragment) in checked:
                continue                                            # papers, the theme's external links
            checked.add((u.path, u.fragment))
            target = site / unquote(u.path).lstrip("/")
            target = target / "index.html" if target.is_dir() else target
            if not target.is_file():
                bad.append(f"{name} -> {href} (no such file)")
            elif u.fragment and target.suffix == ".html":
                text = target.read_text(errors="replace")
                if f'id="{u.fragment}"' not in text and f'name="{u.fragment}"' not in text:
                    bad.append(f"{name} -> {href} (no anchor #{u.fragment})")
    assert len(checked) > len(NOTEBOOKS), f"only {len(checked)} internal links found"
    assert not bad, "broken links:\n" + "\n".join(bad[:20])
    page.close()


def test_pages_work_opened_from_disk(browser, site):
    """file:// (a student double-clicking index.html): no failed request, the notebook page renders its figures."""
    page = browser.new_page()
    for name in ("index.html", f"notebooks/{NOTEBOOKS[0].stem}.html"):
        log = PageLog(page)
        page.goto((site / name).as_uri(), wait_until="load")
        page.wait_for_timeout(300)
        failed = [e for e in log.entries if "request failed" in e or "HTTP" in e]
        assert not failed, f"{name} from disk: {failed[:5]}"
    page.close()
