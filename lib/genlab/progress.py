"""Progress bars that read right in a stored notebook.

    bar = progress_bar(total=600, desc="tiny MLP")     # tqdm.auto: a widget in Jupyter, text on a terminal
    ...; bar.update(); ...; bar.close()

In Jupyter, tqdm draws an ipywidgets bar whose *text* form (what a static viewer such as GitHub or a built site
shows, and what papermill stores) is captured once, when the bar is displayed: "0%| | 0/600". Here the bar is
displayed with a display id and, when it closes, its stored display is updated in place, so the saved notebook reads
"100%| 600/600 [00:03, ...]" (nbclient and Jupyter apply ``update_display_data`` to the stored output).
"""
from __future__ import annotations

from typing import Any


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(*, total: int, desc: str | None = None, initial: int = 0, disable: bool | None = False,
                 **kwargs: Any):
    """A tqdm bar (same arguments as ``tqdm.tqdm``); in a Jupyter kernel a widget whose stored text is its final
    state. ``disable=None``: a bar only when the output is a terminal (tqdm's rule)."""
    if not _in_notebook() or disable:
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, initial=initial, disable=disable, **kwargs)
    from IPython.display import display
    from tqdm.notebook import tqdm as notebook_tqdm

    class _StoredBar(notebook_tqdm):
        """tqdm.notebook's bar, displayed under a display id and re-displayed (updated in place) on close."""

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, display=False, **kw)
            self._handle = display(self.container, display_id=True) if hasattr(self, "container") else None
            self.displayed = True

        def close(self) -> None:
            closed = self.disable
            super().close()
            if not closed and self._handle is not None and self.leave:
                self._handle.update(self.container)    # the stored text/plain becomes the final bar

    return _StoredBar(total=total, desc=desc, initial=initial, **kwargs)
