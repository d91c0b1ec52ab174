"""The moving-digits world: bouncing physics (speed kept, positions in the box), frames drawn exactly where the
ground truth says, the right digits per split, determinism, clear errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genlab.data.mnist import mnist5k
from genlab.worlds.moving_digits import moving_digits, sprite_size, trajectories


def test_reflection_keeps_speed_and_stays_in_the_box():
    g = torch.Generator().manual_seed(0)
    p0 = torch.rand(200, 2, generator=g) * 18
    v0 = (torch.rand(200, 2, generator=g) - 0.5) * 8
    pos, vel = trajectories(p0, v0, 64, 18.0)
    assert pos.min() >= 0 and pos.max() <= 18
    torch.testing.assert_close(vel.norm(dim=-1), v0.norm(dim=-1)[:, None].expand(-1, 64))   # |v| never changes
    # between bounces the motion is uniform: p_{t+1} = p_t + v_t wherever no wall is hit
    step = pos[:, 1:] - pos[:, :-1]
    free = (vel[:, 1:] == vel[:, :-1])
    torch.testing.assert_close(step[free], vel[:, :-1][free], atol=1e-4, rtol=0)
    assert (~free).any(), "64 frames at up to 4 px/frame in an 18-px box must bounce"


def test_a_bounce_by_hand():
    pos, vel = trajectories(torch.tensor([[1.0, 5.0]]), torch.tensor([[-3.0, 0.0]]), 3, 10.0)
    assert pos[0].tolist() == [[1.0, 5.0], [2.0, 5.0], [5.0, 5.0]]         # 1 - 3 = -2 -> reflected to 2
    assert vel[0].tolist() == [[-3.0, 0.0], [3.0, 0.0], [3.0, 0.0]]


@pytest.mark.parametrize("size", [32, 64])
def test_frames_show_the_labelled_digit_at_its_position(size):
    clips = moving_digits("test", 20, frames=8, size=size, digits=1)
    x, y = mnist5k("test")
    s = sprite_size(size)
    sprites = F.interpolate(x, size=(s, s), mode="area")[:, 0] if s != 28 else x[:, 0]
    assert clips.videos.shape == (20, 8, 1, size, size) and 0 <= clips.videos.min() and clips.videos.max() <= 1
    assert (clips.labels[:, 1] == -1).all() and (clips.n_digits == 1).all()
    for i in range(20):
        for t in (0, 7):
            c, r = clips.positions[i, t, 0].round().long().tolist()
            patch = clips.videos[i, t, 0, r:r + s, c:c + s]
            match = [j for j in range(len(sprites)) if torch.equal(sprites[j], patch)]
            assert match and all(y[j] == clips.labels[i, 0] for j in match)
            assert clips.videos[i, t].sum() == pytest.approx(patch.sum().item())   # nothing drawn elsewhere


def test_two_digit_clips_and_determinism():
    a = moving_digits("train", 50, digits=(1, 2))
    assert set(a.n_digits.tolist()) == {1, 2}
    assert ((a.labels[:, 1] >= 0) == (a.n_digits == 2)).all()
    b = moving_digits("train", 10, start=20, digits=(1, 2))
    assert torch.equal(b.videos, a.videos[20:30]) and torch.equal(b.positions, a.positions[20:30])
    assert not torch.equal(moving_digits("test", 10).videos, moving_digits("train", 10).videos)
    speed = a.speed[a.labels >= 0]
    assert speed.min() >= 1.0 - 1e-5 and speed.max() <= 3.0 + 1e-5


def test_train_and_test_clips_use_their_own_digits():
    train_x, _ = mnist5k("train")
    test_x, _ = mnist5k("test")
    clip = moving_digits("test", 1, size=64).videos[0, 0, 0]        # 64: sprites are the 28x28 digits themselves
    c = moving_digits("test", 1, size=64)
    col, row = c.positions[0, 0, 0].round().long().tolist()
    patch = clip[row:row + 28, col:col + 28]
    assert any(torch.equal(patch, d[0]) for d in test_x) and not any(torch.equal(patch, d[0]) for d in train_x)


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="val"), "split"), (dict(size=48), "size"), (dict(frames=0), "frames"), (dict(digits=3), "digits"),
    (dict(speed=(3.0, 1.0)), "speed")])
def test_bad_arguments_fail_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        moving_digits(**{"n": 2, **kwargs})
