"""Exercises inside an instructor notebook: solution regions, test cells and their hidden checks.

The instructor keeps one notebook per topic with the solutions in it (DESIGN.md, "Notebook anatomy" 4). The format
is nbgrader's, so the notebooks also open in nbgrader's and otter's tooling:

* a **solution cell** is a code cell (or a markdown cell, for a written answer graded by hand) whose metadata holds
  ``"nbgrader": {"solution": true, "grade": false, "locked": false, "grade_id": ID, "schema_version": 3}``. Its
  solution regions run from a line containing ``BEGIN SOLUTION`` to a line containing ``END SOLUTION`` (written
  ``### BEGIN SOLUTION``); the code around the regions is what students get. Without regions the whole cell is the
  solution (nbgrader's rule).
* a **test cell** is a code cell with ``"nbgrader": {"grade": true, "solution": false, "locked": true,
  "grade_id": ID, "points": P, "schema_version": 3}``: visible checks (plain ``assert``), then the hidden checks
  between lines containing ``BEGIN HIDDEN TESTS`` / ``END HIDDEN TESTS``.

Delimiters are recognised as nbgrader recognises them: a line *containing* the delimiter text opens or closes a
region, whatever comment characters precede it. A code exercise is a code solution cell plus the test cells that
follow it (up to the next code solution cell).

:func:`parse_exercises` reads that structure and raises :class:`ExerciseFormatError` where releasing the notebook
would be unsafe (a delimiter outside a marked cell would leak its region); :meth:`Exercises.problems` lists what an
exercise lacks (a test cell, a visible check, hidden checks, points). ``genlab release`` refuses notebooks with
problems; ``genlab grade`` reads its tests from here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
BEGIN_HIDDEN = "BEGIN HIDDEN TESTS"
END_HIDDEN = "END HIDDEN TESTS"
_NOTEBOOK_NAME = re.compile(r"^\d\d_.*\.ipynb$")


class ExerciseFormatError(ValueError):
    """An instructor notebook whose exercise markup is malformed (the message names the cell and the fix)."""


@dataclass(frozen=True)
class Region:
    """Lines ``begin`` .. ``end`` (the delimiter lines themselves, 0-based, inclusive) of a cell's source."""

    begin: int
    end: int
    indent: str  # leading whitespace of the BEGIN line: stubs are indented like it (nbgrader's rule)


@dataclass(frozen=True)
class SolutionCell:
    """A cell the student writes: code (auto-graded through its tests) or markdown (a written answer)."""

    index: int
    cell_id: str | None
    grade_id: str
    cell_type: str
    source: str
    regions: tuple[Region, ...]

    @property
    def solution_lines(self) -> list[str]:
        """The lines that are the solution (what the release must not contain)."""
        lines = self.source.splitlines()
        if not self.regions:
            return lines
        return [ln for r in self.regions for ln in lines[r.begin + 1:r.end]]


@dataclass(frozen=True)
class TestCell:
    """A graded cell: visible checks plus hidden checks; scored ``points`` if it runs without an error."""

    __test__ = False  # not a pytest class

    index: int
    cell_id: str | None
    grade_id: str
    points: float
    source: str
    hidden: tuple[Region, ...]

    @property
    def visible_source(self) -> str:
        """The cell as students see it: hidden regions (delimiters included) removed."""
        return strip_regions(self.source, self.hidden)

    @property
    def hidden_lines(self) -> list[str]:
        lines = self.source.splitlines()
        return [ln for r in self.hidden for ln in lines[r.begin + 1:r.end]]

    def hidden_line_numbers(self) -> set[int]:
        """1-based line numbers of the hidden checks in :attr:`source` (to tell students *where* a check failed)."""
        return {n + 1 for r in self.hidden for n in range(r.begin, r.end + 1)}


