"""The shipped GAN-side checkpoints (DCGANs, face regressor) reproduce their provenance; recipes train end to end."""
from __future__ import annotations

import json

import pytest
import torch

from genlab.checkpoints import read_provenance, shipped_path
from genlab.paths import sha256
from genlab.zoo import evaluate_shipped, get_recipe, train_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
STYLEGANS = [f"stylegan_faces32_{row}" for row in "abcdef"] + ["stylegan2_faces32", "stylegan2_faces32_nopl"]


@pytest.mark.parametrize("name", ["dcgan_mnist", "dcgan_faces32", "face_regressor", *STYLEGANS])
def test_provenance_describes_the_shipped_file(name):
    prov = read_provenance(name)
    assert prov["command"] == f"genlab train {name} --profile cpu --ship"
    assert prov["sha256"] == sha256(shipped_path(name)) and prov["train_seconds"] > 0 and prov["seed"] == 0
    cpu_config = json.loads(json.dumps(get_recipe(name).config("cpu").as_dict()))  # tuples -> lists, as in the JSON
    assert prov["config"] == cpu_config, "the shipped file was trained with another cpu config"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dcgan_mnist", "dcgan_faces32", "face_regressor", *STYLEGANS])
def test_shipped_checkpoint_reproduces_its_metrics(name, cores):
    # thousands of images through each network: large batched ops, which use both cores well (one_thread restores)
    torch.set_num_threads(cores)
    for check in evaluate_shipped(name, device="cpu"):
        assert check.ok, (name, check)


def test_dcgan_fid_is_far_below_an_untrained_generator_and_above_the_real_floor():
    from genlab.data.mnist import mnist5k
    from genlab.metrics.fid import fid
    from genlab.models.dcgan import DCGANConfig, Generator
    from genlab.nn.inference import generate

    prov = read_provenance("dcgan_mnist")["metrics"]["fid_digits"]
    torch.manual_seed(0)
    untrained = fid(mnist5k("test")[0][:500], generate(Generator(DCGANConfig()), 500), "digits")
    floor = fid(mnist5k("train")[0][:1000], mnist5k("test")[0], "digits")
    assert floor < prov < 0.2 * untrained, (floor, prov, untrained)


def test_face_regressor_reads_the_factors():
    prov = read_provenance("face_regressor")["metrics"]
    assert prov["test_r2_mean"] > 0.8 and prov["test_r2_mean_32"] > 0.7, prov
    for factor in ("yaw", "skin_tone", "hair_hue", "bg_hue", "mouth_open"):
        assert prov[f"test_r2_{factor}"] > 0.8, (factor, prov[f"test_r2_{factor}"])


def test_face_regressor_recipe_trains_and_resumes(tmp_path):
    from genlab.config import setup
    from genlab.worlds.faces import N_FACTORS

    model = train_recipe("face_regressor", setup("ci", 0), out=tmp_path, progress=False)
    assert (tmp_path / "face_regressor" / "ci" / "last.pt").exists()
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, N_FACTORS)


def test_training_batches_are_a_function_of_the_step():
    from genlab.zoo.face_regressor import training_batch

    a, fa = training_batch(3, 4, 64, 0.5)
    b, fb = training_batch(3, 4, 64, 0.5)
    c, _ = training_batch(4, 4, 64, 0.5)
    assert torch.equal(a, b) and torch.equal(fa, fb) and not torch.equal(a, c)
    assert fa.abs().max() <= 1.0 and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("name, shape", [("dcgan_mnist", (1, 28, 28)), ("dcgan_faces32", (3, 32, 32))])
def test_dcgan_recipes_train_in_the_ci_profile(name, shape, tmp_path):
    from genlab.config import setup
    from genlab.nn.inference import generate

    G = train_recipe(name, setup("ci", 0), out=tmp_path, progress=False)
    assert (tmp_path / name / "ci" / "last.pt").exists()
    x = generate(G, 3)
    assert x.shape == (3, *shape) and 0 <= x.min() and x.max() <= 1


def test_stylegan_checkpoints_are_the_rows_of_table_1_with_one_budget():
    from genlab.models.stylegan import CONFIGS

    budgets = set()
    for row, flags in CONFIGS.items():
        cfg = read_provenance(f"stylegan_faces32_{row.lower()}")["config"]
        assert {k: cfg["model"][k] for k in flags} == flags, row
        budgets.add(json.dumps(cfg["train"], sort_keys=True))
    assert len(budgets) == 1, "every config must train with the same budget"
    sg2 = read_provenance("stylegan2_faces32")["config"]["train"]
    nopl = read_provenance("stylegan2_faces32_nopl")["config"]["train"]
    assert sg2["pl_weight"] == 2.0 and nopl["pl_weight"] == 0.0
    assert {k: v for k, v in sg2.items() if k != "pl_weight"} == {k: v for k, v in nopl.items() if k != "pl_weight"}
