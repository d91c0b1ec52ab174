"""The library's layers (ARCHITECTURE.md): every module imports only from its own layer or the layers below it, and
the import graph has no cycle. Function-local imports count as much as module-level ones."""
from __future__ import annotations

import ast
from pathlib import Path

import genlab

ROOT = Path(genlab.__file__).resolve().parent

#: layer of each module prefix, bottom (0) to top; the longest matching prefix wins
LAYERS: dict[str, int] = {
    "genlab": 0, "genlab.config": 0, "genlab.record": 0, "genlab.provenance": 0, "genlab.tensors": 0,
    "genlab.paths": 0, "genlab.progress": 0,
    "genlab.nn": 1,
    "genlab.worlds": 2, "genlab.data": 2,
    "genlab.models": 3,
    "genlab.losses": 4, "genlab.metrics": 4, "genlab.checkpoints": 4,
    "genlab.train": 5,
    "genlab.zoo": 6,
    "genlab.viz": 7,
    "genlab.course": 8, "genlab.cli": 8,
}
#: the only edges allowed to point upward: none
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def layer(name: str) -> int:
    best = max((k for k in LAYERS if name == k or name.startswith(k + ".")), key=len)
    return LAYERS[best]


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """genlab modules imported anywhere in ``path`` (module level or inside functions), resolved to known modules."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t.startswith("genlab"):
                # "from genlab.models import stylegan" names a module; "from genlab.x import f" names its module
                while t not in known and "." in t:
                    t = t.rpartition(".")[0]
                if t in known and t != name:
                    out.add(t)
                    break
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    assert all(layer(m) >= 0 for m in modules())
    assert layer("genlab.worlds.faces.render") == 2 and layer("genlab.zoo.stylegan") == 6


def test_no_upward_imports():
    upward = sorted((a, b) for a, deps in graph().items() for b in deps
                    if layer(b) > layer(a) and (a, b) not in ALLOWED_UPWARD
                    and not (a == "genlab" and b.startswith("genlab.")))
    assert not upward, "modules importing from a higher layer:\n" + "\n".join(f"  {a} -> {b}" for a, b in upward)


def test_package_root_imports_only_the_ground_floor():
    assert {b for b in graph()["genlab"]} <= {k for k, v in LAYERS.items() if v == 0}


def test_models_import_only_nn_tensors_and_their_own_family():
    bad = sorted((a, b) for a, deps in graph().items() if a.startswith("genlab.models.") for b in deps
                 if not (b.startswith(("genlab.nn", "genlab.models")) or b == "genlab.tensors"))
    assert not bad, f"models reach beyond nn/tensors: {bad}"


def test_import_graph_has_no_cycle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)


def test_the_checker_sees_function_local_and_upward_imports(tmp_path):
    """The test would catch a violation: a function-local upward import in a model file is found."""
    src = tmp_path / "genlab" / "models"
    src.mkdir(parents=True)
    f = src / "bad.py"
    f.write_text("def f():\n    from genlab.zoo import get_recipe\n    return get_recipe\n")
    found = imports("genlab.models.bad", f, {"genlab.zoo", "genlab.zoo.registry", "genlab.models.bad"})
    assert found == {"genlab.zoo"} and layer("genlab.zoo") > layer("genlab.models.bad")
