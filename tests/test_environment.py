"""The three descriptions of the environment agree: pyproject.toml (pins), environment.yml (conda), constraints.txt."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(reqs: list[str]) -> dict[str, str]:
    out = {}
    for r in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)\s*", r)
        assert m, f"requirement {r!r} is not pinned with == (pin every direct dependency)"
        out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def pyproject_pins() -> dict[str, str]:
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return _pins(proj["dependencies"] + proj["optional-dependencies"]["test"])


def conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip, "environment.yml must install the genlab package itself (-e .)"
    return _pins([p for p in pip if not p.startswith("-e")])


def test_environment_yml_matches_pyproject():
    py, conda = pyproject_pins(), conda_pins()
    assert set(py) == set(conda), f"only in pyproject: {set(py) - set(conda)}; only in environment.yml: {set(conda) - set(py)}"
    diff = {k: (py[k], conda[k]) for k in py if py[k] != conda[k]}
    assert not diff, f"versions differ (pyproject, environment.yml): {diff}"


def test_environment_yml_python_matches_requires_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert py == "python=3.11"
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.10"


def test_torch_is_pinned_to_the_local_cpu_build():
    # an unpinned torch pulls a multi-GB CUDA build on the course machines (README, "GPU")
    assert pyproject_pins()["torch"] == "2.13.0"


def test_constraints_agree_with_direct_pins():
    cons = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, ver = line.split("==")
            cons[name.lower().replace("_", "-")] = ver.strip()
    assert "torch" not in cons, "torch is pinned in pyproject.toml only (so a CUDA build can replace it)"
    for name, ver in pyproject_pins().items():
        if name in cons:
            assert cons[name] == ver, f"constraints.txt pins {name}=={cons[name]} but pyproject.toml says {ver}"
