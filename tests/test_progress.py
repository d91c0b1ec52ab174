"""Progress bars stored in executed notebooks read their final state, not 0% (a static viewer shows the text form)."""
import nbclient
import nbformat
import pytest


@pytest.mark.slow
def test_stored_notebook_bar_reads_its_final_state():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from genlab.progress import progress_bar\n"
        "bar = progress_bar(total=40, desc='steps')\n"
        "for _ in range(40):\n    bar.update()\nbar.close()")]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    texts = ["".join(o["data"]["text/plain"]) for o in nb.cells[0].outputs if "data" in o]
    assert len(texts) == 1, texts
    assert "100%" in texts[0] and "40/40" in texts[0], texts[0]
    assert "application/vnd.jupyter.widget-view+json" in nb.cells[0].outputs[0]["data"]   # still a live widget


def test_terminal_bar_is_plain_tqdm(capsys):
    from tqdm import tqdm

    from genlab.progress import progress_bar
    bar = progress_bar(total=3, desc="x", disable=None)
    assert isinstance(bar, tqdm) and type(bar).__module__.startswith("tqdm")
    bar.close()
