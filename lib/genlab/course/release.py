"""Student versions of the course notebooks: ``genlab release [NOTEBOOK...] --out DIR``.

From each instructor notebook (format: :mod:`genlab.course.exercises`) the release

* replaces every solution region by a stub indented like its ``BEGIN SOLUTION`` line -- ``# YOUR CODE HERE`` and
  ``raise NotImplementedError("Exercise <grade_id>: ...")`` in code, ``...`` in markdown -- and keeps the code
  before and after the region (a solution cell without regions becomes the stub alone, as in nbgrader);
* removes hidden-test regions, delimiters included, and locks test cells (``editable``/``deletable`` false);
* clears outputs, execution counts and attachments of exercise and test cells, keeps every other output (students
  see the figures), keeps cell ids (the grader matches submissions by id) and drops notebook metadata that can carry
  outputs (widget state) or run residue (papermill);
* refuses to release a notebook whose exercises lack a test cell, a visible check, hidden checks or points
  (:meth:`~genlab.course.exercises.Exercises.problems`);
* checks that no line of a solution or of a hidden test survives anywhere in the result -- outputs of other cells,
  attachments and metadata included (:func:`find_leaks`) -- and refuses to write the notebook if one does;
* writes ``README.md`` for students next to the notebooks (how to run them, how they are graded).

Why not nbgrader's ClearSolutions/ClearHiddenTests preprocessors: they are plain nbconvert preprocessors and would
do the first two points, but installing nbgrader pulls a server stack (jupyter_server, sqlalchemy, alembic, ...)
into a course environment that otherwise needs none of it, for about a hundred lines of transform. We keep its
format and its rules (delimiters matched as substrings of a line, stubs indented like the delimiter, whole-cell stub
when a solution cell has no delimiters), so the notebooks still work with nbgrader and otter, and transform them
with nbformat, which the environment has anyway.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any, Iterator

import nbformat

from genlab.course.exercises import (
    Exercises,
    SolutionCell,
    course_notebooks,
    parse_exercises,
    strip_regions,
)

TEXT_STUB = "..."
#: Cell metadata kept on exercise cells (everything else could carry run residue).
_KEEP_CELL_META = ("nbgrader", "tags", "editable", "deletable", "jupyter", "slideshow")
#: Notebook metadata dropped from every release: widget state embeds live outputs; papermill keys are run residue.
_DROP_NB_META = ("widgets", "papermill")
#: Lines shorter than this (after stripping) are too generic to count as leaked solution text (``return x``).
MIN_LEAK_CHARS = 10


class ReleaseError(ValueError):
    """The instructor notebook cannot be released as it is (the message says what to fix)."""


def code_stub(grade_id: str) -> str:
    return f'# YOUR CODE HERE\nraise NotImplementedError("Exercise {grade_id}: replace this line with your code")'


def release_notebook(nb: Any, name: str = "notebook") -> Any:
    """The student version of instructor notebook ``nb`` (a new ``NotebookNode``; ``nb`` is not modified).

    Raises :class:`ReleaseError` if the exercises are incomplete or solution/hidden-test text would leak.
    """
    ex = parse_exercises(nb, name)
    problems = ex.problems()
    if problems:
        raise ReleaseError("cannot release " + name + ":\n  - " + "\n  - ".join(problems))
    out = copy.deepcopy(nb)
    for key in _DROP_NB_META:
        out.metadata.pop(key, None)
    solutions = {s.index: s for s in ex.solutions}
    tests = {t.index: t for t in ex.tests}
    for i, cell in enumerate(out.cells):
        if i in solutions:
            cell.source = _stub_solution(solutions[i])
        elif i in tests:
            cell.source = tests[i].visible_source
        else:
            continue
        _clear(cell)
        if i in tests:  # nbgrader's LockCells: JupyterLab will not let students edit or delete test cells
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
    leaks = find_leaks(ex, out)
    if leaks:
        raise ReleaseError(f"cannot release {name}: solution or hidden-test text would leak:\n  - "
                           + "\n  - ".join(leaks) + "\n  clear those outputs (or stop printing the solution) and retry")
    nbformat.validate(out)
    return out


def _stub_solution(s: SolutionCell) -> str:
    stub = code_stub(s.grade_id) if s.cell_type == "code" else TEXT_STUB
    if not s.regions:
        return stub
    return strip_regions(s.source, s.regions, stub)


def _clear(cell: Any) -> None:
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    cell.pop("attachments", None)
    for key in list(cell.metadata):
        if key not in _KEEP_CELL_META:
            del cell.metadata[key]


def secret_lines(ex: Exercises) -> set[str]:
    """Stripped lines of every solution and hidden test that are long enough to identify it."""
    lines = [ln for s in ex.solutions for ln in s.solution_lines] + [ln for t in ex.tests for ln in t.hidden_lines]
    return {ln.strip() for ln in lines if len(ln.strip()) >= MIN_LEAK_CHARS}


def find_leaks(ex: Exercises, released: Any) -> list[str]:
    """Places in ``released`` that contain a secret line of ``ex`` (empty list: nothing leaks).

    A secret line that also appears in the released *sources* is public anyway (e.g. an import used elsewhere) and
    is not reported; everything else -- outputs, attachments, cell and notebook metadata -- is searched.
    """
    public = "\n".join(c.source for c in released.cells)
    secrets = {s for s in secret_lines(ex) if s not in public}
    if not secrets:
        return []
    found = []
    places = [("notebook metadata", released.metadata)]
    for i, cell in enumerate(released.cells):
        places += [(f"cell {i} outputs", cell.get("outputs", [])), (f"cell {i} attachments", cell.get("attachments")),
                   (f"cell {i} metadata", cell.get("metadata"))]
    for where, obj in places:
        for text in _strings(obj):
            hit = next((s for s in secrets if s in text), None)
            if hit is not None:
                found.append(f"{where}: {hit[:60]!r}")
                break
    return found


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        if obj and all(isinstance(x, str) for x in obj):
            yield "".join(obj)  # multiline strings stored as lists of lines
        for x in obj:
            yield from _strings(x)


def release(notebooks: list[str | Path] | None, out: str | Path) -> list[Path]:
    """Write the student version of each notebook (default: every course notebook) and README.md into ``out``.

    All notebooks are checked before anything is written, so a failed release leaves ``out`` untouched.
    Returns the paths written (notebooks first, README.md last).
    """
    paths = [Path(p) for p in notebooks] if notebooks else course_notebooks()
    if not paths:
        raise ReleaseError("no notebooks to release: none given and notebooks/ has no NN_topic.ipynb")
    out = Path(out)
    released, errors = [], []
    for p in paths:
        if not p.is_file():
            errors.append(f"{p}: no such notebook")
            continue
        try:
            nb = nbformat.read(str(p), as_version=4)
            released.append((p, parse_exercises(nb, p.stem), release_notebook(nb, p.stem)))
        except (ValueError, OSError) as e:  # ReleaseError/ExerciseFormatError are ValueErrors, so are JSON errors
            errors.append(f"{p}: {e}")
    if errors:
        raise ReleaseError("release stopped, nothing written:\n" + "\n".join(errors))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p, _, nb in released:
        target = out / p.name
        if target.resolve() == p.resolve():
            raise ReleaseError(f"--out {out} would overwrite the instructor notebook {p}; choose another folder")
        nbformat.write(nb, str(target))
        written.append(target)
    readme = out / "README.md"
    readme.write_text(student_readme([(p.name, ex) for p, ex, _ in released]))
    written.append(readme)
    return written


def student_readme(notebooks: list[tuple[str, Exercises]]) -> str:
    """The README shipped with the student notebooks: set-up, running, exercises, grading."""
    rows = "\n".join(f"| {name} | {sum(s.cell_type == 'code' for s in ex.solutions)} | "
                     f"{ex.max_points:g} |" for name, ex in notebooks)
    return f"""# Student notebooks: Generative Models for Images and Video

