"""Procedural faces: factor table and ranges, exact locality of gaze / blink / skin / background, determinism, the
fixed dataset split, videos, the render-pass registry and the face editor widget."""
import hashlib
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab.worlds.faces as F
from genlab.worlds.faces import (FACTOR_NAMES, FACTORS, N_FACTORS, check_factors, denormalize_factors, eye_boxes,
                                 faces, mouth_boxes, neutral_factors, normalize_factors, render_faces, render_passes,
                                 render_sequence, sample_factors)
from genlab.worlds.faces.dataset import _split_uint8

pytestmark = pytest.mark.usefixtures("one_thread")
REQUIRED = ("yaw", "pitch", "roll", "face_width", "face_height", "jaw", "skin_tone", "hair_hue", "hair_length",
            "fringe", "eye_hue", "mouth_open", "smile", "gaze_x", "gaze_y", "blink", "light_x", "bg_hue",
            "bg_texture")


def _col(name: str) -> int:
    return FACTOR_NAMES.index(name)


def _random(n: int, seed: int = 0) -> torch.Tensor:
    return sample_factors(n, torch.Generator().manual_seed(seed))


def _with(f: torch.Tensor, name: str, values) -> torch.Tensor:
    out = f.clone()
    out[:, _col(name)] = torch.as_tensor(values, dtype=torch.float32)
    return out


def _flipped(f: torch.Tensor, name: str) -> torch.Tensor:
    """Each face's factor moved to the far end of its range (a large change for every face)."""
    fac = FACTORS[_col(name)]
    far = torch.where(f[:, _col(name)] > (fac.low + fac.high) / 2, torch.tensor(fac.low), torch.tensor(fac.high))
    return _with(f, name, far)


