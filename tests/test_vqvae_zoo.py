"""The VQ-VAE zoo: PSNR, codebook-health metrics, the recipes in the ci profile (train, restarts, resume), and the
shipped checkpoints against their provenance."""
from __future__ import annotations

import json
import math

import pytest
import torch

from genlab.checkpoints import read_provenance, shipped_path
from genlab.paths import sha256
from genlab.metrics.image_quality import psnr, psnr_per_image
from genlab.models.vqvae import VQVAE2, VQVAEConfig
from genlab.zoo.vqvae import decode_codes, encode_codes, evaluate_on, reconstruct
from genlab.zoo import evaluate_shipped, get_recipe, train_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
SHIPPED = ["vqvae2_faces64", "vqvae2_faces64_noema", "vqvae2_faces64_norestart", "vqvae2_faces64_bottleneck",
           "vqvae_faces64", "vqvae2_photos32",
           "vqvae2_faces64_prior_top", "vqvae2_faces64_prior_bottom"]


def test_psnr_is_10_log10_of_one_over_the_mse():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0] += 0.1                                   # MSE 0.01 -> 20 dB
    y[1, 0, 0, 0] = 1.0                           # MSE 1/48 -> 10 log10(48) dB
    per = psnr_per_image(y, x)
    assert per[0].item() == pytest.approx(20.0) and per[1].item() == pytest.approx(10 * math.log10(48))
    assert psnr(y, x) == pytest.approx(float(per.mean()))
    assert psnr_per_image(x, x)[0] == math.inf
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, x[:1])
    with pytest.raises(TypeError, match="255"):
        psnr(x.to(torch.uint8), x.to(torch.uint8))


def test_codebook_health_counts_exactly_the_unused_codes():
    """All codes but code 3 pushed far away: every position takes code 3, so K - 1 codes are dead, perplexity 1."""
    torch.manual_seed(0)
    model = VQVAE2(VQVAEConfig(channels=8, res_hidden=8, n_res=1, embed_dim=4, num_codes=16)).eval()
    for vq in (model.quant_t, model.quant_b):
        vq.codebook.data.fill_(1e4)
        vq.codebook.data[3] = 0.0
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    m = evaluate_on(model, x)
    assert m["dead_codes_top"] == m["dead_codes_bottom"] == 15 and m["perplexity_top"] == pytest.approx(1.0)
    assert m["recon_psnr"] > 0
    codes, recon = encode_codes(model, x), reconstruct(model, x)
    assert evaluate_on(model, x, codes=codes, recon=recon) == m                  # reused: the same result
    spread = {k: torch.arange(c.numel()).view_as(c) % 16 for k, c in codes.items()}   # every code used
    given = evaluate_on(model, x, codes=spread, recon=torch.zeros_like(recon))
    assert given["dead_codes_top"] == given["dead_codes_bottom"] == 0 and given["recon_psnr"] < m["recon_psnr"]
    with pytest.raises(ValueError, match="reconstructions"):
        evaluate_on(model, x, recon=reconstruct(model, x[:2]))