These are the student versions of the course notebooks. Each notebook imports the course library `genlab`; the
exercises ask you to implement a piece of it yourself.

| notebook | exercises | points |
|---|---|---|
{rows}

## Set up (once)

The notebooks need the course environment (Python >= 3.10, PyTorch and the pinned packages). In a clone of the
course repository run `python3 bootstrap.py setup` (or `make setup`): it creates `.venv/` and installs everything.
Then start JupyterLab with `.venv/bin/jupyter lab` and open a notebook from this folder.

## Run

Run the cells from top to bottom. The `parameters` cell at the top holds `profile = "auto"`: without a GPU that is
the `cpu` profile (minutes per notebook); `profile = "ci"` runs tiny sizes in seconds, handy to check that everything
runs. Nothing is downloaded; the data ships with the course.

## Exercises

* An exercise is a code cell with `raise NotImplementedError(...)` in it: replace that line with your code and keep
  the code around it (function signatures, docstrings).
* The cell after it is a **test cell** with visible checks (plain `assert`s). Run it: no error means the visible
  checks pass.
* Written answers are markdown cells with `...` in them: replace the `...` with your answer.

## Grading

Hand in the `.ipynb` file (keep its name). The grader (`genlab grade`) runs your notebook from top to bottom in a
fresh Python kernel with the `ci` profile, in its own process and folder, without network, with a time limit and a
memory limit. It matches your cells to the course's by their cell ids, so:

* do not delete or edit the test cells: the grader puts the instructor's version of every test cell back (edits are
  lost; a deleted test cell is re-inserted), with **hidden checks** added to it;
* you may add cells of your own and write code anywhere; keep the exercise cells.

Each test cell scores its points when it runs without an error (visible and hidden checks together). An error in one
exercise costs that exercise only: the notebook keeps running. What your code prints does not count. You get a
feedback file listing the tests that failed and the first lines of each error.
"""


def main(args: argparse.Namespace) -> int:
    """``genlab release``: exit code 0 on success, 1 if a notebook cannot be released (nothing is written then)."""
    try:
        written = release(args.notebooks or None, args.out)
    except (ReleaseError, FileNotFoundError) as e:
        print(f"genlab release: {e}", file=sys.stderr)
        return 1
    for p in written:
        print(f"wrote {p}")
    return 0
