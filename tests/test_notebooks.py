"""Notebook hygiene (DESIGN.md, "Notebook anatomy"): what every committed notebook must satisfy.

nbval (in the test command) re-executes the notebooks and compares the checked cells; this file checks the stored
notebooks themselves: parameters cell, execution order, no stored errors, no papermill residue, size budget, and that a
notebook never re-defines what the library specifies.
"""
from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest

import genlab
from genlab.record import read_records

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SIZE_BUDGET_BYTES = 3_000_000  # per notebook, outputs included (figures as small PNGs)
ids = [p.stem for p in NOTEBOOKS]


def load(path: Path):
    return nbformat.read(str(path), as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no NN_topic.ipynb notebooks"
    for p in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name), f"{p.name}: name notebooks NN_short_topic.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_valid_and_titled(path):
    nb = load(path)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernelspec must be python3"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), "first cell: '# Title' markdown"
    cell_ids = [c.get("id") for c in nb.cells]
    assert all(cell_ids) and len(set(cell_ids)) == len(cell_ids), "every cell needs a unique id (grading matches by id)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_parameters_cell(path):
    nb = load(path)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one code cell tagged 'parameters' (papermill injects after it)"
    tree = ast.parse(params[0].source)
    names = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name)}
    assert names.get("profile") == "auto" and names.get("seed") == 0, "parameters cell: profile = 'auto', seed = 0"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code.index(params[0]) <= 1, "the parameters cell comes first among code cells (after imports at most)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_executed_in_order_without_errors(path):
    nb = load(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), (
        "code cells must be executed once, top to bottom, from a fresh kernel (refresh with "
        "`genlab run NOTEBOOK --profile cpu --store`); execution counts: " + str(counts))
    for i, c in enumerate(code):
        for o in c.outputs:
            assert o.output_type != "error", f"code cell {i} has a stored error: {o.get('ename')}: {o.get('evalue')}"
            if o.output_type == "stream" and o.name == "stderr":
                pytest.fail(f"code cell {i} has stderr output (silence warnings/progress in stored outputs): "
                            f"{o.text[:200]!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_papermill_residue_and_size_budget(path):
    nb = load(path)
    assert "papermill" not in nb.metadata, "notebook metadata has papermill residue (store with --store)"
    for c in nb.cells:
        assert "papermill" not in c.metadata, "cell metadata has papermill residue"
        assert "injected-parameters" not in c.metadata.get("tags", []), "papermill's injected-parameters cell was committed"
    size = path.stat().st_size
    assert size <= SIZE_BUDGET_BYTES, f"{path.name} is {size/1e6:.1f} MB > budget {SIZE_BUDGET_BYTES/1e6:.1f} MB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_checked_cells_are_safe_to_compare(path):
    """Cells marked NBVAL_CHECK_OUTPUT must not carry text that changes between runs or profiles."""
    nb = load(path)
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or "NBVAL_CHECK_OUTPUT" not in c.source:
            continue
        assert "profile" not in c.source.replace("profile-independent", ""), (
            f"cell {i}: a checked cell must not depend on the profile")
        for o in c.outputs:
            text = o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
            assert "<Figure size" not in text, f"cell {i}: end plot cells with plt.show() (figure repr is compared)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_records_a_metric(path):
    nb = load(path)
    assert any("record(" in c.source for c in nb.cells if c.cell_type == "code"), "every notebook records metrics"
    recorded = read_records(nb)
    assert recorded, "the stored outputs hold no recorded metric (re-run and store the notebook)"


def _library_names() -> set[str]:
    names = set()
    for mod in pkgutil.walk_packages(genlab.__path__, "genlab."):
        if mod.name.startswith("genlab.course."):
            continue
        try:
            m = importlib.import_module(mod.name)
        except Exception:  # pragma: no cover - an import error is reported by the module's own tests
            continue
        src = Path(m.__file__).read_text()
        for node in ast.parse(src).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                names.add(node.name)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_does_not_copy_library_code(path):
    """A notebook calls the library; it never re-defines a library function or class (outside exercise solutions)."""
    lib = _library_names()
    nb = load(path)
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or "### BEGIN SOLUTION" in c.source:
            continue
        src = "\n".join(l for l in c.source.splitlines() if not l.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert node.name not in lib, f"cell {i} re-defines genlab's {node.name}: import it instead"


def test_index_lists_every_notebook():
    index = (ROOT / "index.md").read_text()
    for p in NOTEBOOKS:
        assert p.name in index, f"index.md does not list {p.name}"
