"""Autoregressive priors over VQ-VAE-2 codes (Razavi et al. 2019, Sec. 3.2, Fig. 2b, Algorithm 2).

After the VQ-VAE-2 is trained, its encoder turns every training image into a top code map (H/8 x W/8) and a bottom
code map (H/4 x W/4). Two priors are fitted to those codes, each a K-way softmax per position in raster order:

    p(top)            = prod_i p(top_i | top_<i)                        (the top prior: global structure)
    p(bottom | top)   = prod_j p(bottom_j | bottom_<j, top)             (the bottom prior: detail given structure)

and a new image is decoded from codes sampled top first, then bottom given top (Algorithm 2).

Both priors are the course's Gated PixelCNN (:class:`genlab.models.pixelcnn.GatedPixelCNN`) over codes (``vocab`` = K,
an embedding in, a K-way softmax out). The top prior adds one causal self-attention layer (``attention_heads``;
PixelSNAIL-like, not PixelSNAIL: the paper's top prior has many attention blocks), so every top code reads all the
earlier ones. The bottom prior is conditioned on the *whole* top map (it is known when the bottom is sampled): a
conditioning stack embeds the top codes, runs residual blocks and upsamples 2x to the bottom's size, and that feature
map h enters every gated layer as y = tanh(W_f * x + V_f * h) . sigmoid(W_g * x + V_g * h) (the spatial form of the
conditional PixelCNN's Eq. 4). Sampling uses the cached sampler of :mod:`genlab.models.pixelcnn`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from genlab.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, sample_cached, sample_naive
from genlab.models.vqvae import ResBlock
from genlab.nn.eval_mode import evaluating


@dataclass
class CodePriorConfig:
    """num_codes: K of the modelled codes; channels, n_layers, first_kernel, kernel, head_channels: the Gated
    PixelCNN; code_embedding: input embedding size; attention_heads: 0 (none) or the heads of the causal attention
    layer; cond_codes: K of the top codes this prior is conditioned on (0: unconditional, the top prior);
    cond_channels / cond_res: width and residual blocks of the conditioning stack."""

    num_codes: int = 256
    channels: int = 64
    n_layers: int = 8
    first_kernel: int = 5
    kernel: int = 3
    head_channels: int = 128
    code_embedding: int = 32
    attention_heads: int = 0
    cond_codes: int = 0
    cond_channels: int = 32
    cond_res: int = 2


class CodePrior(nn.Module):
    """p(codes) or p(codes | top codes).

    forward(codes (B, H, W) int64, cond (B, H/2, W/2) int64 top codes or None) -> logits (B, K, H, W).
    """

    def __init__(self, config: CodePriorConfig | None = None):
        super().__init__()
        self.config = c = config or CodePriorConfig()
        self.pixelcnn = GatedPixelCNN(GatedPixelCNNConfig(
            in_channels=1, channels=c.channels, n_layers=c.n_layers, first_kernel=c.first_kernel, kernel=c.kernel,
            head_channels=c.head_channels, vocab=c.num_codes, code_embedding=c.code_embedding,
            attention_heads=c.attention_heads, cond_channels=c.cond_channels if c.cond_codes else 0))
        if c.cond_codes:
            self.cond_embed = nn.Embedding(c.cond_codes, c.cond_channels)
            self.cond_net = nn.Sequential(nn.Conv2d(c.cond_channels, c.cond_channels, 3, padding=1),
                                          *[ResBlock(c.cond_channels, c.cond_channels) for _ in range(c.cond_res)],
                                          nn.ReLU(),
                                          nn.ConvTranspose2d(c.cond_channels, c.cond_channels, 4, stride=2, padding=1))

    def condition_map(self, cond: torch.Tensor | None) -> torch.Tensor | None:
        """Top codes (B, h, w) -> the conditioning feature map h (B, cond_channels, 2h, 2w); None for the top prior."""
        c = self.config
        if not c.cond_codes:
            if cond is not None:
                raise ValueError("this prior is unconditional (the top prior): call it without top codes")
            return None
        if not isinstance(cond, torch.Tensor) or cond.dim() != 3 or cond.is_floating_point():
            got = tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__
            raise ValueError(f"the bottom prior is conditioned on top code maps (B, h, w) int64, got {got}")
        if cond.numel() and (int(cond.min()) < 0 or int(cond.max()) >= c.cond_codes):
            raise ValueError(f"top codes must lie in [0, {c.cond_codes}), got [{int(cond.min())}, {int(cond.max())}]")
        return self.cond_net(self.cond_embed(cond.long()).permute(0, 3, 1, 2))

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.condition_map(cond)
        if h is not None and h.shape[-2:] != codes.shape[-2:]:
            raise ValueError(f"the bottom codes {tuple(codes.shape)} must be twice the size of the top codes "
                             f"{tuple(cond.shape)}")
        return self.pixelcnn(codes, h=h)

    @torch.no_grad()
    def sample(self, n: int, size: tuple[int, int] | int, cond: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None, cached: bool = True) -> torch.Tensor:
        """n code maps (n, H, W) int64 (CPU); for the bottom prior ``cond`` is the (n, H/2, W/2) top codes."""
        sampler = sample_cached if cached else sample_naive
        with evaluating(self):
            h = self.condition_map(None if cond is None else cond.to(next(self.parameters()).device))
            return sampler(self.pixelcnn, n, size, h=h, generator=generator)


def build(model_config: dict) -> CodePrior:
    return CodePrior(CodePriorConfig(**model_config))


# ------------------------------------------------------------------------------------------------------ recipes
VQVAE = "vqvae2_faces64"      # the shipped VQ-VAE-2 whose codes the priors model
N_VAL = 1000                  # the last 1000 train faces' codes: held out from prior training (not used to select)


_CODES: dict[str, dict[str, torch.Tensor]] = {}


@torch.no_grad()
def codes(split: str) -> dict[str, torch.Tensor]:
    """{"top": (N, 8, 8), "bottom": (N, 16, 16)} int64 codes from the shipped VQ-VAE-2, encoded once per process:
    split "train" (the faces train split without its last N_VAL faces), "val" (those N_VAL) or "test" (the first
    2000 test faces)."""
    from genlab.checkpoints import load_pretrained
    from genlab.models.vqvae_zoo import encode_codes, training_images

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if split not in _CODES:
        images = training_images("faces64", "test" if split == "test" else "train")
        images = {"train": images[:-N_VAL], "val": images[-N_VAL:], "test": images}[split]
        _CODES[split] = encode_codes(load_pretrained(VQVAE).model, images)
    return _CODES[split]


def prior_config(profile: str, level: str) -> dict:
    top = level == "top"
    model = (CodePriorConfig(channels=64, n_layers=8, first_kernel=5, head_channels=128, attention_heads=4) if top
             else CodePriorConfig(channels=48, n_layers=6, first_kernel=7, head_channels=96, cond_codes=256))
    if profile == "ci":
        model = CodePriorConfig(channels=8, n_layers=2, first_kernel=3, head_channels=8, code_embedding=8,
                                attention_heads=2 if top else 0, cond_codes=0 if top else 256, cond_channels=8,
                                cond_res=1)
    elif profile == "gpu":
        model = CodePriorConfig(channels=128, n_layers=16, first_kernel=5 if top else 7, head_channels=256,
                                attention_heads=8 if top else 0, cond_codes=0 if top else 256, cond_channels=64)
    train = {"ci": dict(steps=4, batch_size=8), "cpu": dict(steps=2000, batch_size=64 if top else 32),
             "gpu": dict(steps=30000, batch_size=128)}[profile]
    return {"model": asdict(model), "train": {**train, "lr": 2e-3, "warmup": 0.02, "ema_decay": 0.995, "clip": 1.0,
                                             "level": level}}


def _train(model: CodePrior, config: dict, job, name: str):
    from genlab.metrics.likelihood import bits_per_code
    from genlab.train import StepBatches, TrainState, fit, make_ema, warmup_cosine, wrap_ddp

    t = config["train"]
    c = codes("train")
    top, bottom = c["top"], c["bottom"]
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=0.0)
    state = TrainState(model=wrap_ddp(model), optimizer=opt, ema=make_ema(model, t["ema_decay"]))

    def step_fn(state: TrainState, batch) -> dict[str, torch.Tensor]:
        for group in opt.param_groups:
            group["lr"] = t["lr"] * warmup_cosine(state.step, t["steps"], warmup=t["warmup"])
        tb, bb = batch
        logits = state.model(tb) if t["level"] == "top" else state.model(bb, tb)
        loss = bits_per_code(logits.float(), tb if t["level"] == "top" else bb)     # -log2 p(code), averaged
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["clip"])
        opt.step()
        return {"bits": loss}

    return fit(state, step_fn, StepBatches(top, bottom, batch_size=t["batch_size"], seed=job.seed), t["steps"],
               device=job.device, checkpoint=job.checkpoint, checkpoint_every=max(t["steps"] // 10, 1),
               resume=job.resume, meta=job.meta(config), progress=job.progress, desc=name)


@torch.no_grad()
def prior_bits(model: CodePrior, top: torch.Tensor, bottom: torch.Tensor | None = None,
               batch_size: int = 64) -> float:
    """Mean bits per code of the top codes (bottom None) or of the bottom codes given the top ones."""
    from genlab.metrics.likelihood import bits_per_code

    device = next(model.parameters()).device
    total, n = 0.0, 0
    with evaluating(model):
        for i in range(0, len(top), batch_size):
            tb = top[i:i + batch_size].to(device)
            if bottom is None:
                bits = bits_per_code(model(tb).float(), tb)
            else:
                bb = bottom[i:i + batch_size].to(device)
                bits = bits_per_code(model(bb, tb).float(), bb)
            total, n = total + float(bits) * len(tb), n + len(tb)
    return total / n


def _evaluate_fn(level: str):
    def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
        test, val = codes("test"), codes("val")
        if level == "top":
            return {"test_bits_per_code": prior_bits(model.to(device), test["top"]),
                    "val_bits_per_code": prior_bits(model, val["top"])}
        return {"test_bits_per_code": prior_bits(model.to(device), test["top"], test["bottom"]),
                "val_bits_per_code": prior_bits(model, val["top"], val["bottom"])}
    return evaluate


_DATA = (f"codes of the shipped {VQVAE} checkpoint: faces train split at 64x64 without its last {N_VAL} faces for "
         f"training, those {N_VAL} for val_bits_per_code, the first 2000 test faces for test_bits_per_code")


def _recipe(level: str):
    from genlab.zoo import Recipe

    name = f"vqvae2_faces64_prior_{level}"
    summary = ("top prior: Gated PixelCNN + causal self-attention over the 8x8 top codes" if level == "top" else
               "bottom prior: Gated PixelCNN over the 16x16 bottom codes, conditioned on the top codes")
    return Recipe(name=name, summary=summary, build=build, config=lambda p: prior_config(p, level),
                  train=lambda m, c, j: _train(m, c, j, name), evaluate=_evaluate_fn(level),
                  metrics={"test_bits_per_code": 0.003, "val_bits_per_code": 0.003}, data=_DATA)


PRIOR_TOP, PRIOR_BOTTOM = _recipe("top"), _recipe("bottom")
