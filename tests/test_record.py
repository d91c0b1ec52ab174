"""record() stores metrics in notebook outputs; read_records() gets them back (what the runner relies on)."""
import math

import nbformat
import numpy as np
import pytest
import torch

from genlab.record import MIME, RECORDED, read_records, record


def test_values_are_normalised():
    record("a_float", np.float32(0.5))
    record("a_tensor", torch.tensor(3))
    record("a_bool", True)
    record("a_nan", math.nan)
    assert record("a_str", "ok") is None  # a cell ending with record() shows the metric once
    assert RECORDED["a_float"] == 0.5 and isinstance(RECORDED["a_float"], float)
    assert RECORDED["a_tensor"] == 3 and isinstance(RECORDED["a_tensor"], int)
    assert RECORDED["a_bool"] is True and RECORDED["a_nan"] == "nan" and RECORDED["a_str"] == "ok"


@pytest.mark.parametrize("name", ["CamelCase", "has space", "1starts_with_digit", ""])
def test_bad_names_are_rejected(name):
    with pytest.raises(ValueError, match="snake_case"):
        record(name, 1)


def test_bad_values_are_rejected():
    with pytest.raises(TypeError, match="convert it first"):
        record("a_list", [1, 2])


def _output(name, value):
    return nbformat.v4.new_output("display_data", data={MIME: {"name": name, "value": value}, "text/plain": "x"})


def test_read_records_from_outputs_later_wins():
    nb = nbformat.v4.new_notebook()
    c1, c2 = nbformat.v4.new_code_cell("record('x', 1)"), nbformat.v4.new_code_cell("record('x', 2)")
    c1.outputs = [_output("x", 1), nbformat.v4.new_output("stream", name="stdout", text="x = 99\n")]
    c2.outputs = [_output("x", 2), _output("y", "s")]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), c1, c2]
    assert read_records(nb) == {"x": 2, "y": "s"}


def test_printed_text_is_not_a_metric():
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("print('recorded test_bpd = 0.1')")
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="recorded test_bpd = 0.1\n")]
    nb.cells = [c]
    assert read_records(nb) == {}
