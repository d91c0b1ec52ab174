"""Zoo recipes of notebook 06: VQ-VAE-2 and its baselines on the faces world at 64x64 and on photo patches.

* ``vqvae2_faces64``: two levels (top 8x8, bottom 16x16 codes, K = 256 each), EMA codebooks + dead-code restarts.
* ``vqvae2_faces64_noema``: the same network and budget, codebooks learnt by gradient, no restarts (codebook health).
* ``vqvae2_faces64_norestart``: EMA codebooks without restarts (separates the two changes of the row above).
* ``vqvae_faces64``: one level at 1/4 (16x16 codes) with K = 1024, i.e. the same code bits as the two-level model:
  16 * 16 * 10 = 2560 = (8 * 8 + 16 * 16) * 8.
* ``vqvae2_faces64_bottleneck``: the bottom codebook cut to 16 codes (4 bits per bottom code): does a bottleneck on the
  bottom level push the global structure into the top codes?
* ``vqvae2_photos32``: the two-level model on 32x32 natural-image patches (scikit-image photos; top 4x4, bottom 8x8).

One budget for the faces rows: Adam, lr 1e-3 with warm-up + cosine decay, batch 32, 3000 steps (cpu profile), loss =
MSE(recon, x) + the quantizers' losses (images in [-1, 1]). Every ``restart_every`` steps the codes no batch used since
the previous check are moved onto current encoder outputs (:meth:`~genlab.nn.quantize.VectorQuantizer.
restart_dead_codes`), for the rows with ``restarts``.

Your own images: :func:`train_on_folder` trains the same VQ-VAE-2 (the run's profile: gpu = wider, 30k steps) on every
.png / .jpg under a local folder, at 128x128 or 256x256 (notebook 06's ``image_folder`` parameter). Nothing is
downloaded; a missing or empty folder is a clear error.

Metrics (deterministic, on held-out images): ``recon_psnr`` (dB, images in [0, 1]) and per level the code-map
perplexity and the number of dead codes (codes no held-out image uses).

A recipe's config is typed: :class:`VQVAESpec` (the model's VQVAEConfig + ``levels``) and :class:`VQVAETrain`
(:class:`FolderTrain` for :func:`train_on_folder`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from genlab.config import setup
from genlab.data.folders import image_folder
from genlab.data.photos import photo_patches
from genlab.metrics.image_quality import psnr
from genlab.models.vqvae import VQVAE, VQVAE2, VQVAEConfig
from genlab.nn.eval_mode import evaluating
from genlab.nn.inference import batched
from genlab.train import StepBatches, TrainState, fit, prepare_model, warmup_cosine, wrap_ddp
from genlab.worlds.faces import faces
from genlab.zoo.registry import Recipe, RecipeConfig, TrainJob

RESOLUTION = 64
N_EVAL = 2000             # held-out faces for the metrics (the first 2000 of the test split)

_BASE = VQVAEConfig(channels=64, res_hidden=32, n_res=2, embed_dim=32, num_codes=256)
_CI = dict(channels=8, res_hidden=8, n_res=1, embed_dim=8, num_codes=16)


@dataclass
class VQVAESpec(VQVAEConfig):
    """A VQ-VAE recipe's model config: the :class:`~genlab.models.vqvae.VQVAEConfig` of the network and its number of
    ``levels`` (2: VQ-VAE-2, 1: one-level VQ-VAE). Not frozen, like the VQVAEConfig it extends."""

    levels: int = 2

    def to_dict(self) -> dict:
        """The stored form (what :func:`build` reads): the fields, ``bottom_codes`` left out when it is 0 (the default;
        kept out so older provenance configs still match)."""
        fields = asdict(self)
        if not fields["bottom_codes"]:
            del fields["bottom_codes"]
        return fields


@dataclass(frozen=True)
class VQVAETrain:
    """The training settings of the VQ-VAE recipes: ``steps`` of Adam(``lr``) with a warm-up over the first ``warmup``
    share of the steps then cosine decay, batches of ``batch_size`` images of ``dataset`` (faces64, photos32, or
    folder for :func:`train_on_folder`); every ``restart_every`` steps (0 = never) dead codes are restarted."""

    steps: int
    batch_size: int
    lr: float = 1e-3
    warmup: float = 0.02
    restart_every: int = 100
    dataset: str = "faces64"


@dataclass(frozen=True)
class FolderTrain(VQVAETrain):
    """:func:`train_on_folder`'s settings: those of the recipes plus the image ``folder`` (resolved) and the ``size``
    the images are center-cropped and resized to."""

    folder: str = ""
    size: int = 128


def vqvae_config(profile: str, *, levels: int = 2, ema: bool = True, restarts: bool = True,
                 num_codes: int | None = None, bottom_codes: int = 0, dataset: str = "faces64") -> RecipeConfig:
    """The config of a profile (ci: a smoke run; gpu: wider, longer): a :class:`VQVAESpec` and a :class:`VQVAETrain`."""
    model = _BASE if profile != "ci" else replace(_BASE, **_CI)
    if profile == "gpu":
        model = replace(model, channels=128, res_hidden=64, embed_dim=64)
    model = replace(model, ema=ema, **({"num_codes": num_codes} if num_codes and profile != "ci" else {}),
                    **({"bottom_codes": bottom_codes} if bottom_codes and profile != "ci" else {}))
    if levels == 1:
        model = replace(model, downsample=4)
    steps, batch_size = {"ci": (4, 4), "cpu": (3000, 32), "gpu": (30000, 64)}[profile]
    restart_every = (2 if profile == "ci" else 100) if restarts else 0
    return RecipeConfig(VQVAESpec(**asdict(model), levels=levels),
                        VQVAETrain(steps=steps, batch_size=batch_size, restart_every=restart_every, dataset=dataset))


def build(model_config: dict) -> nn.Module:
    cfg = dict(model_config)
    levels = cfg.pop("levels")
    return (VQVAE2 if levels == 2 else VQVAE)(VQVAEConfig(**cfg))


def quantizers(model: nn.Module) -> dict[str, nn.Module]:
    """{"top": ..., "bottom": ...} for VQVAE2, {"codes": ...} for VQVAE."""
    return {"top": model.quant_t, "bottom": model.quant_b} if isinstance(model, VQVAE2) else {"codes": model.quantizer}


def folder_images(folder, size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size) from every image under ``folder`` (center-cropped, resized; genlab.data.folders)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 8:
        raise ValueError(f"size must be a multiple of 8 (VQ-VAE-2 downsamples by 8), e.g. 128 or 256; got {size!r}")
    return (image_folder(folder, size) * 255).round().to(torch.uint8)


def training_images(dataset: str, split: str) -> torch.Tensor:
    """uint8 images (N, 3, R, R): faces64 -> the faces world at 64x64 (train: 20,000; test: the first N_EVAL);
    photos32 -> 32x32 photo patches (train 2,786; test 459)."""
    if dataset == "faces64":
        return faces(split, n=None if split == "train" else N_EVAL, resolution=RESOLUTION, as_uint8=True)[0]
    if dataset == "photos32":
        return (photo_patches(split, size=32) * 255).round().to(torch.uint8)
    raise ValueError(f"unknown dataset {dataset!r}: faces64 or photos32")


def to_model(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float in [-1, 1]."""
    return x.float() / 127.5 - 1.0


