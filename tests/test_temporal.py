"""Temporal metrics on clips with known answers: the tracker finds the sprite, real bouncing clips have the world's
speed, frozen / shuffled / looping clips are told apart, the classifier-based coherency reads what is drawn."""
from __future__ import annotations

import pytest
import torch

from genlab.metrics.temporal import (centroids, crop_objects, frame_predictions, frozen_fraction, identity_coherency,
                                     loop_score, motion_error, motion_stats, per_frame_confidence)
from genlab.worlds.moving_digits import moving_digits, sprite_size


@pytest.fixture(scope="module")
def clips():
    return moving_digits("test", 64, frames=16, size=32, digits=1)


def test_centroid_of_a_single_pixel_and_a_black_frame():
    x = torch.zeros(1, 2, 1, 8, 10)
    x[0, 0, 0, 3, 7] = 1.0
    c = centroids(x)
    assert c[0, 0].tolist() == [7.0, 3.0] and c[0, 1].tolist() == [4.5, 3.5]


def test_tracked_speed_matches_the_world(clips):
    """The centre of a sprite moves with the sprite: tracked speed ~ the true mean speed (rounding aside)."""
    stats = motion_stats(clips.videos)
    true_speed = clips.velocities[:, :-1, 0].norm(dim=-1).mean()
    assert abs(stats["speed"] - float(true_speed)) < 0.25 * float(true_speed)
    assert motion_error(clips.videos, clips.videos) == 0.0


def test_controls_frozen_shuffled_looping(clips):
    x = clips.videos
    frozen = x[:, :1].expand_as(x).contiguous()
    shuffled = x[:, torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    looped = torch.cat([x[:, :4]] * 4, 1)
    assert frozen_fraction(x) == 0.0 and frozen_fraction(frozen) == 1.0
    assert motion_error(frozen, x) >= 0.99                                     # no motion at all: error 1
    assert motion_error(shuffled, x) > 0.5                                     # teleporting digits accelerate wildly
    assert loop_score(looped) > 0.99 and loop_score(frozen) > 0.99
    assert loop_score(x) < 0.6


def test_crops_hold_the_digit_and_coherency_reads_labels(clips):
    crops = crop_objects(clips.videos[:4], sprite_size(32))
    assert crops.shape == (4, 16, 1, 28, 28)
    assert crops.sum() / clips.videos[:4].sum() > 0.8 * (28 / 14) ** 2          # the digit's ink is inside the window
    assert identity_coherency(torch.tensor([[1, 1, 1, 2], [3, 3, 3, 3]])) == pytest.approx(7 / 8)

    class Oracle(torch.nn.Module):                                             # "classifies" by total ink: a fixed rule
        def forward(self, x):
            return torch.stack([x.sum((1, 2, 3)), -x.sum((1, 2, 3))], 1)

    labels, conf = frame_predictions(Oracle(), clips.videos[:4], sprite_size(32))
    assert labels.shape == (4, 16) and (labels == 0).all() and per_frame_confidence(conf).shape == (16,)
    blank, conf0 = frame_predictions(Oracle(), torch.zeros(2, 16, 1, 32, 32), sprite_size(32))
    assert (blank == -1).all() and (conf0 == 0).all() and identity_coherency(blank) == 0.0   # no object, no identity


def test_wrong_shapes_fail_clearly():
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        frozen_fraction(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="min_lag"):
        loop_score(torch.zeros(1, 4, 1, 8, 8), min_lag=4)
