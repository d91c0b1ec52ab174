#!/usr/bin/env python3
"""Set up the course environment on first use, then run the course or the tests.

    python3 bootstrap.py run  [genlab run options]   # every notebook, default profile -> build/
    python3 bootstrap.py test [pytest options]       # unit tests + nbval over every notebook (ci profile)

Needs only Python >= 3.10 with the standard venv module. Creates .venv/ (or $GENLAB_VENV) on first use and
(re)installs the pinned dependencies whenever pyproject.toml or constraints.txt change; in test mode it also installs
Chromium for the browser tests where it can (ensure_chromium). `make run` / `make test` and `.ci/run` call this script.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("GENLAB_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".genlab-installed"


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure_env() -> None:
    """Create the virtual environment and install the pinned dependencies if they are missing or stale."""
    if not PYTHON.exists():
        print(f"[bootstrap] creating virtual environment in {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    want = _fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == want:
        return
    print("[bootstrap] installing pinned dependencies (first run takes a few minutes)", flush=True)
    cmd = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q",
           "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[test]"]
    subprocess.run(cmd, check=True)
    STAMP.write_text(want + "\n")


def ensure_chromium() -> None:
    """The browser tests drive a system Chromium (tests/browser.py looks for $GENLAB_CHROMIUM, chromium,
    chromium-browser, google-chrome). If there is none and we are root on a system with apt-get, install Debian/Ubuntu's
    ``chromium`` (after an ``apt-get update`` if the first try fails). Never fails: without a browser those tests
    skip and say how to enable them."""
    names = [os.environ.get("GENLAB_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    if any(n and shutil.which(n) for n in names):
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    print("[bootstrap] no Chromium for the browser tests: installing it (apt-get install -y chromium)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    try:
        if subprocess.run(install, **quiet).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], **quiet)
            if subprocess.run(install, **quiet).returncode != 0:
                print("[bootstrap] could not install Chromium: the browser tests will skip", flush=True)
    except OSError as e:
        print(f"[bootstrap] could not install Chromium ({e}): the browser tests will skip", flush=True)


def _workers(args: list[str]) -> list[str]:
    """pytest-xdist options: one worker per core (at most 4), whole files per worker (a notebook's cells share one
    kernel); none if the caller chose ``-n`` / ``-p no:xdist`` or runs on a single core."""
    if any(a.startswith(("-n", "--numprocesses")) or a == "no:xdist" for a in args):
        return []
    n = min(os.cpu_count() or 1, 4)
    return ["-n", str(n), "--dist", "loadfile"] if n > 1 else []


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test", "setup"):
        print(__doc__)
        return 2
    ensure_env()
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # kernels and console scripts come from the venv
    if argv[0] == "setup":
        return 0
    if argv[0] == "run":
        cmd = [str(BIN / "genlab"), "run", *argv[1:]]
    else:
        ensure_chromium()
        env["GENLAB_PROFILE"] = env.get("GENLAB_TEST_PROFILE", "ci")
        workers = _workers(argv[1:])
        if workers:  # one thread per process: two OpenMP teams spin-waiting on 2 cores make tiny ops 100x slower
            env.setdefault("OMP_NUM_THREADS", "1")
            env.setdefault("GENLAB_THREADS", "1")
        cmd = [str(PYTHON), "-m", "pytest", *workers, *argv[1:]]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
