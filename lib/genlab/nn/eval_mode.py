"""Train/eval mode as a context: ``with evaluating(model): ...`` runs the block in eval mode and restores each
module's own mode afterwards, also when the block raises (a sampler or metric must not leave a model in the wrong
mode, nor switch a model that was already in eval mode back to training)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block; afterwards every submodule gets back the mode it had."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