def _train(model: nn.Module, config: RecipeConfig, job, name: str, images: torch.Tensor | None = None):
    """Fit on ``images`` (uint8, N x 3 x H x W), by default the recipe dataset's train split."""
    t = config.train
    opt = torch.optim.Adam(model.parameters(), lr=t.lr)
    state = TrainState(model=wrap_ddp(model), optimizer=opt)
    quants = quantizers(model)

    def step_fn(state: TrainState, batch) -> dict[str, torch.Tensor]:
        for group in opt.param_groups:
            group["lr"] = t.lr * warmup_cosine(state.step, t.steps, warmup=t.warmup)
        out = state.model(to_model(batch[0]))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        logs = {"mse": out.recon_loss.detach(), **{f"perplexity_{k}": q.perplexity for k, q in out.levels.items()}}
        if t.restart_every and (state.step + 1) % t.restart_every == 0:
            g = torch.Generator().manual_seed(job.seed * 1_000_003 + state.step)   # resume-exact restarts
            for k, vq in quants.items():
                logs[f"restarted_{k}"] = torch.tensor(float(len(vq.restart_dead_codes(out.levels[k].inputs, g))))
                vq.reset_usage()
        return logs

    images = training_images(t.dataset, "train") if images is None else images
    data = StepBatches(images, batch_size=t.batch_size, seed=job.seed)
    return fit(state, step_fn, data, t.steps, device=job.device, checkpoint=job.checkpoint,
               checkpoint_every=max(t.steps // 10, 1), resume=job.resume, meta=job.meta(config),
               progress=job.progress, desc=name)


@torch.no_grad()
def encode_codes(model: nn.Module, images: torch.Tensor, batch_size: int = 100) -> dict[str, torch.Tensor]:
    """uint8 images (N, 3, H, W) -> {level: codes (N, h, w) int64} on the CPU (eval mode)."""
    device = next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {}
    with evaluating(model):
        for i in range(0, len(images), batch_size):
            x = to_model(images[i:i + batch_size].to(device))
            levels = dict(zip(("top", "bottom"), model.encode(x))) if isinstance(model, VQVAE2) else \
                {"codes": model.encode(x)}
            for k, q in levels.items():
                out.setdefault(k, []).append(q.codes.cpu())
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def reconstruct(model: nn.Module, images: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """uint8 images (N, 3, H, W) -> reconstructions (N, 3, H, W) float in [0, 1] (eval mode)."""
    out = batched(lambda x: model(to_model(x)).recon.float(), images, batch_size=batch_size, module=model)
    return ((out + 1) / 2).clamp(0, 1)


@torch.no_grad()
def decode_codes(model: VQVAE2, top: torch.Tensor, bottom: torch.Tensor, batch_size: int = 100) -> torch.Tensor:
    """Code maps (N, h, w) and (N, 2h, 2w) int64 -> images (N, 3, H, W) float in [0, 1] on the CPU (eval mode,
    batched): decode any pairing of top and bottom codes (swaps, sampled or constant levels)."""
    if len(top) != len(bottom):
        raise ValueError(f"one top and one bottom code map per image: got {len(top)} and {len(bottom)}")
    out = batched(lambda t, b: model.decode_codes(t, b).float(), top, bottom, batch_size=batch_size, module=model)
    return ((out + 1) / 2).clamp(0, 1)


def evaluate_on(model: nn.Module, images: torch.Tensor, *, codes: dict[str, torch.Tensor] | None = None,
                recon: torch.Tensor | None = None) -> dict[str, float]:
    """recon_psnr, and per level perplexity_LEVEL / dead_codes_LEVEL over the code maps of ``images`` (uint8).
    ``codes`` (from :func:`encode_codes`) and ``recon`` (from :func:`reconstruct`) of these images, if given, are
    used instead of computing them again."""
    recon = reconstruct(model, images) if recon is None else recon
    if recon.shape != images.shape:
        raise ValueError(f"recon {tuple(recon.shape)} must be the reconstructions of images {tuple(images.shape)}")
    metrics = {"recon_psnr": psnr(recon, images.float() / 255)}
    codes = encode_codes(model, images) if codes is None else codes
    for k, level_codes in codes.items():
        vq = quantizers(model)[k]
        metrics[f"perplexity_{k}"] = vq.perplexity_of(level_codes)
        metrics[f"dead_codes_{k}"] = float(vq.num_codes - len(torch.unique(level_codes)))
    return metrics


def _evaluate_fn(dataset: str):
    def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
        return evaluate_on(model.to(device), training_images(dataset, "test"))
    return evaluate


_DATA = {"faces64": f"genlab.data.faces at 64x64: the train split (20,000 faces) for training, the first {N_EVAL} "
                    "test faces for the metrics",
         "photos32": "genlab.data.photos.photo_patches at 32x32: train split (2,786 patches of astronaut, coffee, "
                     "immunohistochemistry), test split (459 patches of chelsea) for the metrics"}


def _recipe(name: str, summary: str, config, dataset: str):
    levels = ("top", "bottom") if config("ci").model.levels == 2 else ("codes",)
    tol = {"recon_psnr": 0.05, **{f"dead_codes_{k}": 2.0 for k in levels}, **{f"perplexity_{k}": 1.0 for k in levels}}
    return Recipe(name=name, summary=summary, build=build, config=config,
                  train=lambda m, c, j: _train(m, c, j, name), evaluate=_evaluate_fn(dataset), metrics=tol,
                  data=_DATA[dataset])


VQVAE2_FACES = _recipe("vqvae2_faces64", "VQ-VAE-2 (top 8x8 + bottom 16x16 codes, K=256, EMA + restarts), faces 64x64",
                       lambda p: vqvae_config(p), "faces64")
VQVAE2_FACES_NOEMA = _recipe("vqvae2_faces64_noema", "VQ-VAE-2 with gradient-learnt codebooks, no restarts, faces 64",
                             lambda p: vqvae_config(p, ema=False, restarts=False), "faces64")
VQVAE2_FACES_NORESTART = _recipe("vqvae2_faces64_norestart", "VQ-VAE-2 with EMA codebooks but no dead-code restarts, "
                                 "faces 64x64", lambda p: vqvae_config(p, restarts=False), "faces64")
VQVAE_FACES = _recipe("vqvae_faces64", "one-level VQ-VAE (16x16 codes, K=1024: the same bits as VQ-VAE-2), faces 64",
                      lambda p: vqvae_config(p, levels=1, num_codes=1024), "faces64")
VQVAE2_FACES_BOTTLENECK = _recipe("vqvae2_faces64_bottleneck", "VQ-VAE-2 with a 16-code bottom codebook (4 bits per "
                                  "bottom code), faces 64x64", lambda p: vqvae_config(p, bottom_codes=16), "faces64")
VQVAE2_PHOTOS = _recipe("vqvae2_photos32", "VQ-VAE-2 (top 4x4 + bottom 8x8 codes, K=256) on 32x32 photo patches",
                        lambda p: vqvae_config(p, dataset="photos32"), "photos32")


def train_on_folder(folder, run=None, *, size: int = 128, out="runs", resume: bool = True,
                    progress: bool = True) -> VQVAE2:
    """Train the VQ-VAE-2 of ``run``'s profile on your images (every .png / .jpg under ``folder``, center-cropped and
    resized to ``size`` x ``size``, a multiple of 8) and return it in eval mode. Checkpoints go to
    ``out/vqvae2_folder{size}/PROFILE/last.pt`` (an interrupted run resumes there); nothing is shipped."""
    run = run if run is not None else setup("auto", 0)
    images = folder_images(folder, size)                    # fails early and clearly on a bad folder or size
    config = vqvae_config(run.profile, dataset="folder")
    config = replace(config, train=FolderTrain(**asdict(config.train), folder=str(Path(folder).expanduser().resolve()),
                                               size=size))
    name = f"vqvae2_folder{size}"
    job = TrainJob(profile=run.profile, device=run.device, seed=run.seed, command=f"train_on_folder({str(folder)!r}, "
                   f"size={size})", data=f"{len(images)} images under {config.train.folder} at {size}x{size}",
                   checkpoint=Path(out) / name / run.profile / "last.pt", resume=resume, progress=progress)
    model = prepare_model(build(config.as_dict()["model"]), job.device)
    _train(model, config, job, name, images)
    return model.eval()
