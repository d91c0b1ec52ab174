"""The course runner (`genlab run`) and its report, on tiny fixture notebooks (tests/fixtures/runner/).

Each fixture run costs a few seconds of kernel start-up, so the runs are shared: one mixed run (an ok notebook and a
failing one) through `genlab.cli.main`, one through the installed console script with --store, one timeout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import pytest

from genlab import cli
from genlab.course import report as reporting
from genlab.course.run import clean_executed, child_env, default_notebooks, run_notebooks
from genlab.record import read_records

FIXTURES = Path(__file__).parent / "fixtures" / "runner"
OK, FAILS, SLEEPS = (FIXTURES / f"{n}.ipynb" for n in ("records_metrics", "fails", "sleeps"))
ENTRY_FIELDS = {"name": str, "status": str, "seconds": float, "metrics": dict}


def _copy_fixtures(dest: Path, *names: str) -> None:
    for name in names:
        shutil.copy2(FIXTURES / name, dest / name)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """An ok notebook and a failing one, two at once, through the CLI front-end."""
    out = tmp_path_factory.mktemp("mixed")
    code = cli.main(["run", str(OK), str(FAILS), "--profile", "ci", "--jobs", "2", "--out", str(out)])
    return code, out, json.loads((out / "report.json").read_text())


def _entry(report, name):
    (entry,) = [e for e in report["notebooks"] if e["name"] == name]
    return entry


# ------------------------------------------------------------------------------------------------- mixed run

def test_failing_notebook_does_not_stop_the_others_and_exit_code_is_1(mixed):
    code, out, report = mixed
    assert code == 1
    assert [e["name"] for e in report["notebooks"]] == ["records_metrics", "fails"]  # the order they were named in
    assert _entry(report, "records_metrics")["status"] == "ok"
    assert _entry(report, "fails")["status"] == "failed"
    assert (out / "records_metrics.ipynb").is_file() and (out / "fails.ipynb").is_file()


def test_report_json_schema(mixed):
    _, out, report = mixed
    assert report["profile"] == "ci"
    assert isinstance(report["machine"]["cpu_count"], int) and report["machine"]["torch"]
    for e in report["notebooks"]:
        for field, kind in ENTRY_FIELDS.items():
            assert isinstance(e[field], kind), (field, e[field])
        assert e["status"] in ("ok", "failed") and e["seconds"] > 0
        assert all(isinstance(k, str) and isinstance(v, (int, float, bool, str)) for k, v in e["metrics"].items())
        assert (e["error"] is None) == (e["status"] == "ok")
        assert e["peak_memory_mb"] is None or e["peak_memory_mb"] > 0
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")], "report written via temp files + rename"


def test_metrics_are_read_back_from_the_executed_notebook(mixed):
    _, out, report = mixed
    ok = _entry(report, "records_metrics")
    assert ok["metrics"]["answer"] == 42 and ok["metrics"]["ratio"] == 0.25 and ok["metrics"]["flag"] is True
    assert ok["metrics"] == read_records(out / "records_metrics.ipynb")
    if sys.platform.startswith("linux"):  # the kernel imports torch: its resident memory alone is well above this
        assert ok["peak_memory_mb"] > 150


def test_profile_is_injected_and_exported(mixed):
    m = _entry(mixed[2], "records_metrics")["metrics"]
    assert m["profile_param"] == "ci"     # papermill's injected parameter
    assert m["profile_resolved"] == "ci"  # genlab.config.resolve_profile inside the kernel
    assert m["profile_env"] == "ci"       # $GENLAB_PROFILE for helper code


def test_kernel_runs_in_the_notebook_folder_with_the_runner_interpreter(mixed):
    m = _entry(mixed[2], "records_metrics")["metrics"]
    assert m["cwd_name"] == "runner"
    assert m["sibling_text"] == "next to the notebook"
    assert m["kernel_python"] == sys.executable


def test_failure_names_the_failing_cell(mixed):
    _, out, report = mixed
    bad = _entry(report, "fails")
    source = nbformat.read(str(FAILS), as_version=4)
    cell = bad["failing_cell"]
    assert cell["index"] == 3 and cell["state"] == "error"
    assert cell["source"] == source.cells[3].source  # index counts the source notebook's cells
    assert cell["ename"] == "ValueError" and "deliberate failure" in cell["evalue"]
    assert "ValueError: deliberate failure for the runner test" in bad["error"] and "cell 3" in bad["error"]
    assert bad["metrics"] == {"before_failure": 1}  # recorded before the failure; nothing after it ran
    assert "deliberate failure" in (out / "logs" / "fails.log").read_text()  # papermill's output went to the log


def test_report_md_lists_every_notebook_and_the_failure(mixed):
    _, out, report = mixed
    md = (out / "report.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| [")]
    assert len(rows) == 2
    assert "[records_metrics](records_metrics.ipynb) | ok |" in rows[0] and "`answer` = 42" in rows[0]
    assert "[fails](fails.ipynb) | **failed** |" in rows[1]
    failure = md.split("## fails: failed", 1)[1]
    assert 'raise ValueError("deliberate failure for the runner test")' in failure
    assert "ValueError: deliberate failure for the runner test" in failure
    assert "(logs/fails.log)" in failure


def test_clean_executed_strips_papermill_and_keeps_outputs(mixed):
    _, out, _ = mixed
    executed = nbformat.read(str(out / "records_metrics.ipynb"), as_version=4)
    assert "papermill" in executed.metadata  # what there is to clean
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    nb = clean_executed(executed)
    source = nbformat.read(str(OK), as_version=4)
    assert "papermill" not in nb.metadata
    assert [c.id for c in nb.cells] == [c.id for c in source.cells]
    assert [c.source for c in nb.cells] == [c.source for c in source.cells]
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in nb.cells)
    assert [c.metadata for c in nb.cells] == [c.metadata for c in source.cells]  # tags kept, papermill's [] gone
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    results = [o for c in code for o in c.outputs if o.output_type == "execute_result"]
    assert results and all(o.execution_count == c.execution_count for c in code for o in c.outputs
                           if o.output_type == "execute_result")
    assert read_records(nb)["answer"] == 42
    nbformat.validate(nb)


# ------------------------------------------------------------------------------ console script, auto, --store

def test_console_script_store_and_auto_profile(tmp_path):
    src = tmp_path / "course"
    src.mkdir()
    _copy_fixtures(src, "records_metrics.ipynb", "fails.ipynb", "sibling.txt")
    fails_before = (src / "fails.ipynb").read_bytes()
    script = Path(sys.executable).parent / "genlab"
    assert script.exists(), f"console script {script} missing: reinstall with `python3 bootstrap.py setup`"
    env = dict(os.environ, GENLAB_PROFILE="ci")
    r = subprocess.run([str(script), "run", str(src / "records_metrics.ipynb"), str(src / "fails.ipynb"),
                        "--store", "--jobs", "2", "--out", str(tmp_path / "out")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "failed: fails" in r.stdout
    assert "Executing notebook" not in r.stdout + r.stderr  # papermill's chatter goes to the logs
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["profile"] == "ci" and report["requested_profile"] == "auto"
    m = _entry(report, "records_metrics")["metrics"]
    assert (m["profile_param"], m["profile_resolved"], m["profile_env"]) == ("auto", "ci", "ci")
    assert m["cwd_name"] == "course"

    stored = nbformat.read(str(src / "records_metrics.ipynb"), as_version=4)
    assert "papermill" not in stored.metadata
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in stored.cells)
    assert [c.id for c in stored.cells] == [c.id for c in nbformat.read(str(OK), as_version=4).cells]
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert read_records(stored)["profile_param"] == "auto"  # the parameters cell itself is unchanged
    assert (src / "fails.ipynb").read_bytes() == fails_before, "a failed notebook must never be stored"
    assert _entry(report, "records_metrics").get("stored") is True


# ----------------------------------------------------------------------------------------------------- timeout

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_stops_the_notebook_and_its_kernel(tmp_path):
    _copy_fixtures(tmp_path, "sleeps.ipynb")
    report = run_notebooks([tmp_path / "sleeps.ipynb"], profile="ci", out=tmp_path / "out", timeout=10)
    (e,) = report["notebooks"]
    assert e["status"] == "failed" and e["error"].startswith("timeout")
    assert 10 <= e["seconds"] < 60
    pid_file = tmp_path / "kernel.pid"
    if not pid_file.exists():
        warnings.warn("the kernel did not reach the sleeping cell within the timeout (busy machine?): "
                      "its shutdown was not checked")
    elif sys.platform.startswith("linux"):
        assert e["failing_cell"]["state"] == "running" and e["failing_cell"]["index"] == 3
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), "the kernel of a timed-out notebook must be stopped too"


# ------------------------------------------------------------------------------------- no kernels from here on

@pytest.mark.parametrize("argv, message", [
    (["does_not_exist.ipynb"], "does not exist"),
    ([str(FIXTURES / "sibling.txt")], "is not a notebook"),
    ([str(OK), str(OK)], "both named"),
    ([str(OK), "--jobs", "0"], "--jobs"),
])
def test_usage_errors_exit_2_with_a_clear_message(argv, message, capsys, tmp_path):
    assert cli.main(["run", *argv, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.json").exists()


def test_default_notebooks_are_the_numbered_ones_sorted(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for name in ["10_dance.ipynb", "00_tour.ipynb", "05_pixelcnn.ipynb", "scratch.ipynb", "5_bad.ipynb"]:
        (tmp_path / "notebooks" / name).write_text("{}")
    assert [p.name for p in default_notebooks(tmp_path)] == ["00_tour.ipynb", "05_pixelcnn.ipynb", "10_dance.ipynb"]


def test_child_env_pins_the_interpreter_profile_and_inline_figures(tmp_path):
    env = child_env("cpu", jobs=2, jupyter_dir=tmp_path,
                    base={"PATH": "/usr/bin", "MPLBACKEND": "Agg", "JUPYTER_PATH": "/elsewhere"})
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    assert env["GENLAB_PROFILE"] == "cpu"
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]
    assert "MPLBACKEND" not in env  # ipykernel then picks the inline backend: figures land in the outputs
    assert int(env["GENLAB_THREADS"]) >= 1


def test_markdown_escapes_table_cells_and_shows_failures():
    report = {"profile": "cpu", "notebooks": [
        {"name": "01_a", "status": "ok", "seconds": 1.234, "peak_memory_mb": 512.4, "metrics": {"note": "a|b"},
         "error": None},
        {"name": "02_b", "status": "failed", "seconds": 2.0, "peak_memory_mb": None, "metrics": {},
         "error": "timeout: still running after 5 s (cell 2)", "log_tail": "last words",
         "failing_cell": {"index": 2, "execution_count": None, "state": "running", "source": "x = 1  # ```",
                          "ename": None, "evalue": None, "traceback": None}},
    ]}
    md = reporting.render_markdown(report)
    assert "| 01_a | ok | 1.2 | 512 | `note` = a\\|b |" in md
    assert "| 02_b | **failed** | 2.0 |  | - |" in md
    assert "Failing cell (cell 2):" in md and "````python\nx = 1  # ```\n````" in md
    assert "last words" in md