def _changed(a: torch.Tensor, b: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """(n, R, R) bool: pixels where any channel differs by more than tol."""
    return ((a - b).abs() > tol).any(1)


# ------------------------------------------------------------------------------------------------------ package

def test_faces_is_a_package_whose_faces_is_the_function():
    import genlab.worlds

    assert isinstance(F, types.ModuleType) and hasattr(F, "__path__")  # a package, never hidden by the function
    assert genlab.worlds.faces is F and callable(F.faces) and not isinstance(F.faces, types.ModuleType)
    assert F.faces.__module__.startswith("genlab.worlds.faces.")


def test_importing_data_does_not_import_worlds():
    import genlab

    lib = str(Path(genlab.__file__).resolve().parents[1])  # this checkout's genlab, also in the fresh process
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([lib, os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, genlab.data; print(genlab.data.__file__); "
            "print(sorted(m for m in sys.modules if m.startswith('genlab.worlds')))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    where, worlds = out.stdout.splitlines()
    assert where.startswith(lib) and worlds == "[]", out.stdout


# ------------------------------------------------------------------------------------------------------ factors

def test_factor_table():
    assert N_FACTORS == len(FACTORS) == len(FACTOR_NAMES) >= len(REQUIRED)
    assert FACTOR_NAMES == tuple(f.name for f in FACTORS) and len(set(FACTOR_NAMES)) == N_FACTORS
    assert set(REQUIRED) <= set(FACTOR_NAMES)
    for f in FACTORS:
        assert isinstance(f.low, float) and isinstance(f.high, float) and f.low < f.high and f.doc
        assert f.low <= F.NEUTRAL[f.name] <= f.high
    with pytest.raises(AttributeError):  # frozen
        FACTORS[0].low = 0.0


def test_sample_factors_within_ranges_and_seeded():
    f = _random(4000, seed=1)
    assert f.shape == (4000, N_FACTORS) and f.dtype == torch.float32
    low, high = torch.tensor([x.low for x in FACTORS]), torch.tensor([x.high for x in FACTORS])
    assert (f >= low).all() and (f <= high).all()
    assert torch.equal(f, _random(4000, seed=1)) and not torch.equal(f, _random(4000, seed=2))
    u = normalize_factors(f)  # uniform in [-1, 1]: mean 0, variance 1/3 (4000 samples: sd of the mean ~0.009)
    assert u.mean(0).abs().max() < 0.05 and (u.var(0) - 1 / 3).abs().max() < 0.03
    assert sample_factors(0).shape == (0, N_FACTORS)
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        sample_factors(-1)


def test_normalize_round_trip():
    low, high = torch.tensor([x.low for x in FACTORS]), torch.tensor([x.high for x in FACTORS])
    assert torch.allclose(normalize_factors(low[None]), -torch.ones(1, N_FACTORS))
    assert torch.allclose(normalize_factors(high[None]), torch.ones(1, N_FACTORS))
    f = _random(50).view(5, 10, N_FACTORS)  # any leading shape, e.g. (B, T, N_FACTORS) sequences
    assert torch.allclose(denormalize_factors(normalize_factors(f)), f, atol=1e-6)
    u = torch.rand(7, N_FACTORS) * 2 - 1
    assert torch.allclose(normalize_factors(denormalize_factors(u)), u, atol=1e-5)


def test_check_factors_messages():
    good = neutral_factors(3)
    assert torch.equal(check_factors(good.numpy()), good)  # arrays are accepted and returned as float32 tensors
    with pytest.raises(ValueError, match=rf"factors must have shape \(n, {N_FACTORS}\).*got shape \(3, 5\)"):
        check_factors(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"got shape \(20,\)"):
        check_factors(torch.zeros(N_FACTORS))
    bad = _with(good, "yaw", [0.0, 1.5, 0.0])
    with pytest.raises(ValueError, match=r"factor 'yaw' \(column 0\) of face 1 is 1\.5, outside its range \[-1, 1\]"):
        check_factors(bad)
    with pytest.raises(ValueError, match=r"factor 'roll' .* of face 2 is nan"):
        check_factors(_with(good, "roll", [0.0, 0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"factor 'hair_hue' .* is 0\.5, outside its range \[0\.02, 0\.12\]"):
        render_faces(_with(good, "hair_hue", 0.5), 32)  # render_faces checks too
    edge = _with(good, "blink", 1.0 + 1e-7)  # a float rounding past the end is tolerated
    assert check_factors(edge).shape == (3, N_FACTORS)
    with pytest.raises(ValueError, match=r"unknown factor name\(s\) \['smiles'\]"):
        neutral_factors(smiles=1.0)


@pytest.mark.parametrize("resolution", [15, 8, 32.0, True, "64"])
def test_resolution_must_be_an_int_of_at_least_16(resolution):
    with pytest.raises(ValueError, match="resolution must be an int >= 16"):
        render_faces(neutral_factors(), resolution)


def test_render_argument_errors():
    f = neutral_factors(2)
    with pytest.raises(ValueError, match="detail_seeds must be 2 ints >= 0"):
        render_faces(f, 32, detail_seeds=[1])
    with pytest.raises(ValueError, match="detail_seeds must be 2 ints >= 0"):
        render_faces(f, 32, detail_seeds=[1, -3])
    with pytest.raises(ValueError, match=r"unknown render pass\(es\) \['depth'\].*\['rgb', 'mask'"):
        render_passes(f, 32, passes=("rgb", "depth"))
    with pytest.raises(ValueError, match=r"factor_seq must have shape \(B, T, 20\)"):
        render_sequence(torch.zeros(2, 3, 4, N_FACTORS))


# ---------------------------------------------------------------------------------------------------- rendering

@pytest.mark.parametrize("resolution", [32, 48, 64])
def test_shapes_dtypes_and_value_ranges(resolution):
    f = _random(12, seed=resolution)
    out = render_passes(f, resolution, detail_seeds=np.arange(12))
    rgb, mask = out["rgb"], out["mask"]
    assert rgb.shape == (12, 3, resolution, resolution) and rgb.dtype == torch.float32
    assert mask.shape == (12, 1, resolution, resolution) and mask.dtype == torch.float32
    assert rgb.min() >= 0 and rgb.max() <= 1 and mask.min() >= 0 and mask.max() <= 1
    assert torch.equal(render_faces(f, resolution, detail_seeds=np.arange(12)), rgb)
    # the top corners are background, the head centre is face; the face is a fair part of the picture
    assert (mask[:, 0, 0, 0] == 0).all() and (mask[:, 0, 0, -1] == 0).all()
    assert (mask[:, 0, resolution // 2, resolution // 2] == 1).all()
    assert 0.25 < mask.mean() < 0.8
    assert len(torch.unique(rgb)) > 1000  # colours, shading and antialiased edges, not a few flat values


def test_same_inputs_give_identical_images_independent_of_the_batch():
    f, seeds = _random(40, seed=3), torch.arange(40) * 7
    a = render_passes(f, 32, detail_seeds=seeds)
    b = render_passes(f, 32, detail_seeds=seeds)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for i in (0, 13, 39):  # a face does not depend on its neighbours (the chunking, the regions)
        alone = render_passes(f[i:i + 1], 32, detail_seeds=seeds[i:i + 1])
        assert torch.equal(alone["rgb"][0], a["rgb"][i]) and torch.equal(alone["mask"][0], a["mask"][i])
    assert torch.equal(render_faces(f[:4], 32), render_faces(f[:4], 32, detail_seeds=[0, 0, 0, 0]))


def test_detail_seed_changes_the_fine_detail_only():
    f = _random(16, seed=4)
    one = render_passes(f, 64, detail_seeds=np.zeros(16, dtype=np.int64))
    two = render_passes(f, 64, detail_seeds=np.arange(1, 17))
    changed = _changed(one["rgb"], two["rgb"]).flatten(1).sum(1)
    assert (changed > 50).all()  # background pattern, strands, mottling, freckles
    # ... but not the face: the head's outline moves only where the hair's edge is wavy, the eyes not at all
    moved = (one["mask"] - two["mask"]).abs() > 0.5
    assert moved.float().mean() < 0.02


@pytest.mark.parametrize("resolution", [32, 64])
def test_gaze_and_blink_change_only_eye_box_pixels(resolution):
    f, seeds = _random(48, seed=5), np.arange(48)
    base = render_faces(f, resolution, detail_seeds=seeds)
    boxes = eye_boxes(f, resolution)
    assert boxes.shape == (48, 2, 4) and boxes.dtype == torch.int64
    inside = torch.zeros(48, resolution, resolution, dtype=torch.bool)
    for i in range(48):
        for r0, c0, r1, c1 in boxes[i].tolist():
            assert 0 <= r0 < r1 <= resolution and 0 <= c0 < c1 <= resolution
            assert r1 - r0 <= resolution // 4 + 3 and c1 - c0 <= resolution // 4 + 3  # small boxes
            inside[i, r0:r1, c0:c1] = True
    for name in ("gaze_x", "gaze_y", "blink"):
        changed = _changed(render_faces(_flipped(f, name), resolution, detail_seeds=seeds), base)
        assert not (changed & ~inside).any(), f"{name} changed pixels outside the eye boxes"
        assert (changed.flatten(1).sum(1) > 0).float().mean() > 0.8, f"{name} changed too few faces"


@pytest.mark.parametrize("resolution", [32, 64])
def test_mouth_open_and_smile_change_only_mouth_box_pixels(resolution):
    f, seeds = _random(48, seed=7), np.arange(48)
    base = render_faces(f, resolution, detail_seeds=seeds)
    for name in ("mouth_open", "smile"):
        g = _flipped(f, name)
        inside = torch.zeros(48, resolution, resolution, dtype=torch.bool)
        for boxes in (mouth_boxes(f, resolution), mouth_boxes(g, resolution)):   # where the mouth was and is
            for i, (r0, c0, r1, c1) in enumerate(boxes.tolist()):
                assert 0 <= r0 < r1 <= resolution and c1 - c0 <= resolution // 3 + 3   # a small box
                inside[i, r0:r1, c0:c1] = True
        changed = _changed(render_faces(g, resolution, detail_seeds=seeds), base)
        assert not (changed & ~inside).any(), f"{name} changed pixels outside the mouth boxes"
        assert (changed.flatten(1).sum(1) > 0).float().mean() > 0.8, f"{name} changed too few faces"


def test_eye_boxes_follow_yaw_pitch_and_roll():
    f = neutral_factors(3)
    cols = [eye_boxes(_with(f, "yaw", [-0.8, 0.0, 0.8]), 64)[:, e, [1, 3]].float().mean(1) for e in range(2)]
    for c in cols:  # documented: + yaw moves the features to the image right
        assert c[0] < c[1] < c[2]
    rows = eye_boxes(_with(f, "pitch", [-0.8, 0.0, 0.8]), 64)[:, :, [0, 2]].float().mean(2)
    assert (rows[0] < rows[1]).all() and (rows[1] < rows[2]).all()  # + pitch looks down
    tilted = eye_boxes(neutral_factors(roll=0.3), 64)[0]
    assert tilted[1, 0] > tilted[0, 0]  # + roll is clockwise on screen: the right eye goes down
    left, right = eye_boxes(f, 64)[1].float()
    assert left[1] + left[3] < right[1] + right[3] and torch.equal(left[[0, 2]], right[[0, 2]])  # side by side


def test_skin_tone_changes_only_the_head_and_bg_hue_only_the_rest():
    f, seeds = _random(48, seed=6), np.arange(48)
    out = render_passes(f, 64, detail_seeds=seeds)
    rgb, mask = out["rgb"], out["mask"][:, 0]
    skin = _changed(render_faces(_with(f, "skin_tone", (f[:, _col("skin_tone")] + 0.5) % 1), 64,
                                 detail_seeds=seeds), rgb, tol=1e-4)
    bg = _changed(render_faces(_with(f, "bg_hue", (f[:, _col("bg_hue")] + 0.4) % 0.85), 64, detail_seeds=seeds), rgb,
                  tol=1e-4)
    assert not (skin & (mask == 0)).any() and not (bg & (mask == 1)).any()
    assert skin.sum() > 0.4 * (mask == 1).sum()  # the face, ears and neck: a large part of the head
    assert bg.sum() > 0.9 * (mask == 0).sum()  # background and shirt, nearly every pixel


def test_more_hair_and_an_open_mouth():
    f = neutral_factors(2)
    long_hair = render_passes(_with(f, "hair_length", [0.0, 1.0]), 64)["mask"][:, 0, 48:]  # the lower quarter
    assert long_hair[1].sum() > long_hair[0].sum() + 100
    mouths = render_faces(_with(f, "mouth_open", [0.0, 1.0]), 64).mean(1)
    assert (mouths[1] < mouths[0] - 0.2).sum() > 10  # a dark interior appears


# ---------------------------------------------------------------------------------------------------- sequences

def test_render_sequence_shapes_and_fixed_detail():
    start, end = neutral_factors(yaw=-0.6), neutral_factors(yaw=0.6)
    t = torch.linspace(0, 1, 5).view(5, 1)
    seq = torch.cat([start + t * (end - start), end.expand(2, -1)])  # 5 frames of a head turn, then 2 still frames
    video = render_sequence(torch.stack([seq, seq]), 32, detail_seeds=[3, 4])
    assert video.shape == (2, 7, 3, 32, 32) and video.dtype == torch.float32
    assert torch.equal(video[0, 5], video[0, 6]) and torch.equal(video[0, 4], video[0, 5])  # equal factors, frames
    assert not torch.equal(video[0, 0], video[0, 1])  # the factors animate ...
    assert not torch.equal(video[0], video[1])  # ... and the detail is per video
    for b, seed in ((0, 3), (1, 4)):
        assert torch.equal(video[b], render_faces(seq, 32, detail_seeds=[seed] * 7))
    assert render_sequence(seq, 32).shape == (1, 7, 3, 32, 32)


# ----------------------------------------------------------------------------------------------------- dataset

def _sha(x: torch.Tensor) -> str:
    return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()


def test_faces_split_shapes_prefix_and_copies():
    x, f = faces("test", resolution=32)
    assert x.shape == (F.N_TEST, 3, 32, 32) and x.dtype == torch.float32 and f.shape == (F.N_TEST, N_FACTORS)
    u8, f8 = faces("test", 8, resolution=32, as_uint8=True)
    assert u8.dtype == torch.uint8 and u8.shape == (8, 3, 32, 32)
    assert torch.equal(u8.float() / 255.0, x[:8]) and torch.equal(f8, f[:8])  # floats are exactly uint8 / 255
    u8[:] = 0
    x[:] = 0
    again, _ = faces("test", 8, resolution=32, as_uint8=True)  # callers get copies: the cache is untouched
    assert _sha(again) != _sha(u8) and again.float().mean() > 0.2
    # face i is render_faces of its factors with detail seed 1,000,000 + i, rounded to uint8
    for i in (0, 7):
        img = render_faces(f8[i:i + 1], 32, detail_seeds=[F.TEST_DETAIL_OFFSET + i])
        assert torch.equal((img * 255).round().to(torch.uint8)[0], again[i])


def test_faces_split_is_fixed():
    first, _ = faces("test", 8, resolution=16, as_uint8=True)
    _split_uint8.cache_clear()  # a rebuild from scratch gives the same bytes
    rebuilt, f = faces("test", 8, resolution=16, as_uint8=True)
    assert _sha(first) == _sha(rebuilt)
    # the factors come from an integer hash, identical on every machine (this row is not a torch RNG output)
    expected = [-0.673914, 0.67729, -0.244076, 0.432883, 0.541351, 0.937732, 0.735889, 0.030614, 0.979071,
                0.883827, 0.207075, 0.377486, 0.319767, 0.725305, -0.327582, -0.152272, 0.278688, 0.816293,
                0.247604, 0.636544]
    assert torch.allclose(f[0], torch.tensor(expected), atol=1e-6)
    assert 0.3 < first.float().mean() / 255 < 0.7


def test_train_and_test_are_disjoint():
    train, f_train = faces("train", resolution=16, as_uint8=True)
    test, f_test = faces("test", resolution=16, as_uint8=True)
    assert len(train) == F.N_TRAIN == 20_000 and len(test) == F.N_TEST == 5_000
    train_hashes = {hashlib.sha1(img.numpy().tobytes()).digest() for img in train}
    test_hashes = {hashlib.sha1(img.numpy().tobytes()).digest() for img in test}
    assert len(train_hashes) == F.N_TRAIN and len(test_hashes) == F.N_TEST  # no repeats inside a split either
    assert not train_hashes & test_hashes
    assert not set(map(tuple, f_train[:, :4].tolist())) & set(map(tuple, f_test[:, :4].tolist()))


def test_faces_argument_errors():
    with pytest.raises(ValueError, match=r"split must be 'train' \(20000 faces\) or 'test' \(5000 faces\)"):
        faces("val")
    with pytest.raises(ValueError, match="n must be an int between 1 and 5000"):
        faces("test", 5001, resolution=16)
    with pytest.raises(ValueError, match="resolution must be an int >= 16"):
        faces("test", 4, resolution=12)


# ---------------------------------------------------------------------------------------------- render passes

def test_a_registered_pass_renders_beside_rgb():
    @F.render_pass("correspondence_test", channels=3)
    def correspondence(scene):
        uv1 = torch.cat([scene.u, scene.v, torch.ones_like(scene.u)], 1)
        return scene.composite({"face": uv1, "front_hair": 0.0}, initial=torch.zeros_like(uv1))

    try:
        f = _random(6, seed=8)
        out = render_passes(f, 32, passes=("rgb", "mask", "correspondence_test"))
        flat = out["correspondence_test"]
        assert flat.shape == (6, 3, 32, 32)
        assert (flat[:, 2] <= out["mask"][:, 0] + 1e-6).all()  # the face is part of the head
        assert (flat[:, 2] == 1).float().mean() > 0.1  # and a large part of the picture
        assert torch.equal(out["rgb"], render_faces(f, 32))  # other passes are unaffected
        face_px = flat[:, 2] == 1
        assert flat[:, 0][face_px].abs().max() < 0.6 and flat[:, 1][face_px].abs().max() < 0.7  # |u| < a, |v| < b
    finally:
        del F.RENDER_PASSES["correspondence_test"]
    assert set(F.RENDER_PASSES) == {"rgb", "mask", *F.CONDITIONING_PASSES} and F.LAYERS[0] == "hair_back"


# ------------------------------------------------------------------------------------------------ face editor

def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _expected(f: torch.Tensor, seed: int, scale: int) -> np.ndarray:
    img = (render_faces(f, 32, detail_seeds=[seed])[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return img.repeat(scale, 0).repeat(scale, 1)


def test_face_editor_rerenders_when_a_slider_moves(capsys):
    import ipywidgets as widgets

    from genlab.viz import face_editor

    box = face_editor(32, yaw=0.5, detail_seed=3)
    controls, picture = box.children
    sliders = controls.children
    assert isinstance(box, widgets.HBox) and isinstance(picture, widgets.Image) and len(sliders) == N_FACTORS + 1
    for s, fac in zip(sliders, FACTORS):
        assert isinstance(s, widgets.FloatSlider) and (s.description, s.min, s.max) == (fac.name, fac.low, fac.high)
    assert sliders[_col("yaw")].value == 0.5 and sliders[-1].value == 3
    assert np.array_equal(_png(picture.value), _expected(neutral_factors(yaw=0.5), 3, 8))  # 32 px shown at 256
    before = picture.value
    sliders[_col("smile")].value = -1.0  # what dragging a slider does, without a browser
    assert picture.value != before
    assert np.array_equal(_png(picture.value), _expected(neutral_factors(yaw=0.5, smile=-1.0), 3, 8))
    sliders[-1].value = 4
    assert np.array_equal(_png(picture.value), _expected(neutral_factors(yaw=0.5, smile=-1.0), 4, 8))
    import base64

    from IPython.core.formatters import DisplayFormatter
    data, _ = DisplayFormatter().format(box)      # a static viewer gets the current picture, a kernel the widget
    assert base64.b64decode(data["image/png"]) == picture.value and "application/vnd.jupyter.widget-view+json" in data
    assert capsys.readouterr() == ("", "")
    with pytest.raises(ValueError, match="unknown factor name"):
        face_editor(32, nose=1.0)
    with pytest.raises(ValueError, match="outside its range"):
        face_editor(32, roll=1.0)
