"""Everybody Dance Now (notebook 10): the temporal generator never sees a real frame, generates autoregressively from a
zero image, the pair discriminator sees 12 channels, the face residual changes only the face box; the recipes' ci
runs end to end; typed, frozen configs."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from genlab.config import setup
from genlab.models.everybody_dance import (DanceConfig, FaceConfig, FaceGenerator, TemporalGenerator,
                                           pair_channels)
from genlab.worlds.dancers import TARGET, face_boxes, recording
from genlab.zoo import get_recipe, train_recipe
from genlab.zoo.dance import (FaceCrops, Paired, pack_frames, pair_batches, pair_view, sticks_of, transfer_video)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(ngf=4, n_blocks=1, ndf=4, size=32)


def _net(temporal: bool, seed: int = 0) -> TemporalGenerator:
    torch.manual_seed(seed)
    return TemporalGenerator(DanceConfig(temporal=temporal, **SMALL)).eval()


@pytest.fixture(scope="module")
def clip():
    return recording(TARGET, 6, 0, (32, 32))


@pytest.mark.parametrize("temporal", [True, False])
def test_the_generator_never_sees_the_real_frames(clip, temporal):
    packed = pack_frames(sticks_of(clip.keypoints, 32), clip.frames * 2 - 1)
    batch = pair_batches(packed, 3)(0)
    assert batch.shape == (3, 2, 6, 32, 32)
    G = Paired(_net(temporal))
    noisy = batch.clone()
    noisy[:, :, 3:] = torch.randn_like(noisy[:, :, 3:])
    with torch.no_grad():
        a, b = G(batch), G(noisy)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :, :3], batch[:, :, :3])            # stick figures passed through


def test_pair_forward_conditions_the_second_frame_on_the_generated_first(clip):
    G = _net(True)
    s = sticks_of(clip.keypoints[:2], 32)
    with torch.no_grad():
        pair = G(s[None])[0]
        first = G.net(torch.cat([s[:1], torch.zeros_like(s[:1])], 1))
        second = G.net(torch.cat([s[1:2], first], 1))
    assert torch.equal(pair[0], first[0]) and torch.equal(pair[1], second[0])
    assert torch.equal(G.generate(s), pair)                      # generate runs the same recursion


def test_generate_is_autoregressive_for_the_temporal_model_only(clip):
    s = sticks_of(clip.keypoints, 32)
    changed = s.clone()
    changed[2] = sticks_of(clip.keypoints[5:6], 32)[0].flip(-1)  # another stick figure at frame 2 only
    for temporal in (True, False):
        G = _net(temporal)
        a, b = G.generate(s), G.generate(changed)
        assert torch.equal(a[:2], b[:2])                         # the past is untouched
        assert not torch.equal(a[2], b[2])
        if temporal:
            assert not torch.equal(a[3], b[3])                   # frame 3 depends on frame 2's stick figure
        else:
            assert torch.equal(a[3:], b[3:])                     # framewise: frames are independent


def test_the_first_frame_comes_from_a_zero_image(clip):
    G = _net(True)
    s = sticks_of(clip.keypoints[:3], 32)
    with torch.no_grad():
        zero = G.net(torch.cat([s[:1], torch.zeros_like(s[:1])], 1))
        ones = G.net(torch.cat([s[:1], torch.ones_like(s[:1])], 1))
    out = G.generate(s)
    assert torch.equal(out[:1], zero) and not torch.equal(out[:1], ones)
    assert G.net.body[0][1].in_channels == 6 and _net(False).net.body[0][1].in_channels == 3
    assert G.training is False and out.requires_grad is False


def test_pair_discriminator_sees_both_stick_figures_and_both_frames():
    assert pair_channels() == 12
    x = torch.arange(2 * 2 * 6, dtype=torch.float32).view(2, 2, 6, 1, 1).expand(2, 2, 6, 16, 16)
    v = pair_view(x, x)
    assert v.shape == (2, 12, 16, 16)
    want = [x[:, 0, :3], x[:, 1, :3], x[:, 0, 3:], x[:, 1, 3:]]
    assert torch.equal(v, torch.cat(want, 1))
    from genlab.zoo.dance import EDN_TEMPORAL  # noqa: F401  (the recipe builds its D with these channels)
    from genlab.models.pix2pix import MultiscaleDiscriminator
    assert MultiscaleDiscriminator(pair_channels(), 4, 2, 1)(v).shape[:2] == (2, 1)


def _face(seed: int = 0) -> FaceGenerator:
    torch.manual_seed(seed)
    f = FaceGenerator(FaceConfig(crop=8, ngf=4, n_blocks=1, ndf=4, size=32))
    torch.nn.init.normal_(f.head[1].weight, std=0.1)              # a non-zero residual
    return f.eval()


def test_an_untrained_face_gan_is_the_identity(clip):
    f = FaceGenerator(FaceConfig(crop=8, ngf=4, n_blocks=1, size=32))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert torch.equal(f(torch.rand(2, 3, 8, 8), x), x)


def test_face_residual_is_pasted_exactly_inside_the_face_box(clip):
    frames = torch.rand(6, 3, 32, 32) * 2 - 1
    sticks = sticks_of(clip.keypoints, 32)
    boxes = face_boxes(clip.keypoints, (32, 32), 8)
    out = _face().enhance(frames, sticks, boxes)
    inside = torch.zeros(6, 1, 32, 32, dtype=torch.bool)
    for t, (r0, c0, r1, c1) in enumerate(boxes.tolist()):
        inside[t, :, r0:r1, c0:c1] = True
        with torch.no_grad():
            want = _face()(sticks[t:t + 1, :, r0:r1, c0:c1], frames[t:t + 1, :, r0:r1, c0:c1])[0]
        assert torch.allclose(out[t, :, r0:r1, c0:c1], want, atol=1e-6)
    inside = inside.expand_as(frames)
    assert torch.equal(out[~inside], frames[~inside])             # outside the boxes: bit for bit
    assert not torch.equal(out[inside], frames[inside])
    assert out.abs().max() <= 1


def test_face_adapter_never_sees_the_real_crop():
    x = torch.rand(3, 9, 8, 8) * 2 - 1
    y = x.clone()
    y[:, 6:] = torch.randn(3, 3, 8, 8)
    f = FaceCrops(_face())
    with torch.no_grad():
        assert torch.equal(f(x), f(y))


def test_transfer_video_in_unit_range_and_face_only_changes_the_box(clip):
    G = _net(True)
    plain = transfer_video(G, None, clip.keypoints, 32)
    faced = transfer_video(G, _face(), clip.keypoints, 32)
    assert plain.shape == (6, 3, 32, 32) and 0 <= plain.min() and plain.max() <= 1
    boxes = face_boxes(clip.keypoints, (32, 32), 8)
    mask = torch.ones_like(plain, dtype=torch.bool)
    for t, (r0, c0, r1, c1) in enumerate(boxes.tolist()):
        mask[t, :, r0:r1, c0:c1] = False
    assert torch.equal(plain[mask], faced[mask]) and not torch.equal(plain, faced)


@pytest.mark.parametrize("name", ["edn_framewise", "edn_temporal", "edn_temporal_fd", "edn_face"])
def test_configs_are_typed_and_frozen(name):
    recipe = get_recipe(name)
    for profile in ("ci", "cpu", "gpu"):
        c = recipe.config(profile)
        assert dataclasses.is_dataclass(c.model) and dataclasses.is_dataclass(c.train)
        with pytest.raises(dataclasses.FrozenInstanceError):
            c.model.ngf = 3
        with pytest.raises(dataclasses.FrozenInstanceError):
            c.train.lr = 1.0
    cpu = recipe.config("cpu")
    assert cpu.model.size == 64 and cpu.model.ngf == 16 and cpu.train.lambda_fm == 10.0
    if name != "edn_face":
        assert cpu.model.temporal == (name != "edn_framewise") and cpu.train.frames == 600
        assert cpu.train.frame_critic == (name == "edn_temporal_fd")
    gpu = recipe.config("gpu")
    assert gpu.model.size == 128 and (name == "edn_face" or gpu.model.n_down == 3)
    if name == "edn_face":
        assert gpu.model.crop == 32 and cpu.model.crop == 16
    with pytest.raises(ValueError, match="profile"):
        recipe.config("tpu")


@pytest.mark.parametrize("name, cls", [("edn_framewise", TemporalGenerator), ("edn_temporal", TemporalGenerator),
                                       ("edn_temporal_fd", TemporalGenerator), ("edn_face", FaceGenerator)])
def test_ci_training_runs_end_to_end(tmp_path, name, cls):
    model = train_recipe(name, setup("ci", 0), out=tmp_path, progress=False)
    assert isinstance(model, cls) and not model.training
    assert (tmp_path / name / "ci" / "last.pt").exists()
    recipe = get_recipe(name)
    untrained = recipe.build(recipe.config("ci").as_dict()["model"])
    assert any(not torch.equal(p, q) for p, q in zip(model.state_dict().values(), untrained.state_dict().values()))
    scores = recipe.evaluate(model, torch.device("cpu"))
    assert set(scores) == set(recipe.metrics) == {"psnr", "ssim", "l1", "warp_error", "flicker", "face_psnr",
                                                  "keypoint_error_px"}
    assert all(math.isfinite(v) for v in scores.values()), scores
    assert 0 < scores["l1"] < 1 and 0 < scores["psnr"] < 40 and scores["keypoint_error_px"] > 0


def test_the_frame_critic_trains_beside_the_pair_critic(tmp_path):
    train_recipe("edn_temporal_fd", setup("ci", 0), out=tmp_path, progress=False)
    state = torch.load(tmp_path / "edn_temporal_fd" / "ci" / "last.pt", map_location="cpu", weights_only=False)
    state = state["states"]
    critics = {k.split(".")[0] for k in state["model"] if not k.startswith("G.")}
    assert critics == {"D_T", "D_S"}
    first = {k: v for k, v in state["model"].items() if k.startswith("D_T.")}
    assert next(iter(first.values())).shape[1] == pair_channels()       # D_T: the 12-channel pair view
    second = [v for k, v in state["model"].items() if k.startswith("D_S.") and v.dim() == 4]
    assert second[0].shape[1] == 6                                       # D_S: (s_t, x_t)


def test_a_framewise_model_refuses_a_second_frame_critic():
    from genlab.zoo.dance import body_config, train_body
    config = body_config("ci", temporal=False)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, frame_critic=True))
    with pytest.raises(ValueError, match="framewise model has one already"):
        train_body("x", TemporalGenerator(config.model), config, None)


def test_the_face_gan_refuses_a_body_generator_of_another_size(monkeypatch):
    from genlab.zoo import dance
    config = dance.face_config("gpu")                                    # 128x128, crop 32
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, frames=4))
    monkeypatch.setattr(dance, "body_generator", lambda profile, device: _net(True))   # a 32x32 generator
    job = type("Job", (), {"profile": "gpu", "device": "cpu"})()
    with pytest.raises(ValueError, match="genlab train edn_temporal --profile gpu --ship"):
        dance.train_face(FaceGenerator(config.model), config, job)
