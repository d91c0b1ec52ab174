"""Every course notebook ends by pointing to the next one, and every relative link in its markdown resolves."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown(nb_path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_relative_links_resolve(path):
    bad = []
    for text in _markdown(path):
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue                                            # https://..., mailto:, in-page anchors
            if not (path.parent / target.split("#")[0]).exists():
                bad.append(target)
    assert not bad, f"{path.name}: links to files that do not exist: {bad}"


@pytest.mark.parametrize("i", range(len(NOTEBOOKS)), ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_links_the_next(i):
    last = "\n".join(_markdown(NOTEBOOKS[i])[-2:])
    if i + 1 < len(NOTEBOOKS):
        assert f"({NOTEBOOKS[i + 1].name})" in last, f"{NOTEBOOKS[i].name} should end with a link to {NOTEBOOKS[i + 1].name}"
    else:
        assert "(../index.md)" in last
