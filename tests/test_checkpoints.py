"""Checkpoints: round trip, atomic save, clear errors for truncated and foreign files, fp16 shipping, the registry."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab import checkpoints as ck
from genlab.checkpoints import CheckpointError, CheckpointNotFoundError, load_checkpoint, save_checkpoint


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


META = dict(config={"model": {"width": 4}, "train": {"lr": 1e-3, "betas": (0.9, 0.99)}},
            metrics={"test_accuracy": 0.973}, seed=7, command="genlab train toy --profile ci",
            data="toy data", train_seconds=12.5)


def _save(path, model, **kw):
    return save_checkpoint(path, model_state=model.state_dict(), **{**META, **kw})


def test_round_trip_states_and_metadata(tmp_path):
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.rand(2, 1, 8, 8)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "a.pt", model_state=net.state_dict(), states={"optimizer": opt.state_dict()},
                           extra={"note": "hi"}, **META)
    c = load_checkpoint(path)
    assert c.model_state.keys() == net.state_dict().keys()
    for k, v in net.state_dict().items():
        assert torch.equal(c.model_state[k], v) and c.model_state[k].dtype == v.dtype
    opt2 = torch.optim.Adam(_net(1).parameters(), lr=5.0)
    opt2.load_state_dict(c.states["optimizer"])
    assert opt2.param_groups[0]["lr"] == 1e-3
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    m = c.meta
    assert m["config"] == META["config"] and m["metrics"] == META["metrics"]
    assert (m["seed"], m["command"], m["data"], m["train_seconds"]) == (7, META["command"], "toy data", 12.5)
    assert m["torch"] == torch.__version__ and m["extra"] == {"note": "hi"} and m["stored_dtype"] is None
    assert m["commit"] == "unknown" or len(m["commit"].removesuffix("-dirty")) == 40
    assert m["date"][:2] == "20" and m["machine"]["cpu_count"] >= 1
    # the model rebuilt from the loaded state computes the same function
    net2 = _net(3)
    net2.load_state_dict(c.model_state)
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(net.eval()(x), net2.eval()(x))


def test_a_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = _save(tmp_path / "a.pt", _net(0))
    before = path.read_bytes()
    real_save = torch.save

    def save_half_then_crash(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)
        f.truncate(100)  # only part of the new file made it to disk ...
        raise OSError("disk full")  # ... when the writer died

    monkeypatch.setattr(torch, "save", save_half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        _save(path, _net(1), metrics={"test_accuracy": 0.5})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).metrics == {"test_accuracy": 0.973}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]  # no temp file left behind


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = _save(tmp_path / "a.pt", _net())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        load_checkpoint(path, fix="retrain with `genlab train toy --ship`")
    assert "genlab train toy --ship" in str(e.value)


@pytest.mark.parametrize("kind", ["tensor", "foreign_dict", "text", "pickled_object", "empty"])
def test_foreign_files_are_rejected_with_a_clear_error(tmp_path, kind):
    path = tmp_path / "x.pt"
    if kind == "tensor":
        torch.save(torch.ones(3), path)
        match = "not a genlab checkpoint.*Tensor"
    elif kind == "foreign_dict":
        torch.save(_net().state_dict(), path)  # a bare state dict: no provenance
        match = "not a genlab checkpoint"
    elif kind == "text":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")  # e.g. an LFS pointer
        match = "not a torch checkpoint"
    elif kind == "pickled_object":
        torch.save({"kind": ck.KIND, "obj": ValueError("x")}, path)  # weights_only refuses arbitrary classes
        match = "weights_only"
    else:
        path.write_bytes(b"")
        match = "not a torch checkpoint"
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_missing_file_is_a_checkpoint_and_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_checkpoint(tmp_path / "nope.pt", fix="run `make it`")
    assert isinstance(e.value, CheckpointNotFoundError) and isinstance(e.value, RuntimeError)
    assert "run `make it`" in str(e.value)


def test_fp16_shipping_round_trip(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(128, 128), nn.BatchNorm1d(128))  # big enough that the tensors dominate the file
    full = _save(tmp_path / "full.pt", net)
    half = _save(tmp_path / "half.pt", net, dtype=torch.float16)
    assert half.stat().st_size < 0.75 * full.stat().st_size
    c = load_checkpoint(half)
    assert c.meta["stored_dtype"] == "float16"
    for k, v in net.state_dict().items():
        got = c.model_state[k]
        assert got.dtype == v.dtype  # float32 again; integer buffers (num_batches_tracked) untouched
        if v.is_floating_point():
            assert torch.equal(got, v.half().float())  # exactly the fp16 rounding, nothing else
        else:
            assert torch.equal(got, v)


def test_save_rejects_nothing_and_clashes(tmp_path):
    with pytest.raises(ValueError, match="nothing to save"):
        save_checkpoint(tmp_path / "a.pt", **META)
    with pytest.raises(ValueError, match="given twice"):
        save_checkpoint(tmp_path / "a.pt", model_state={}, states={"model": {}}, **META)


def test_registry_paths_follow_genlab_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    assert ck.shipped_path("digit_classifier") == tmp_path / "checkpoints" / "digit_classifier.pt"
    ck.write_provenance("toy", {"command": "genlab train toy --ship", "metrics": {"a": 1.0}})
    assert ck.read_provenance("toy")["metrics"] == {"a": 1.0}
    with pytest.raises(CheckpointNotFoundError, match="genlab train other --ship"):
        ck.read_provenance("other")
