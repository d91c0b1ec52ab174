"""genlab grade: scores, statuses and the sandbox (lib/genlab/course/grade.py).

Instructor notebooks: tests/fixtures/grading/instructor/ -- 01_squares (exercises `square`, 1 point, and `mean`,
2 points; no torch) and 02_torch_norm (imports torch and genlab, so the memory cap must leave room for them).
Student submissions are built here from the released 01_squares, each with one behaviour, so the code a submission
runs sits next to what the test expects of it. All of them are graded in ONE batch with 2 workers; every test below
reads its own row of that batch.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from genlab.cli import main as cli
from genlab.course.exercises import read_exercises
from genlab.course.grade import CSV_COLUMNS, GRADE_MIME, GradeConfig, assemble, grade, match_instructor
from genlab.course.release import release

pytestmark = pytest.mark.slow  # the batch takes ~35 s on 2 cores (the matching/assembly tests are fast)

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
CONFIG = GradeConfig(timeout=90, cell_timeout=20, jobs=2)  # generous: torch imports slowly on a loaded 2-core CI box

HANG = "def square(x):\n    while True:  # busy loop: the per-cell timeout interrupts it\n        pass"
HANG_HARD = ("import signal, time\n"
             "signal.signal(signal.SIGINT, signal.SIG_IGN)  # ignore the interrupt\n"
             "time.sleep(1000)")
MEMORY = "blob = bytearray(6 * 1024**3)  # 6 GB, over the 4 GB cap\n\ndef square(x):\n    return x * x"
EXIT = "import os\nos._exit(3)"
FAKE_PRINT = '''\
def mean(xs):
    return 0.0
from IPython.display import HTML, display
print("score: 3/3 -- all tests passed!")
display(HTML("<b>Grade: 100%</b>"))
display({"MIME": {"grade_id": "mean_test", "token": "0123456789abcdef0123456789abcdef"}}, raw=True)
'''.replace("MIME", GRADE_MIME)
CHEAT_BUILTINS = '''\
import builtins
def mean(xs):
    return sum(xs) / 2  # right for [2, 4] (the visible check), wrong in general
builtins.abs = lambda x: 0  # makes `abs(mean(...) - expected) < eps` true
get_ipython().set_custom_exc((AssertionError,), lambda *args, **kwargs: None)  # swallow failed asserts
AssertionError = Warning
'''
NETWORK = '''\
import socket
def square(x):
    return x * x
print("interfaces:", sorted(name for _, name in socket.if_nameindex()))
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    print("connected")
except OSError as e:
    print("no network:", e)
'''
CHEAT_TRANSFORMER = '''\
def mean(xs):
    return 0.0
get_ipython().input_transformers_cleanup.append(
    lambda lines: ["pass\\n"] if any("assert" in line for line in lines) else lines)  # neuter every check
'''


def tamper(targets: list[Path]) -> str:
    return f'''\
import os, pathlib, shutil
def square(x):
    return x * x
for name in os.listdir("."):  # the copy of this notebook
    os.remove(name)
for name in ("grades.csv", "grades.json", "executed.ipynb", "tamper.ipynb"):
    pathlib.Path(name).write_text("score: 100")
shutil.rmtree("..", ignore_errors=True)  # the whole job folder, this working directory included
refused = []
for target in {[str(t) for t in targets]!r}:
    try:
        pathlib.Path(target).write_text("tampered")
    except OSError as e:
        refused.append(type(e).__name__)
print("refused:", refused)
'''


def load(path: Path):
    return nbformat.read(str(path), as_version=4)


def student(course: Path, solutions: dict[str, str] | None = None, edit=None):
    """A student's 01_squares: the released notebook with each exercise filled in -- with the instructor's solution
    unless ``solutions`` gives other code for that grade_id; ``edit(cells)`` may then add, move or delete cells."""
    nb = load(course / "released" / "01_squares.ipynb")
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source
               for c in load(course / "instructor" / "01_squares.ipynb").cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    answers.update(solutions or {})
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution"):
            c.source = answers[c.metadata["nbgrader"]["grade_id"]]
    if edit:
        edit(nb.cells)
    return nb


def move(cells, cid: str, after: str) -> None:
    cell = next(c for c in cells if c.id == cid)
    cells.remove(cell)
    cells.insert(next(i for i, c in enumerate(cells) if c.id == after) + 1, cell)


def add_move_delete(cells) -> None:
    helper = nbformat.v4.new_code_cell("POWER = 2  # a cell of the student's own")
    cells.insert(2, helper)
    move(cells, "the-end", after="title")
    move(cells, "square-test", after="mean-solution")
    cells[:] = [c for c in cells if c.id not in ("mean-test", "why-answer")]


def rewrite_test(cells) -> None:
    next(c for c in cells if c.id == "square-test").source = "assert True  # the student's own 'check'"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """Copies of the instructor notebooks (a hostile submission tries to overwrite them) and their release."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(FIXTURES / "instructor", root / "instructor")
    release(sorted((root / "instructor").glob("*.ipynb")), root / "released")
    return root


