"""Named metrics recorded by notebooks and read back by the runner (``genlab run``) into the report.

``record(name, value)`` displays a tiny JSON payload under a custom MIME type (plus a readable text line), so the
value is stored *inside* the executed notebook; :func:`read_records` collects it again with nbformat. This is the
scrapbook ``glue`` idea without its dependencies (DESIGN.md, "Tool facts").
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any

MIME = "application/vnd.genlab.metric+json"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Everything recorded in this process (a notebook kernel), in order.
RECORDED: dict[str, Any] = {}


def _plain(value: Any) -> bool | int | float | str:
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # 0-d torch / numpy scalar
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else str(value)  # JSON has no nan/inf
    if isinstance(value, str):
        return value
    raise TypeError(f"record() takes a number, bool or str, got {type(value).__name__}: convert it first "
                    "(e.g. float(x), round(x, 4))")


def record(name: str, value: Any) -> None:
    """Record a named metric in the notebook's outputs (and in :data:`RECORDED`).

    Returns None, so a cell that ends with ``record(...)`` shows the metric once.

    name: snake_case with the unit in it where there is one (``test_bpd``, ``sampling_speedup_x``).
    value: number, bool or str (0-d tensors/arrays are converted; nan/inf are stored as strings).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"metric name {name!r} must be snake_case ([a-z][a-z0-9_]*), e.g. 'test_bpd'")
    stored = _plain(value)
    RECORDED[name] = stored
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: keep the value, nothing to display into
        return None
    if get_ipython() is not None:
        display({MIME: {"name": name, "value": stored}, "text/plain": f"recorded {name} = {stored!r}"}, raw=True)
    return None


def read_records(nb: Any) -> dict[str, Any]:
    """All metrics recorded in a notebook (an ``nbformat.NotebookNode`` or a path), later values overriding earlier."""
    if not hasattr(nb, "cells"):
        import nbformat

        nb = nbformat.read(str(nb), as_version=4)
    out: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for o in cell.get("outputs", []):
            payload = o.get("data", {}).get(MIME) if o.get("output_type") in ("display_data", "execute_result") else None
            if isinstance(payload, dict) and "name" in payload:
                out[payload["name"]] = payload.get("value")
    return out
