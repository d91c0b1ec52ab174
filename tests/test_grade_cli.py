"""`genlab grade` as instructors type it (README): the default instructor notebooks, `--instructor` given once or
several times, a one-line error for a wrong path, and gradebook rows that name the student."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from genlab.course.grade import expand_submissions

ROOT = Path(__file__).resolve().parents[1]
GENLAB = str(Path(sys.executable).with_name("genlab"))


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENLAB_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture()
def submissions(tmp_path):
    """Three students who each uploaded a notebook named 00_tour.ipynb (none of them matches an exercise: fast)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    paths = []
    for student in ("ada", "bob", "cy"):
        (tmp_path / "subs" / student).mkdir(parents=True)
        paths.append(tmp_path / "subs" / student / "00_tour.ipynb")
        nbformat.write(nb, str(paths[-1]))
    return paths


def test_labels_name_the_student(submissions, tmp_path):
    assert [label for label, _ in expand_submissions(submissions)] == ["ada", "bob", "cy"]          # auto
    assert [label for label, _ in expand_submissions(submissions, "stem")] == ["00_tour", "00_tour-2", "00_tour-3"]
    assert [label for label, _ in expand_submissions(submissions[:1], "folder")] == ["ada"]
    assert [label for label, _ in expand_submissions(submissions[:1])] == ["00_tour"]              # one file: its name
    folders = [p.parent for p in submissions]
    assert [label for label, _ in expand_submissions(folders)] == ["ada", "bob", "cy"]
    with pytest.raises(ValueError, match="student_from"):
        expand_submissions(submissions, "email")


@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_grade_as_typed_from_the_readme(submissions, tmp_path, where):
    """`genlab grade SUBMISSIONS... --out grades/` with no GENLAB_* variable, from the repository and from elsewhere."""
    cwd = ROOT if where == "root" else tmp_path
    out = tmp_path / "grades"
    r = subprocess.run([GENLAB, "grade", *map(str, submissions), "--out", str(out)], cwd=cwd, env=_clean_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    rows = list(csv.DictReader(open(out / "grades.csv")))
    assert [row["submission"] for row in rows] == ["ada", "bob", "cy"]
    assert [Path(row["path"]) for row in rows] == submissions and {row["status"] for row in rows} == {"invalid"}


def test_instructor_option_once_several_times_and_wrong(submissions, tmp_path):
    env, out = _clean_env(), tmp_path / "g"
    base = [GENLAB, "grade", str(submissions[0]), "--out", str(out)]
    for extra in (["--instructor", "notebooks"],
                  ["--instructor", "notebooks/00_tour.ipynb", "--instructor", "notebooks/01_gan_recap.ipynb"],
                  ["--instructor", "notebooks/00_tour.ipynb", "notebooks/02_stylegan.ipynb"]):
        r = subprocess.run(base + extra, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (extra, r.stderr)
    r = subprocess.run(base + ["--instructor", str(tmp_path / "nowhere")], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--instructor" in lines[0] and "nowhere" in lines[0]
