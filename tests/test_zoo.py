"""The model zoo: the shipped digit classifier reproduces its provenance; train/eval commands; clear errors; every
recipe's typed config (a RecipeConfig) builds its model and stores exactly what the shipped provenance holds."""
from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch

from genlab.checkpoints import CheckpointNotFoundError, read_provenance, shipped_path
from genlab.zoo import load_pretrained
from genlab.paths import REPO_ROOT, sha256
from genlab.models.digit_classifier import DigitClassifier, accuracy
from genlab.zoo import (RecipeConfig, UnknownRecipeError, eval_main, evaluate_shipped, get_recipe, known_names,
                        train_main)


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    """A GENLAB_DATA folder with the embedded MNIST 5k but no shipped checkpoints."""
    (tmp_path / "mnist5k.npz").symlink_to(REPO_ROOT / "data" / "mnist5k.npz")
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    return tmp_path


def test_shipped_digit_classifier_reproduces_its_provenance():
    (check,) = evaluate_shipped("digit_classifier", device="cpu")
    assert check.name == "test_accuracy"
    assert abs(check.measured - check.stored) <= 0.001, (check.measured, check.stored)  # <= 0.1 percentage point
    assert check.stored >= 0.97


def test_shipped_provenance_records_how_it_was_made():
    prov = read_provenance("digit_classifier")
    assert prov["command"] == "genlab train digit_classifier --profile cpu --ship"
    assert prov["seed"] == 0 and "mnist5k" in prov["data"] and prov["train_seconds"] > 0
    assert prov["date"][:2] == "20" and prov["machine"]["cpu"] and prov["commit"]
    assert prov["sha256"] == sha256(shipped_path("digit_classifier"))  # the json describes this very file
    assert abs(prov["extra"]["metrics_float32"]["test_accuracy"] - prov["metrics"]["test_accuracy"]) <= 0.001


def test_load_pretrained_gives_a_ready_model():
    ckpt = load_pretrained("digit_classifier")
    model = ckpt.model
    assert isinstance(model, DigitClassifier) and not model.training
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, ckpt.config["model"]["channels"][-1])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp16 on disk, float32 in memory


def test_missing_checkpoint_names_the_retrain_command(empty_data_dir):
    with pytest.raises(CheckpointNotFoundError) as e:
        load_pretrained("digit_classifier")
    assert "genlab train digit_classifier --ship" in str(e.value)
    assert eval_main(argparse.Namespace(name="digit_classifier")) == 2


def test_unknown_name_lists_the_known_ones(capsys):
    with pytest.raises(UnknownRecipeError, match="digit_classifier"):
        get_recipe("digit_clasifier")
    args = argparse.Namespace(name="nope", profile="ci", resume=True, ship=False, out="runs")
    assert train_main(args) == 2
    assert "known models: " + ", ".join(known_names()) in capsys.readouterr().err


def test_digit_classifier_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        DigitClassifier()(torch.rand(2, 28, 28))


def test_train_ship_then_eval_round_trip_and_drift_detection(empty_data_dir, tmp_path, capsys):
    """The ci profile end to end: train a few steps, ship into GENLAB_DATA, re-evaluate, then detect a drift."""
    args = argparse.Namespace(name="digit_classifier", profile="ci", resume=True, ship=True, out=str(tmp_path / "runs"))
    assert train_main(args) == 0
    prov = read_provenance("digit_classifier")
    assert prov["command"] == "genlab train digit_classifier --profile ci --ship"
    assert prov["extra"]["steps"] == get_recipe("digit_classifier").config("ci").train.steps
    assert prov["config"] == json.loads(json.dumps(get_recipe("digit_classifier").config("ci").as_dict()))
    assert (tmp_path / "runs" / "digit_classifier" / "ci" / "last.pt").exists()
    model = load_pretrained("digit_classifier").model
    from genlab.data.mnist import mnist5k
    x, y = mnist5k("test")
    assert accuracy(model, x, y) == pytest.approx(prov["metrics"]["test_accuracy"], abs=0.001)

    assert eval_main(argparse.Namespace(name="digit_classifier")) == 0
    path = empty_data_dir / "checkpoints" / "digit_classifier.json"
    prov["metrics"]["test_accuracy"] += 0.05
    path.write_text(json.dumps(prov))
    capsys.readouterr()
    assert eval_main(argparse.Namespace(name="digit_classifier")) == 1
    assert "DRIFT" in capsys.readouterr().out


