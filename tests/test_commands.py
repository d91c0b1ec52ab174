"""Every console command the README and index.md show, run as users type them: in a subprocess, from the repository
root and from another folder, with no GENLAB_* variable set (only the test profile's thread cap)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENLAB = str(Path(sys.executable).with_name("genlab"))


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENLAB_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([GENLAB, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    return r


def test_the_documented_genlab_commands_are_the_ones_tested_here():
    """Keep this file in sync with the docs: every `genlab <command>` the README and index.md show is covered."""
    text = (ROOT / "README.md").read_text() + (ROOT / "index.md").read_text()
    shown = set(re.findall(r"genlab (run|train|eval|release|grade|site)\b", text))
    assert shown <= {"run", "train", "eval", "release", "grade", "site"}, shown   # grade/site: test_grade_cli, test_site


@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_run_one_notebook_as_printed(where, tmp_path):
    """`genlab run notebooks/00_tour.ipynb --profile ci --out build/` (README and index.md)."""
    cwd = ROOT if where == "root" else tmp_path
    out = tmp_path / "build"
    r = _run(["run", "notebooks/00_tour.ipynb", "--profile", "ci", "--out", str(out)], cwd)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert [nb["status"] for nb in report["notebooks"]] == ["ok"]


@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_release_train_eval_as_printed(where, tmp_path):
    cwd = ROOT if where == "root" else tmp_path
    r = _run(["release", "--out", str(tmp_path / "release")], cwd)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "release").glob("*.ipynb")) == \
        sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    r = _run(["train", "digit_classifier", "--profile", "ci", "--out", str(tmp_path / "runs")], cwd)
    assert r.returncode == 0 and (tmp_path / "runs" / "digit_classifier" / "ci" / "final.pt").exists(), r.stderr
    r = _run(["eval", "digit_classifier"], cwd)
    assert r.returncode == 0 and "test_accuracy" in r.stdout and "-> ok" in r.stdout, r.stdout + r.stderr
    r = _run(["eval", "no_such_model"], cwd)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "known models" in r.stderr
