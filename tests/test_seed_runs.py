"""Seed-spread runs: `genlab train NAME --seed S --ship` records another seed beside the shipped checkpoint (never over
it), with its weights, and the notebooks read every seed back."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from genlab.checkpoints import load_seed_model, seed_runs, write_seed_run

ROOT = Path(__file__).resolve().parents[1]
GENLAB = shutil.which("genlab") or str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "genlab")


def test_write_and_read_a_seed_run(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "toy.json").write_text(json.dumps({"seed": 0, "metrics": {"m": 1.0}}))
    net = torch.nn.Linear(3, 2)
    meta = {"config": {"model": {"i": 3, "o": 2}}, "metrics": {"m": 2.0}, "seed": 2, "command": "c", "data": "d"}
    write_seed_run("toy", 2, meta, net.state_dict())
    write_seed_run("toy", 1, {**meta, "seed": 1, "metrics": {"m": 3.0}}, net.state_dict())
    runs = seed_runs("toy")
    assert [r["seed"] for r in runs] == [0, 1, 2] and [r["metrics"]["m"] for r in runs] == [1.0, 3.0, 2.0]
    assert runs[2]["weights"] == "toy.seed2.pt" and runs[2]["stored_dtype"] == "float16" and len(runs[2]["sha256"]) == 64
    back = load_seed_model("toy", 2, lambda c: torch.nn.Linear(c["i"], c["o"])).model
    assert torch.allclose(back.weight, net.weight.half().float())
    assert not back.training
    (tmp_path / "checkpoints" / "seeds" / "toy.seed1.pt").unlink()
    with pytest.raises(Exception, match="--seed 1 --ship"):
        load_seed_model("toy", 1, lambda c: torch.nn.Linear(c["i"], c["o"]))


@pytest.mark.slow
def test_cli_seed_run_leaves_the_shipped_checkpoint_alone(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "checkpoints", data / "checkpoints",
                    ignore=shutil.ignore_patterns("*.pt", "seeds"))
    for name in ("face_regressor.pt", "stylegan_faces32_a.pt"):
        shutil.copy(ROOT / "data" / "checkpoints" / name, data / "checkpoints" / name)
    before = (data / "checkpoints" / "stylegan_faces32_a.json").read_text()
    r = subprocess.run([GENLAB, "train", "stylegan_faces32_a", "--profile", "ci", "--seed", "3", "--ship",
                        "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                       env={**os.environ, "GENLAB_DATA": str(data)}, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (data / "checkpoints" / "stylegan_faces32_a.json").read_text() == before
    rec = json.loads((data / "checkpoints" / "seeds" / "stylegan_faces32_a.seed3.json").read_text())
    assert rec["seed"] == 3 and rec["command"].endswith("--seed 3") and "fid_faces" in rec["metrics"]
    assert (tmp_path / "runs" / "stylegan_faces32_a" / "ci" / "seed3" / "final.pt").is_file()


SEED_FILES = sorted((ROOT / "data" / "checkpoints" / "seeds").glob("*.json"))


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.stem)
def test_shipped_seed_runs_match_their_recipe_and_weights(path):
    from genlab.paths import sha256
    from genlab.zoo import get_recipe

    rec = json.loads(path.read_text())
    shipped = json.loads((path.parent.parent / f"{rec['name']}.json").read_text())
    assert rec["seed"] != shipped["seed"] and rec["config"] == shipped["config"], "same recipe, another seed"
    assert rec["config"] == json.loads(json.dumps(get_recipe(rec["name"]).config("cpu").as_dict()))
    assert rec["command"] == f"genlab train {rec['name']} --profile cpu --ship --seed {rec['seed']}"
    weights = path.with_suffix(".pt")
    assert rec["weights"] == weights.name and sha256(weights) == rec["sha256"]