def test_train_recipe_is_the_notebooks_load_or_train_path(tmp_path):
    """train_recipe (train_from_scratch = True in a notebook) trains the same network the shipped file holds."""
    from genlab.zoo import load_pretrained
    from genlab.config import setup
    from genlab.zoo import train_recipe

    run = setup("ci", 0)
    model = train_recipe("digit_classifier", run, out=tmp_path, progress=False)
    assert not model.training
    assert (tmp_path / "digit_classifier" / "ci" / "last.pt").exists()  # periodic checkpoint, resumable
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 10)
    shipped = load_pretrained("digit_classifier").model
    assert type(model) is type(shipped)


# ------------------------------------------------------------------------------------------------ typed recipe configs
PROFILES = ("ci", "cpu", "gpu")

#: shipped before GatedPixelCNNConfig gained these fields (at their defaults in the recipes): their provenance lacks
#: them (load_pretrained still builds them, the dataclass filling in the defaults)
OLDER_GATED_FIELDS = {"gated_pixelcnn_mnist": {"attention_heads", "cond_channels", "code_embedding", "vocab"},
                      "gated_pixelcnn_mnist_cond": {"attention_heads", "cond_channels", "code_embedding", "vocab"}}


@pytest.mark.parametrize("name", known_names())
def test_every_recipe_config_is_typed_plain_when_stored_and_builds_its_model(name):
    recipe = get_recipe(name)
    for profile in PROFILES:
        config = recipe.config(profile)
        assert isinstance(config, RecipeConfig), (name, profile)
        for part in (config.model, config.train):
            assert dataclasses.is_dataclass(part) and not isinstance(part, type), (name, profile, part)
        stored = config.as_dict()
        assert set(stored) == {"model", "train"}
        json.dumps(stored)                                     # plain values only: what a provenance file holds
        assert stored == recipe.config(profile).as_dict()      # deterministic
        assert isinstance(recipe.build(stored["model"]), torch.nn.Module), (name, profile)


SHIPPED_RECIPES = [n for n in known_names() if (REPO_ROOT / "data" / "checkpoints" / f"{n}.json").exists()]


@pytest.mark.parametrize("name", SHIPPED_RECIPES)
def test_cpu_config_is_what_the_shipped_provenance_stores(name):
    """The byte-identity guarantee: the typed cpu config, stored, is exactly the shipped file's provenance config."""
    stored = json.loads(json.dumps(get_recipe(name).config("cpu").as_dict()))     # tuples -> lists, as in the JSON
    prov = read_provenance(name)["config"]
    newer = OLDER_GATED_FIELDS.get(name, set())
    if newer:
        from genlab.models.pixelcnn import GatedPixelCNNConfig

        defaults = dataclasses.asdict(GatedPixelCNNConfig())
        assert set(stored["model"]) - set(prov["model"]) == newer
        assert {k: stored["model"][k] for k in newer} == {k: defaults[k] for k in newer}
        stored["model"] = {k: v for k, v in stored["model"].items() if k not in newer}
    assert stored == prov


@pytest.mark.parametrize("name", known_names())
def test_a_misspelt_setting_fails_and_configs_are_frozen(name):
    config = get_recipe(name).config("ci")
    with pytest.raises(AttributeError):
        config.train.lrr
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.steps = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train = config.train
    assert config.train.steps >= 1 and config.train.batch_size >= 1
    if name == "digit_classifier":
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.train.augment.degrees = 0.0
