"""FVD-digits: the shipped video feature net re-evaluates to its provenance, and the Frechet distance in its space sees
motion -- identical clip sets give ~0, shuffled frames and a repeated frame raise it far above the real-vs-real floor."""
from __future__ import annotations

import pytest
import torch

from genlab.checkpoints import read_provenance
from genlab.metrics.fid import features, fid, kid
from genlab.worlds.moving_digits import moving_digits
from genlab.zoo import evaluate_shipped, load_pretrained


@pytest.fixture(scope="module")
def sets():
    a = moving_digits("test", 500, digits=1).videos
    b = moving_digits("test", 500, start=500, digits=1).videos
    return a, b


@pytest.mark.slow
def test_shipped_video_feature_net_reproduces_its_provenance():
    checks = evaluate_shipped("video_features")
    assert all(c.ok for c in checks), checks
    assert read_provenance("video_features")["metrics"]["test_accuracy"] > 0.9


def test_fvd_digits_floor_and_motion_controls(sets):
    a, b = sets
    fa = features(a, "video_digits")
    assert fid(fa, fa, "video_digits") < 1e-6                                       # identical sets
    floor = fid(fa, features(b, "video_digits"), "video_digits")                    # two real samples
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = fid(fa, b[:, perm], "video_digits")                                   # same frames, wrong order
    repeated = fid(fa, b[:, :1].expand_as(b).contiguous(), "video_digits")          # one frame, no motion
    assert shuffled > 4 * floor and repeated > 2 * floor, (floor, shuffled, repeated)    # measured: 0.34, 5.3, 2.4
    mean, _ = kid(fa, b[:, perm], "video_digits", subsets=10)
    assert mean > kid(fa, features(b, "video_digits"), "video_digits", subsets=10)[0]


def test_video_space_checks_its_input(sets):
    with pytest.raises(ValueError, match=r"\(B, T, 1, H, W\)"):
        features(sets[0][:, 0], "video_digits")                                     # frames, not clips
    net = load_pretrained("video_features").model
    assert net.features(sets[0][:2]).shape == (2, 128)
