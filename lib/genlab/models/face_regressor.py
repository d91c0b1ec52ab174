"""A small CNN that reads the named factors of a procedural face back from its picture: the ruler of the GAN notebooks.

Two uses (DESIGN.md, "Embedded data"):

* its predictions say which factors a generator controls -- e.g. which factors follow the coarse styles in StyleGAN's
  style mixing, or how much noise inputs move the pose (genlab.worlds.faces knows the true factors of every real face);
* its penultimate embedding (:meth:`FaceRegressor.features`) is the feature space of "FID-faces" / "KID-faces"
  (genlab.metrics.fid), never passed off as Inception FID.

Architecture: five 3x3 conv + batch-norm + ReLU layers, three of them with stride 2 (64 -> 32 -> 16 -> 8), a last conv,
global average pooling to a ``channels[-1]``-dim embedding, one linear layer to the factors in normalized units
([-1, 1] per factor: genlab.worlds.faces.normalize_factors). Trained with mean squared error on freshly rendered faces
(every step draws new factors and detail seeds, as a function of the step: unlimited data, exact resume), half of them
rendered at 32x32 and upsampled, so the net reads 32x32 generators as well as 64x64 ones. Evaluated on the fixed test
split: per-factor R^2 = 1 - SSE / SST, stored in the shipped checkpoint's provenance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.worlds.faces import (FACTOR_NAMES, N_FACTORS, denormalize_factors, faces, normalize_factors,
                                 render_faces, sample_factors)
from genlab.nn.eval_mode import evaluating
from genlab.train import TrainState, autocast, fit, make_ema, warmup_cosine, wrap_ddp
from genlab.zoo import Recipe, TrainJob


@dataclass
class FaceRegressorConfig:
    """resolution: input size the net runs at (other sizes are resized to it); channels: widths of the four stages
    (the last is the embedding size)."""

    resolution: int = 64
    channels: tuple[int, int, int, int] = (16, 32, 64, 128)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class FaceRegressor(nn.Module):
    """x: (B, 3, H, H) in [0, 1] (resized to config.resolution) -> normalized factors (B, N_FACTORS), each ~[-1, 1]."""

    def __init__(self, config: FaceRegressorConfig | None = None):
        super().__init__()
        self.config = cfg = config or FaceRegressorConfig()
        c1, c2, c3, c4 = cfg.channels
        self.trunk = nn.Sequential(
            _conv_bn(3, c1), _conv_bn(c1, c2, 2),          # R   -> R/2
            _conv_bn(c2, c2), _conv_bn(c2, c3, 2),         # R/2 -> R/4
            _conv_bn(c3, c3), _conv_bn(c3, c4, 2),         # R/4 -> R/8
            _conv_bn(c4, c4))
        self.head = nn.Linear(c4, N_FACTORS)

    @property
    def num_features(self) -> int:
        """Width of :meth:`features` (what torchmetrics' FID/KID need to know)."""
        return self.config.channels[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding: (B, 3, H, H) in [0, 1], any H >= 16 (resized to config.resolution) -> (B,
        channels[-1]) >= 0 (ReLU, then average pooling)."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[2] < 16:
            raise ValueError(f"FaceRegressor expects square RGB images of shape (B, 3, H, H), H >= 16, in [0, 1], got "
                             f"{tuple(x.shape)}")
        x = resize(x, self.config.resolution)
        return self.trunk(x * 2 - 1).mean(dim=(2, 3))      # global average pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, batch_size: int = 100) -> torch.Tensor:
        """Factors in their own units (B, N_FACTORS) for images (B, 3, H, W) in [0, 1] of any square size >= 16."""
        dev = next(self.parameters()).device
        with evaluating(self):
            out = [self(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
        return denormalize_factors(torch.cat(out).clamp(-1, 1))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of (B, C, H, W) to (B, C, size, size); identity if already so."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def r2_per_factor(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per column: R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2, (N, F) -> (F,)."""
    sse = ((true - pred) ** 2).sum(0)
    sst = ((true - true.mean(0)) ** 2).sum(0)
    return 1 - sse / sst


# ------------------------------------------------------------------------------------------------------ recipe
DATA = ("genlab.data.faces: training faces rendered afresh each step (factors ~ sample_factors, new detail seeds, step-"
        "indexed generator), half at 32x32 upsampled to 64; test split faces('test') (first 2000) for the R^2 metrics")
N_TEST = 2000


def build(model_config: dict) -> FaceRegressor:
    cfg = dict(model_config)
    cfg["channels"] = tuple(cfg["channels"])
    return FaceRegressor(FaceRegressorConfig(**cfg))


def config(profile: str) -> dict:
    """cpu and gpu train the same network (gpu longer); ci a narrow one for a few steps (a smoke run of the recipe:
    notebooks and metrics load the shipped cpu checkpoint in every profile)."""
    model = FaceRegressorConfig(channels=(4, 8, 8, 16)) if profile == "ci" else FaceRegressorConfig()
    steps = {"ci": 4, "cpu": 3000, "gpu": 20000}[profile]
    return {"model": asdict(model),
            "train": {"steps": steps, "batch_size": {"ci": 8, "cpu": 64, "gpu": 256}[profile], "lr": 2e-3,
                      "weight_decay": 1e-4, "warmup": 0.02, "ema_decay": 0.995, "low_res_share": 0.5}}


def training_batch(step: int, batch_size: int, resolution: int, low_res_share: float, seed: int = 0):
    """The batch of ``step``: fresh factors and detail seeds from a generator seeded by (seed, step), so a resumed run
    sees exactly the batches of an uninterrupted one. Returns images (B, 3, R, R) in [0, 1], normalized factors."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    f = sample_factors(batch_size, generator=g)
    detail = torch.randint(0, 2**31 - 1, (batch_size,), generator=g)
    x = render_faces(f, resolution, detail_seeds=detail)
    n_low = int(round(low_res_share * batch_size))
    if n_low:
        x[:n_low] = resize(resize(x[:n_low], resolution // 2), resolution)   # a 32x32 face as the metrics see it
    return x, normalize_factors(f)


def train(model: FaceRegressor, config: dict, job: TrainJob) -> TrainState:
    """AdamW with warm-up + cosine decay on the mean squared error of the normalized factors, weight EMA."""
    t, r = config["train"], config["model"]["resolution"]
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    state = TrainState(model=wrap_ddp(model), optimizer=opt, ema=make_ema(model, t["ema_decay"]))

    def step_fn(state: TrainState, batch) -> dict[str, torch.Tensor]:
        x, f = batch
        for group in opt.param_groups:
            group["lr"] = t["lr"] * warmup_cosine(state.step, t["steps"], warmup=t["warmup"])
        with autocast(job.device):
            loss = F.mse_loss(state.model(x).float(), f)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"mse": loss}

    def data(step: int):
        return training_batch(step, t["batch_size"], r, t["low_res_share"], job.seed)

    return fit(state, step_fn, data, t["steps"], device=job.device, checkpoint=job.checkpoint,
               checkpoint_every=max(t["steps"] // 10, 1), resume=job.resume, meta=job.meta(config),
               progress=job.progress, desc="face_regressor")


def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    """R^2 per factor on the first 2000 test faces at 64x64 (``test_r2_<factor>``), their mean (``test_r2_mean``), and
    the mean at 32x32 (``test_r2_mean_32``: the same faces rendered at 32, as a 32x32 generator is read)."""
    model = model.to(device)
    out = {}
    for res in (64, 32):
        x, f = faces("test", n=N_TEST, resolution=res)
        r2 = r2_per_factor(model.predict(x), f)
        if res == 64:
            out.update({f"test_r2_{name}": float(v) for name, v in zip(FACTOR_NAMES, r2)})
            out["test_r2_mean"] = float(r2.mean())
        else:
            out["test_r2_mean_32"] = float(r2.mean())
    return out


RECIPE = Recipe(
    name="face_regressor",
    summary="small CNN regressing the procedural faces' factors; FID-faces feature net and factor ruler",
    build=build, config=config, train=train, evaluate=evaluate,
    metrics={"test_r2_mean": 0.002, "test_r2_mean_32": 0.002},
    data=DATA, seed=0, ship_dtype=torch.float16,
)
