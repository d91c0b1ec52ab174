"""genlab release: student notebooks from the instructor notebooks (lib/genlab/course/release.py).

The transforms are checked on the fixture notebook tests/fixtures/grading/instructor/01_squares.ipynb (two code
exercises, one with code after its solution region, and a written answer); every course notebook with exercises is
checked for complete exercises, a leak-free release, and -- by grading it -- a release in which every exercise fails
with NotImplementedError and nothing else, while the instructor version scores full marks.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest

from genlab.cli import main as cli
from genlab.course.exercises import ExerciseFormatError, course_notebooks, parse_exercises, read_exercises
from genlab.course.release import ReleaseError, release, release_notebook

FIXTURES = Path(__file__).parent / "fixtures" / "grading" / "instructor"
SQUARES = FIXTURES / "01_squares.ipynb"
COURSE = [p for p in course_notebooks() if read_exercises(p).has_exercises]


def load(path: Path):
    return nbformat.read(str(path), as_version=4)


def by_id(nb) -> dict:
    return {c.id: c for c in nb.cells}


def region_lines(source: str, begin: str, end: str) -> list[str]:
    """Lines strictly between the delimiters (written independently of the code under test)."""
    out, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line.strip())
    return out


def secrets_of(nb) -> list[str]:
    lines = []
    for c in nb.cells:
        lines += region_lines(c.source, "BEGIN SOLUTION", "END SOLUTION")
        lines += region_lines(c.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    return [ln for ln in lines if len(ln) >= 10]


@pytest.fixture(scope="module")
def released():
    return release_notebook(load(SQUARES), "01_squares")


def test_solution_regions_become_indented_stubs_keeping_surrounding_code(released):
    cells = by_id(released)
    square = cells["square-solution"].source.splitlines()
    assert square[:2] == ["def square(x):", '    """Return x squared."""']
    assert square[2:] == ["    # YOUR CODE HERE",
                          '    raise NotImplementedError("Exercise square: replace this line with your code")']
    mean = cells["mean-solution"].source.splitlines()
    assert mean[2] == "    total = 0.0" and mean[-1] == "    return total / len(xs)"  # code after the region stays
    assert mean[3].strip() == "# YOUR CODE HERE" and mean[4].startswith("    raise NotImplementedError(")
    compile(cells["mean-solution"].source, "mean", "exec")  # still valid Python
    answer = cells["why-answer"].source
    assert answer.splitlines() == ["**Why does `mean` divide by `len(xs)`?**", "", "..."]


def test_hidden_tests_removed_visible_checks_kept_and_locked(released):
    cells = by_id(released)
    assert cells["square-test"].source == "assert square(2) == 4"
    assert cells["mean-test"].source == "assert mean([2, 4]) == 3"
    for cid in ("square-test", "mean-test"):
        assert cells[cid].metadata["editable"] is False and cells[cid].metadata["deletable"] is False
        assert cells[cid].metadata["nbgrader"]["grade"] is True  # the grader still recognises them


def test_outputs_cleared_only_on_exercise_cells_and_ids_preserved(released):
    original = load(SQUARES)
    assert [c.id for c in released.cells] == [c.id for c in original.cells]
    cells = by_id(released)
    assert cells["setup"].outputs[0]["text"] == "setup done\n"  # other outputs are kept
    assert cells["the-end"].outputs[0]["text"] == "sqrt(2) = 1.414\n"
    for cid in ("square-solution", "square-test", "mean-solution", "mean-test"):
        assert cells[cid].outputs == [] and cells[cid].execution_count is None
    nbformat.validate(released)


def test_no_solution_or_hidden_test_text_survives(released):
    text = json.dumps(released)
    secrets = secrets_of(load(SQUARES))
    assert len(secrets) >= 5
    for line in secrets:
        assert line not in text
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text


def test_release_refuses_a_notebook_whose_outputs_leak_the_solution():
    nb = load(SQUARES)
    # a later cell printed the solution's source: the release must not ship that output
    by_id(nb)["the-end"].outputs.append(nbformat.v4.new_output("stream", name="stdout", text="  total += value\n"))
    with pytest.raises(ReleaseError, match="cell 10 outputs"):
        release_notebook(nb, "leaky")
    nb = load(SQUARES)
    nb.metadata["widgets"] = {"state": {"text": 'assert square(-3) == 9, "square of a negative number"'}}
    release_notebook(nb, "widgets")  # widget state is dropped from every release, so nothing leaks
    nb.cells[0]["attachments"] = {"a.txt": {"text/plain": "    for value in xs:"}}
    with pytest.raises(ReleaseError, match="cell 0 attachments"):
        release_notebook(nb, "attachment")


def test_incomplete_exercises_are_refused_with_the_fix():
    nb = load(SQUARES)
    test = by_id(nb)["mean-test"]
    test.source = "assert mean([2, 4]) == 3"  # hidden checks forgotten
    with pytest.raises(ReleaseError, match="mean_test.*no hidden checks"):
        release_notebook(nb, "no_hidden")
    nb = load(SQUARES)
    nb.cells = [c for c in nb.cells if c.id != "square-test"]
    with pytest.raises(ReleaseError, match="exercise 'square'.*no test cell"):
        release_notebook(nb, "no_test")
    nb = load(SQUARES)
    by_id(nb)["square-test"].source = "### BEGIN HIDDEN TESTS\nassert square(3) == 9\n### END HIDDEN TESTS"
    with pytest.raises(ReleaseError, match="no visible check"):
        release_notebook(nb, "no_visible")


def test_markup_that_would_leak_is_an_error():
    nb = load(SQUARES)
    del by_id(nb)["square-solution"].metadata["nbgrader"]  # markers in a cell that is not a solution cell
    with pytest.raises(ExerciseFormatError, match="not a solution cell"):
        parse_exercises(nb, "unmarked")
    nb = load(SQUARES)
    by_id(nb)["square-solution"].source = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x"
    with pytest.raises(ExerciseFormatError, match="never closed"):
        parse_exercises(nb, "unclosed")
    nb = load(SQUARES)
    by_id(nb)["mean-solution"].metadata["nbgrader"]["grade_id"] = "square"
    with pytest.raises(ExerciseFormatError, match="grade_id 'square' already used"):
        parse_exercises(nb, "duplicate")


def test_nbgrader_rules_any_comment_mark_and_whole_cell_solutions():
    nb = load(SQUARES)
    cells = by_id(nb)
    cells["square-solution"].source = "def square(x):\n    # BEGIN SOLUTION\n    return x * x\n    # END SOLUTION"
    cells["mean-solution"].source = "def mean(xs):\n    return sum(xs) / len(xs)"  # no delimiters: all of it
    out = by_id(release_notebook(nb, "variants"))
    assert "x * x" not in out["square-solution"].source
    assert out["square-solution"].source.startswith("def square(x):\n    # YOUR CODE HERE\n    raise")
    assert out["mean-solution"].source.startswith("# YOUR CODE HERE\nraise NotImplementedError(")
    assert "sum(xs)" not in json.dumps(out)


def test_release_command_writes_notebooks_and_readme_or_nothing(tmp_path):
    out = tmp_path / "release"
    assert cli(["release", str(SQUARES), str(FIXTURES / "02_torch_norm.ipynb"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["01_squares.ipynb", "02_torch_norm.ipynb", "README.md"]
    readme = (out / "README.md").read_text()
    assert "| 01_squares.ipynb | 2 | 3 |" in readme and "hidden checks" in readme
    assert by_id(load(out / "01_squares.ipynb"))["square-test"].source == "assert square(2) == 4"
    bad = tmp_path / "bad.ipynb"
    nb = load(SQUARES)
    by_id(nb)["mean-test"].source = "assert mean([2, 4]) == 3"
    nbformat.write(nb, str(bad))
    out2 = tmp_path / "release2"
    assert cli(["release", str(SQUARES), str(bad), "--out", str(out2)]) == 1
    assert not out2.exists()  # all notebooks are checked before anything is written


@pytest.mark.parametrize("path", COURSE, ids=[p.stem for p in COURSE])
def test_course_notebook_exercises_are_complete_and_release_cleanly(path):
    nb = load(path)
    ex = parse_exercises(nb, path.stem)
    assert ex.problems() == []
    student = release_notebook(copy.deepcopy(nb), path.stem)
    text = json.dumps(student)
    for line in secrets_of(nb):
        public = any(line in c.source for c in student.cells)
        assert public or line not in text, f"{path.name}: {line!r} survives in the release"


@pytest.mark.slow
@pytest.mark.skipif(not COURSE, reason="no course notebook has exercises yet")
def test_course_notebooks_grade_full_marks_and_their_release_fails_cleanly(tmp_path):
    """Released versions run end to end (ci profile) with every test cell failing on NotImplementedError and no
    other error in any cell; an instructor version, graded as a submission, scores full marks with no error.

    Only the first course notebook is graded in its instructor version: every instructor notebook already runs
    under nbval in this suite, hidden tests included, so a failing solution or check fails there; grading all of
    them again would run every notebook a third time (the suite's critical path)."""
    from genlab.course.grade import GradeConfig, grade

    release(COURSE, tmp_path / "released")
    results = grade([COURSE[0], tmp_path / "released"], tmp_path / "grades", instructor=COURSE,
                    config=GradeConfig(timeout=900, jobs=2))   # generous: a correctness test, not a timing one
    assert sorted(r.submission for r in results) == sorted([COURSE[0].stem] + ["released"] * len(COURSE)), \
        [(r.submission, r.path) for r in results]
    for r in results:
        errors = [f"cell {e['index']} ({e['kind']}): {e['ename']}: {e['evalue']}" for e in r.errors]
        assert r.status == "ok", (r.path, r.message)
        if r.submission == "released":
            assert r.points == 0 and r.tests and all(t.result == "failed" for t in r.tests)
            assert {t.error["ename"] for t in r.tests} == {"NotImplementedError"}, r.path
            assert all(e["ename"] == "NotImplementedError" and e["kind"] == "solution" for e in r.errors), errors
        else:
            assert r.points == r.max_points > 0 and not r.errors, (r.path, errors)