@dataclass
class Exercises:
    """The exercise structure of one instructor notebook."""

    name: str
    nb: Any = field(repr=False)  # nbformat.NotebookNode
    solutions: list[SolutionCell]
    tests: list[TestCell]

    @property
    def max_points(self) -> float:
        return float(sum(t.points for t in self.tests))

    @property
    def has_exercises(self) -> bool:
        return bool(self.solutions or self.tests)

    def test_by_cell_id(self) -> dict[str, TestCell]:
        return {t.cell_id: t for t in self.tests if t.cell_id}

    def test_by_grade_id(self) -> dict[str, TestCell]:
        return {t.grade_id: t for t in self.tests}

    def exercise_of(self) -> dict[str, str]:
        """grade_id of each test cell -> grade_id of the code solution cell it checks (the closest one above it)."""
        out, current = {}, None
        marks = sorted([(s.index, "s", s) for s in self.solutions if s.cell_type == "code"]
                       + [(t.index, "t", t) for t in self.tests], key=lambda x: x[0])
        for _, kind, cell in marks:
            if kind == "s":
                current = cell.grade_id
            elif current is not None:
                out[cell.grade_id] = current
        return out

    def problems(self) -> list[str]:
        """What keeps this notebook from being released: each entry names the cell and what to add."""
        out = []
        ids = [c.get("id") for c in self.nb.cells]
        if self.has_exercises and not all(ids):
            out.append(f"{self.name}: cells have no ids (nbformat < 4.5) and grading matches cells by id: re-save "
                       "it with JupyterLab >= 3, or nb = nbformat.v4.upgrade(nb, from_version=4, "
                       "from_minor=nb.nbformat_minor) and nbformat.write it")
        tested = self.exercise_of()  # test grade_id -> exercise grade_id
        checked = set(tested.values())
        for s in self.solutions:
            if s.cell_type == "code" and s.grade_id not in checked:
                out.append(f"{self.name}: exercise {s.grade_id!r} (cell {s.index}) has no test cell after it: add a "
                           "code cell with nbgrader grade metadata, visible asserts and a hidden-tests region")
            if s.regions and not any(ln.strip() for ln in s.solution_lines):
                out.append(f"{self.name}: solution cell {s.grade_id!r} (cell {s.index}) has an empty solution region")
        for t in self.tests:
            where = f"{self.name}: test cell {t.grade_id!r} (cell {t.index})"
            if t.grade_id not in tested:
                out.append(f"{where} comes before any solution cell: move it below the exercise it checks")
            if not _has_code(t.visible_source):
                out.append(f"{where} has no visible check: add a plain assert students can run")
            if not t.hidden:
                out.append(f"{where} has no hidden checks: add lines between '### {BEGIN_HIDDEN}' and "
                           f"'### {END_HIDDEN}'")
            elif not _has_code("\n".join(t.hidden_lines)):
                out.append(f"{where} has an empty hidden-tests region")
            if not t.points > 0:
                out.append(f"{where} declares no points: set metadata nbgrader.points to a positive number")
        return out


def nbgrader_meta(cell: Any) -> dict:
    """The cell's ``nbgrader`` metadata ({} when absent or not a dict)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_solution_cell(cell: Any) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_test_cell(cell: Any) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.get("cell_type") == "code"


def marker_regions(source: str, begin: str, end: str, *, where: str) -> tuple[Region, ...]:
    """Regions between lines containing ``begin`` and ``end``; unbalanced or nested delimiters raise."""
    regions, start = [], None
    for n, line in enumerate(source.splitlines()):
        if begin in line:
            if start is not None:
                raise ExerciseFormatError(f"{where}: line {n + 1} opens a {begin!r} region inside another one "
                                          f"(line {start + 1}); close the first with {end!r}")
            start = n
        elif end in line:
            if start is None:
                raise ExerciseFormatError(f"{where}: line {n + 1} has {end!r} without a {begin!r} before it")
            first = source.splitlines()[start]
            regions.append(Region(start, n, first[:len(first) - len(first.lstrip())]))
            start = None
    if start is not None:
        raise ExerciseFormatError(f"{where}: the {begin!r} region opened at line {start + 1} is never closed; "
                                  f"add a line '### {end}'")
    return tuple(regions)


def strip_regions(source: str, regions: tuple[Region, ...], stub: str | None = None) -> str:
    """``source`` with each region (delimiters included) removed, or replaced by ``stub`` at the region's indent."""
    lines = source.splitlines()
    out, pos = [], 0
    for r in regions:
        out.extend(lines[pos:r.begin])
        if stub is not None:
            out.extend(r.indent + s for s in stub.splitlines())
        pos = r.end + 1
    out.extend(lines[pos:])
    return "\n".join(out)


