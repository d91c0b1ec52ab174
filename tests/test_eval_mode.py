"""evaluating(): eval mode inside the block, every submodule's own mode restored after it (also on an error)."""
import pytest
import torch
from torch import nn

from genlab.nn.eval_mode import evaluating


def test_eval_inside_and_each_submodule_restored_even_on_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model[1].eval()                                      # a mixed state: the container trains, the dropout does not
    with evaluating(model):
        assert not model.training and not model[0].training and not model[1].training
    assert model.training and model[0].training and not model[1].training
    with pytest.raises(RuntimeError):
        with evaluating(model):
            raise RuntimeError("boom")
    assert model.training and not model[1].training
    frozen = nn.Linear(1, 1).eval()
    with evaluating(frozen, model):
        assert not frozen.training and not model.training
    assert not frozen.training and model.training       # an eval-mode model is not switched to training
    assert torch.equal(model[1](torch.ones(3)), torch.ones(3))
