"""Shared helpers of the browser tests: a system Chromium driven headless by Playwright's Python client.

No Playwright browser is ever downloaded: the tests use the machine's Chromium or Chrome (``$GENLAB_CHROMIUM``, else
``chromium``, ``chromium-browser`` or ``google-chrome`` on PATH). Without one, or without the ``playwright`` package,
the tests skip with a message naming the command that enables them (``python3 bootstrap.py test`` installs Chromium
where it can). Use them from a test module with::

    from browser import PageLog, artifact, browser, require_browser  # noqa: F401  (browser: a fixture)

Screenshots go to ``build/test-artifacts/browser/`` (git-ignored).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "browser"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")  # bootstrap.py looks for the same names
ENABLE = ("run `python3 bootstrap.py test`: it installs Chromium where it can "
          "(as root on Debian/Ubuntu: apt-get install -y chromium)")


def find_chromium() -> str | None:
    """Path of the Chromium/Chrome executable to drive: ``$GENLAB_CHROMIUM`` if set, else the first of
    ``CHROMIUM_NAMES`` on PATH; None when there is none."""
    wanted = [os.environ["GENLAB_CHROMIUM"]] if os.environ.get("GENLAB_CHROMIUM") else []
    for name in (*wanted, *CHROMIUM_NAMES):
        path = shutil.which(name)
        if path:
            return path
    return None


def artifact(name: str) -> Path:
    """Path of a screenshot (or other artifact) ``name`` under build/test-artifacts/browser/, folder created."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def require_browser() -> str:
    """The Chromium executable to drive; skips the calling test when it or the playwright package is missing (call
    it first in fixtures that start costly things for a browser test)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"the Python package playwright is not installed: {ENABLE}")
    exe = find_chromium()
    if exe is None:
        pytest.skip(f"no Chromium found ($GENLAB_CHROMIUM, {', '.join(CHROMIUM_NAMES)}): {ENABLE}")
    return exe


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (Playwright ``Browser``) for the test module; skips when no browser or no Playwright."""
    exe = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to run as root (containers, CI)
        b = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


class PageLog:
    """Collects what went wrong in a page: console errors, uncaught exceptions, failed requests and HTTP errors.

    ``log = PageLog(page)`` right after creating the page; ``log.tail()`` gives the last entries for a failure
    message."""

    def __init__(self, page):
        self.entries: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.entries.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self.entries.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.entries.append(f"request failed: {r.method} {_url(r.url)} "
                                                                f"({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.entries.append(
            f"HTTP {r.status}: {r.request.method} {_url(r.url)}"))

    def tail(self, n: int = 8) -> str:
        if not self.entries:
            return "no console errors or failed requests"
        return "last console errors / failed requests:\n  " + "\n  ".join(e[:500] for e in self.entries[-n:])


def _url(url: str) -> str:
    """A URL without its query (which may carry a token)."""
    return url.split("?", 1)[0]