def parse_exercises(nb: Any, name: str = "notebook") -> Exercises:
    """Read the exercise cells of an instructor notebook (an ``nbformat.NotebookNode``, nbformat 4).

    Raises :class:`ExerciseFormatError` for markup that is ambiguous or would leak in a release: delimiters in a cell
    without the matching nbgrader metadata, unbalanced delimiters, duplicate grade_ids or cell ids.
    """
    solutions, tests = [], []
    seen_grade: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        where = f"{name}, cell {i}"
        cid = cell.get("id")
        if cid:
            if cid in seen_ids:
                raise ExerciseFormatError(f"{where}: cell id {cid!r} also used by cell {seen_ids[cid]}; "
                                          "give every cell a unique id (copy-pasted JSON?)")
            seen_ids[cid] = i
        src = cell.get("source", "")
        sol = marker_regions(src, BEGIN_SOLUTION, END_SOLUTION, where=where)
        hid = marker_regions(src, BEGIN_HIDDEN, END_HIDDEN, where=where)
        meta = nbgrader_meta(cell)
        if sol and not is_solution_cell(cell):
            raise ExerciseFormatError(f"{where}: has a solution region but is not a solution cell; add metadata "
                                      '"nbgrader": {"solution": true, "grade": false, "locked": false, "grade_id": '
                                      '"<unique id>", "schema_version": 3}')
        if hid and not is_test_cell(cell):
            raise ExerciseFormatError(f"{where}: has a hidden-tests region but is not a test cell; add metadata "
                                      '"nbgrader": {"grade": true, "solution": false, "locked": true, "grade_id": '
                                      '"<unique id>", "points": 1, "schema_version": 3}')
        if not (is_solution_cell(cell) or is_test_cell(cell)):
            continue
        if cell.get("cell_type") not in ("code", "markdown"):
            raise ExerciseFormatError(f"{where}: a {cell.get('cell_type')} cell cannot be an exercise cell")
        gid = meta.get("grade_id")
        if not isinstance(gid, str) or not gid.strip():
            raise ExerciseFormatError(f"{where}: nbgrader metadata needs a non-empty string grade_id")
        if gid in seen_grade:
            raise ExerciseFormatError(f"{where}: grade_id {gid!r} already used by cell {seen_grade[gid]}; "
                                      "grade_ids must be unique within a notebook")
        seen_grade[gid] = i
        if is_solution_cell(cell):
            if meta.get("grade"):
                raise ExerciseFormatError(f"{where}: a cell is either a solution or a test (nbgrader 'autograded "
                                          "answer' cells with grade=true and solution=true are not supported: put "
                                          "the checks in a separate test cell)")
            if hid:
                raise ExerciseFormatError(f"{where}: hidden tests belong in a test cell, not in a solution cell")
            solutions.append(SolutionCell(i, cid, gid, cell.cell_type, src, sol))
        else:
            try:
                points = float(meta.get("points", 0) or 0)
            except (TypeError, ValueError):
                raise ExerciseFormatError(f"{where}: points {meta.get('points')!r} is not a number") from None
            tests.append(TestCell(i, cid, gid, points, src, hid))
    return Exercises(name=name, nb=nb, solutions=solutions, tests=tests)


def read_exercises(path: str | Path) -> Exercises:
    """:func:`parse_exercises` of the notebook file at ``path`` (named after its stem)."""
    import nbformat

    path = Path(path)
    return parse_exercises(nbformat.read(str(path), as_version=4), name=path.stem)


def course_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The course's instructor notebooks, ``NN_topic.ipynb`` in ``folder`` (default: the repository's notebooks/)."""
    if folder is None:
        folder = Path(__file__).resolve().parents[3] / "notebooks"
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {folder}: pass the instructor notebooks explicitly")
    return sorted(p for p in folder.iterdir() if _NOTEBOOK_NAME.match(p.name))


def _has_code(source: str) -> bool:
    return any(ln.strip() and not ln.strip().startswith("#") for ln in source.splitlines())