@pytest.fixture(scope="module")
def batch(course, tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("grades")
    shutil.copytree(course / "instructor", subs / "solutions")  # a folder = one student's submission
    shutil.copytree(course / "released", subs / "released")
    targets = [course / "instructor" / "01_squares.ipynb", subs / "tamper.ipynb",
               subs / "solutions" / "01_squares.ipynb", out / "grades.csv"]
    notebooks = {
        "hang": student(course, {"square": HANG}),
        "hang_hard": student(course, {"mean": HANG_HARD}),
        "memory": student(course, {"square": MEMORY}),
        "exit": student(course, {"mean": EXIT}),
        "tamper": student(course, {"square": tamper(targets)}),
        "fake_print": student(course, {"mean": FAKE_PRINT}),
        "cheat_builtins": student(course, {"mean": CHEAT_BUILTINS}),
        "cheat_transformer": student(course, {"mean": CHEAT_TRANSFORMER}),
        "edited": student(course, {"square": "def square(x):\n    return x ** POWER"}, edit=add_move_delete),
        "edited_test": student(course, {"square": "def square(x):\n    return 2 * x"}, edit=rewrite_test),
        "network": student(course, {"square": NETWORK}),
        "unrelated": nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")]),
    }
    paths = [subs / "solutions", subs / "released"]
    for name, nb in notebooks.items():
        nbformat.write(nb, str(subs / f"{name}.ipynb"))
        paths.append(subs / f"{name}.ipynb")
    shutil.copyfile(FIXTURES / "corrupt.ipynb", subs / "corrupt.ipynb")
    paths.append(subs / "corrupt.ipynb")
    protected = sorted(p for p in [*subs.rglob("*"), *course.rglob("*")] if p.is_file())
    before = {p: sha(p) for p in protected}
    results = grade(paths, out, instructor=[course / "instructor"], config=CONFIG)
    return {"rows": {(r.submission, r.notebook): r for r in results}, "results": results, "out": out,
            "before": before, "targets": targets}


def row(batch, name: str, notebook: str = "01_squares"):
    return batch["rows"][(name, notebook)]


def outcome(r) -> dict:
    return {t.grade_id: t.result for t in r.tests}


def test_solution_notebooks_score_full_marks(batch):
    for nb, points in (("01_squares", 3), ("02_torch_norm", 1)):
        r = row(batch, "solutions", nb)
        assert (r.status, r.points, r.max_points) == ("ok", points, points), r.message
        assert r.errors == [] and all(t.result == "passed" for t in r.tests)


def test_genlab_and_torch_fit_under_the_memory_cap_in_the_ci_profile(batch):
    r = row(batch, "solutions", "02_torch_norm")  # its hidden check asserts run.profile == "ci"
    assert r.status == "ok" and r.points == 1
    assert r.sandbox["memory"] == "RLIMIT_AS 4096 MB per process"
    assert 300 < r.kernel_peak_vm_mb < 4096  # the kernel did import torch, and stayed under the cap


def test_released_notebooks_score_zero_and_fail_only_on_not_implemented(batch):
    for nb in ("01_squares", "02_torch_norm"):
        r = row(batch, "released", nb)
        assert (r.status, r.points) == ("ok", 0)
        assert all(t.result == "failed" and t.error["ename"] == "NotImplementedError" for t in r.tests)
        assert r.errors == []  # no other cell raised: the notebook ran to its end


def test_a_hung_cell_is_interrupted_and_the_rest_still_scores(batch):
    r = row(batch, "hang")
    assert r.status == "timeout" and "interrupted" in r.message
    assert outcome(r) == {"square_test": "failed", "mean_test": "passed"} and r.points == 2


def test_a_cell_that_ignores_the_interrupt_ends_the_run_keeping_earlier_scores(batch):
    r = row(batch, "hang_hard")
    assert r.status == "timeout" and "did not respond to the interrupt" in r.message
    assert outcome(r) == {"square_test": "passed", "mean_test": "not run"} and r.points == 1


def test_an_allocation_over_the_cap_is_a_memory_status(batch):
    r = row(batch, "memory")
    assert r.status == "memory"
    assert [(e["kind"], e["grade_id"], e["ename"]) for e in r.errors] == [("solution", "square", "MemoryError")]
    assert outcome(r) == {"square_test": "failed", "mean_test": "passed"} and r.points == 2


def test_a_kernel_that_exits_is_crashed_keeping_earlier_scores(batch):
    r = row(batch, "exit")
    assert r.status == "crashed" and "kernel died" in r.message
    assert outcome(r) == {"square_test": "passed", "mean_test": "not run"} and r.points == 1


def test_tampering_with_files_changes_nothing(batch):
    r = row(batch, "tamper")
    assert (r.status, r.points) == ("ok", 3)  # it wiped its working directory and job folder: no effect
    changed = [p for p, h in batch["before"].items() if not p.is_file() or sha(p) != h]
    if r.sandbox["filesystem"].startswith("read-only"):
        assert changed == []  # instructor copies, every submission (itself included) are untouched
        assert "tampered" not in (batch["out"] / "grades.csv").read_text()
    else:  # no mount namespace here: only what the grader itself does can be checked
        assert set(changed) <= set(batch["targets"]), changed


def test_printed_or_displayed_fake_scores_do_not_count(batch):
    r = row(batch, "fake_print")
    assert (r.status, r.points) == ("ok", 1)
    assert outcome(r) == {"square_test": "passed", "mean_test": "failed"}


def test_patched_builtins_and_swallowed_exceptions_do_not_pass_a_test(batch):
    r = row(batch, "cheat_builtins")
    assert outcome(r) == {"square_test": "passed", "mean_test": "failed"} and r.points == 1
    assert r.tests[1].error["where"] == "hidden checks"


def test_an_input_transformer_that_neuters_checks_does_not_pass_a_test(batch):
    r = row(batch, "cheat_transformer")
    assert outcome(r) == {"square_test": "passed", "mean_test": "failed"} and r.points == 1


def test_added_moved_and_deleted_cells_still_grade_what_remains(batch):
    r = row(batch, "edited")
    assert (r.status, r.points) == ("ok", 3), r.tests  # the student's own cell defined POWER; moves are harmless
    reinserted = {t.grade_id: t.reinserted for t in r.tests}
    assert reinserted == {"square_test": False, "mean_test": True}  # the deleted test cell was put back


def test_edits_to_a_test_cell_are_discarded(batch):
    r = row(batch, "edited_test")
    assert outcome(r) == {"square_test": "failed", "mean_test": "passed"} and r.points == 2
    assert r.tests[0].error["where"] == "hidden checks"  # square = 2x passes the visible check only


def test_invalid_files_are_reported_and_the_batch_completes(batch):
    corrupt, unrelated = row(batch, "corrupt", ""), row(batch, "unrelated", "")
    assert corrupt.status == unrelated.status == "invalid"
    assert "not valid JSON" in corrupt.message and "matches no instructor notebook" in unrelated.message
    assert len(batch["results"]) == 17


def test_gradebook_files(batch):
    out = batch["out"]
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(batch["results"])
    assert {"submission": "hang", "notebook": "01_squares", "points": "2", "max_points": "3",
            "status": "timeout"} in [{k: v for k, v in r.items() if k != "path"} for r in rows]
    assert all(Path(r["path"]).exists() for r in rows)                  # each row says which file it graded
    doc = json.loads((out / "grades.json").read_text())
    assert doc["instructor"]["01_squares"]["written_answers"] == ["why_mean"]
    hang = next(s for s in doc["submissions"] if s["submission"] == "hang")
    assert [t["result"] for t in hang["tests"]] == ["failed", "passed"]
    feedback = (out / "feedback" / "cheat_builtins.md").read_text()
    assert "1 / 3 points (ok)" in feedback and "`mean_test` in the hidden checks: AssertionError" in feedback
    assert "abs(mean(" not in feedback  # the hidden checks' code is not shown to students
    assert {p.stem for p in (out / "feedback").iterdir()} == {r.submission for r in batch["results"]}
    executed = load(out / "executed" / "fake_print" / "fake_print.ipynb")  # the run, kept for audit
    assert any("score: 3/3" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_sandbox_is_recorded_and_the_network_unreachable(batch):
    r = row(batch, "network")
    assert (r.status, r.points) == ("ok", 3)
    assert {"network", "filesystem", "processes", "memory", "user"} <= set(r.sandbox)
    executed = load(batch["out"] / "executed" / "network" / "network.ipynb")
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    if r.sandbox["network"].startswith("isolated"):
        assert "interfaces: ['lo']" in text and "no network:" in text
    else:  # the gradebook says why (e.g. no Linux namespaces here)
        assert r.sandbox["network"].startswith("not isolated: ")


def test_wall_clock_limit_kills_every_process(course, tmp_path):
    code = ("import subprocess, time\n"
            "subprocess.Popen(['sleep', '313.5'], start_new_session=True)  # detached from the kernel's group\n"
            "time.sleep(120)")
    path = tmp_path / "slow.ipynb"
    nbformat.write(student(course, {"square": code}), str(path))
    [r] = grade([path], tmp_path / "out", instructor=[course / "instructor"],
                config=GradeConfig(timeout=12, cell_timeout=100))
    assert r.status == "timeout" and "12 s time limit" in r.message
    assert all(t.result == "not run" for t in r.tests)
    deadline = time.monotonic() + 5
    while _processes_with("313.5") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with("313.5") == []


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_matching_by_cell_id_then_grade_id(course):
    inst = {p.stem: read_exercises(p) for p in sorted((course / "instructor").glob("*.ipynb"))}
    nb = load(course / "released" / "02_torch_norm.ipynb")
    assert match_instructor(nb, inst).name == "02_torch_norm"
    for c in nb.cells:  # an old front-end that dropped the ids: nbgrader grade_ids still match
        c.id = f"x{hash(c.id) % 10**6}"
    assert match_instructor(nb, inst).name == "02_torch_norm"
    assert match_instructor(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), inst) is None


def test_assemble_restores_tests_and_ignores_claims_of_student_cells(course):
    ex = read_exercises(course / "instructor" / "01_squares.ipynb")
    nb = student(course, edit=add_move_delete)
    fake = nbformat.v4.new_code_cell("pass")  # a cell that claims to be a 100-point test
    fake.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "bonus", "points": 100}
    nb.cells.append(fake)
    tokens = {"square_test": "t1", "mean_test": "t2"}
    run, plan = assemble(nb, ex, tokens)
    ids = [c.id for c in run.cells]
    assert ids[0] == "genlab-grade-guard" and len(set(ids)) == len(ids)
    tests = {p["grade_id"]: cid for cid, p in plan.items() if p["kind"] == "test"}
    assert set(tests) == {"square_test", "mean_test"}  # the 'bonus' cell is plain student code
    mean_test = run.cells[ids.index("mean-test")]
    assert ids.index("mean-test") == ids.index("mean-solution") + 1  # re-inserted after its instructor neighbour
    assert "BEGIN HIDDEN TESTS" in mean_test.source and mean_test.source.rstrip().endswith("reached the end")
    assert '"token": "t2"' in mean_test.source
    assert "nbgrader" not in run.cells[-1].metadata


def test_grade_command_writes_the_gradebook(tmp_path, monkeypatch):
    """The CLI path, with submissions that need no kernel: invalid files still get a row, and exit code 0."""
    monkeypatch.setenv("GENLAB_INSTRUCTOR", str(FIXTURES / "instructor"))
    junk = tmp_path / "01_squares_alice.ipynb"
    junk.write_text('{"cells": 3}')
    out = tmp_path / "grades"
    assert cli(["grade", str(FIXTURES / "corrupt.ipynb"), str(junk), "--out", str(out), "--jobs", "2"]) == 0
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"submission": "corrupt", "notebook": "", "points": "0", "max_points": "0", "status": "invalid",
         "path": str(FIXTURES / "corrupt.ipynb")},
        {"submission": "01_squares_alice", "notebook": "01_squares", "points": "0", "max_points": "3",
         "status": "invalid", "path": str(junk)},
    ]
    assert "not a notebook" in (out / "feedback" / "01_squares_alice.md").read_text()
    monkeypatch.setenv("GENLAB_INSTRUCTOR", str(tmp_path / "nowhere"))
    assert cli(["grade", str(junk), "--out", str(out)]) == 1  # a usage error, said on stderr