def test_one_level_baseline_has_the_same_code_bits_as_the_two_level_model():
    two, one = get_recipe("vqvae2_faces64").config("cpu").model, get_recipe("vqvae_faces64").config("cpu").model
    bits_two = (8 * 8 + 16 * 16) * math.log2(two.num_codes)
    bits_one = (64 // one.downsample) ** 2 * math.log2(one.num_codes)
    assert bits_two == bits_one == 2560
    noema = get_recipe("vqvae2_faces64_noema").config("cpu")
    ema = get_recipe("vqvae2_faces64").config("cpu")
    ema_model, noema_model = ema.as_dict()["model"], noema.as_dict()["model"]
    assert {k for k in ema_model if ema_model[k] != noema_model[k]} == {"ema"}
    assert ema.train.restart_every > 0 and noema.train.restart_every == 0
    norestart = get_recipe("vqvae2_faces64_norestart").config("cpu")      # separates the two changes of noema
    assert norestart.as_dict()["model"] == ema_model and norestart.train.restart_every == 0
    assert {k for k, v in vars(norestart.train).items() if v != vars(ema.train)[k]} == {"restart_every"}


def test_vqvae_recipes_train_restart_and_resume_in_the_ci_profile(tmp_path):
    from genlab.config import setup

    run = setup("ci", seed=0)
    model = train_recipe("vqvae2_photos32", run, out=tmp_path, progress=False)
    assert isinstance(model, VQVAE2) and not model.training
    from genlab.checkpoints import load_checkpoint

    train = load_checkpoint(tmp_path / "vqvae2_photos32" / "ci" / "last.pt").states["train"]
    assert train["step"] == 4 and len(train["history"]["mse"]) == 4
    assert len(train["history"]["restarted_top"]) == 2                               # steps 2 and 4 (every 2 in ci)
    again = train_recipe("vqvae2_photos32", run, out=tmp_path, progress=False)        # resumes at the end: no steps
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name", SHIPPED)
def test_provenance_describes_the_shipped_file(name):
    prov = read_provenance(name)
    assert prov["command"] == f"genlab train {name} --profile cpu --ship"
    assert prov["sha256"] == sha256(shipped_path(name)) and prov["train_seconds"] > 0 and prov["seed"] == 0
    assert prov["config"] == json.loads(json.dumps(get_recipe(name).config("cpu").as_dict()))


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_reproduces_its_metrics(name, cores):
    torch.set_num_threads(cores)                           # large batched ops (one_thread restores)
    for check in evaluate_shipped(name, device="cpu"):
        assert check.ok, (name, check)


def test_train_on_a_local_image_folder_and_clear_errors(tmp_path):
    from PIL import Image

    from genlab.config import setup
    from genlab.zoo.vqvae import train_on_folder

    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for i in range(5):
        pixels = torch.randint(0, 256, (40, 48, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / ("sub" if i % 2 else "") / f"im{i}.png")
    run = setup("ci", seed=0)
    model = train_on_folder(folder, run, size=16, out=tmp_path / "runs", progress=False)
    assert isinstance(model, VQVAE2) and not model.training
    assert (tmp_path / "runs" / "vqvae2_folder16" / "ci" / "last.pt").exists()
    from genlab.checkpoints import load_checkpoint

    stored = load_checkpoint(tmp_path / "runs" / "vqvae2_folder16" / "ci" / "last.pt").config["train"]
    assert stored == {**get_recipe("vqvae2_faces64").config("ci").as_dict()["train"], "dataset": "folder",
                      "folder": str(folder.resolve()), "size": 16}               # the recipes' settings + folder, size
    assert evaluate_on(model, torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))["recon_psnr"] > 0
    with pytest.raises(ValueError, match="multiple of 8"):
        train_on_folder(folder, run, size=20, out=tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train_on_folder(tmp_path / "nowhere", run, size=16, out=tmp_path / "runs")


def test_decode_codes_of_the_encoded_codes_is_the_reconstruction():
    torch.manual_seed(0)
    model = VQVAE2(VQVAEConfig(channels=8, res_hidden=8, n_res=1, embed_dim=4, num_codes=16)).eval()
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    codes = encode_codes(model, x)
    images = decode_codes(model, codes["top"], codes["bottom"], batch_size=2)
    assert images.shape == (5, 3, 16, 16) and torch.allclose(images, reconstruct(model, x), atol=1e-5)
    swapped = decode_codes(model, codes["top"], codes["bottom"].roll(1, 0))
    assert torch.allclose(swapped[0], decode_codes(model, codes["top"][:1], codes["bottom"][-1:])[0], atol=1e-6)
    with pytest.raises(ValueError, match="one top and one bottom"):
        decode_codes(model, codes["top"], codes["bottom"][:2])
