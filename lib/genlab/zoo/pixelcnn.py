"""Zoo recipes of PixelCNN and Gated PixelCNN (genlab.models.pixelcnn) on MNIST 5k, and :func:`class_bits`.

AdamW with warm-up + cosine decay on bits/dim, gradient clipping, weight EMA; the best EMA weights on 400 held-out
train digits are the ones shipped (early stopping without the test split). Conditional models are also scored by the
shipped digit classifier on class-conditional samples. A recipe's config is typed: the model's PixelCNNConfig or
GatedPixelCNNConfig and the training settings :class:`PixelCNNTrain`.

``gated_pixelcnn_mnist_cfg`` is the conditional network fine-tuned with **label dropout** (each label replaced by
``NULL_LABEL``, h = 0, with probability ``label_dropout``) so that one network gives both p(x | y) and p(x): what
classifier-free guidance needs (:mod:`genlab.models.pixelcnn_sampling`). It starts from the shipped
``gated_pixelcnn_mnist_cond`` weights (``init_from``; said in its provenance) rather than from scratch, to fit a CPU
budget; its evaluation adds the bits/dim without labels and the digit classifier's accuracy of guided samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from genlab.checkpoints import load_checkpoint, save_checkpoint, shipped_path
from genlab.data.mnist import mnist5k
from genlab.metrics.diversity import within_class_spread
from genlab.metrics.likelihood import bits_per_dim, evaluate_bits_per_subpixel, evaluate_bpd
from genlab.models.pixelcnn import NULL_LABEL, GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig
from genlab.models.pixelcnn_sampling import sample_cached
from genlab.train import StepBatches, TrainState, autocast
from genlab.zoo.digit_classifier import judge_digits
from genlab.zoo.registry import Recipe, RecipeConfig
from genlab.zoo.supervised import fit_supervised

DATA = ("genlab.data.mnist5k (uint8): train split (4000 digits) -- the first 3600 for training, the last 400 held out to "
        "keep the best EMA weights; test split (1000 digits) for test_bpd")
N_HELD_OUT = 400
N_JUDGED = 100     # class-conditional samples judged by the digit classifier (10 per class)
N_GUIDED = 200     # guided samples per guidance weight (20 per class)
GUIDANCE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class PixelCNNTrain:
    """The training settings of the PixelCNN recipes: ``steps`` of AdamW(``lr``) with a warm-up over the first
    ``warmup`` share of the steps then cosine decay, batches of ``batch_size``, gradient norm clipped at ``clip``, the
    weight EMA's decay; every ``eval_every`` steps the EMA is scored on the held-out digits (and checkpointed)."""

    steps: int
    batch_size: int
    lr: float = 3e-3
    warmup: float = 0.03
    ema_decay: float = 0.995
    clip: float = 1.0
    eval_every: int = field(kw_only=True)   # keyword-only: no default, yet stored last as it always was


def _train_settings(steps: int, batch_size: int) -> PixelCNNTrain:
    return PixelCNNTrain(steps=steps, batch_size=batch_size, eval_every=max(steps // 8, 1))


def _pixelcnn_config(profile: str) -> RecipeConfig:
    """cpu: sized to train in ~40 min on one CPU thread; ci: a smoke run of the recipe (notebooks load the shipped
    cpu checkpoint in every profile); gpu: a wider, deeper network trained longer."""
    model = {"ci": PixelCNNConfig(channels=8, n_layers=2, head_channels=16),
             "cpu": PixelCNNConfig(channels=32, n_layers=5, head_channels=64),
             "gpu": PixelCNNConfig(channels=128, n_layers=12, head_channels=256)}[profile]
    train = {"ci": _train_settings(4, 16), "cpu": _train_settings(1500, 32),
             "gpu": _train_settings(20000, 64)}[profile]
    return RecipeConfig(model, train)


def _gated_config(profile: str, n_classes: int = 0, attention_heads: int = 0) -> RecipeConfig:
    """The Gated PixelCNN recipes; attention_heads > 0 adds one causal self-attention layer (the same net otherwise,
    trained the same way: an ablation of global context)."""
    model = {"ci": GatedPixelCNNConfig(channels=8, n_layers=2, head_channels=16),
             "cpu": GatedPixelCNNConfig(channels=48, n_layers=6, head_channels=96),
             "gpu": GatedPixelCNNConfig(channels=128, n_layers=12, head_channels=256)}[profile]
    model = replace(model, n_classes=n_classes, attention_heads=attention_heads)
    train = {"ci": _train_settings(4, 16), "cpu": _train_settings(2400, 32),
             "gpu": _train_settings(20000, 64)}[profile]
    return RecipeConfig(model, train)


@dataclass(frozen=True)
class GuidedTrain(PixelCNNTrain):
    """:class:`PixelCNNTrain` + label dropout (each label -> NULL_LABEL with probability ``label_dropout``) and the
    shipped checkpoint the run starts from (``init_from``; empty: from scratch)."""

    label_dropout: float = 0.2
    init_from: str = ""


def _guided_config(profile: str) -> RecipeConfig:
    """The conditional net of ``gated_pixelcnn_mnist_cond``, fine-tuned 600 steps at lr 1e-3 with label dropout 0.2
    (cpu, ~10 min on one thread); ci: a smoke run from scratch (the ci net is another size)."""
    base = _gated_config(profile, n_classes=10)
    steps, batch = {"ci": (4, 16), "cpu": (600, 32), "gpu": (4000, 64)}[profile]
    train = GuidedTrain(steps=steps, batch_size=batch, lr=1e-3, warmup=0.05, eval_every=max(steps // 6, 1),
                        label_dropout=0.2, init_from="" if profile == "ci" else "gated_pixelcnn_mnist_cond")
    return RecipeConfig(base.model, train)


def _train(model: nn.Module, config: RecipeConfig, job, name: str) -> TrainState:
    """AdamW with warm-up + cosine decay on bits/dim, gradient clipping, weight EMA; every ``eval_every`` steps the
    EMA's bits/dim on the held-out 400 train digits, and the best EMA weights are the ones returned (early stopping
    without looking at the test split)."""
    t = config.train
    conditional = bool(getattr(config.model, "n_classes", 0))   # PixelCNNConfig has no classes
    dropout = getattr(t, "label_dropout", 0.0)
    if getattr(t, "init_from", ""):
        model.load_state_dict(load_checkpoint(shipped_path(t.init_from)).model_state)   # fine-tune a shipped net
    x, y = mnist5k("train", as_uint8=True)
    x_tr, y_tr, x_val, y_val = x[:-N_HELD_OUT], y[:-N_HELD_OUT], x[-N_HELD_OUT:], y[-N_HELD_OUT:]
    best_path = job.checkpoint.with_name("best.pt") if job.checkpoint is not None else None

    def loss_fn(state: TrainState, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        xb, yb = batch
        if dropout:                                                  # label dropout: y -> "no label" (h = 0)
            g = torch.Generator().manual_seed(job.seed * 1_000_003 + state.step)    # resume-exact
            yb = torch.where(torch.rand(len(yb), generator=g).to(yb.device) < dropout, NULL_LABEL, yb)
        with autocast(job.device):
            logits = state.model(xb, yb) if conditional else state.model(xb)
        loss = bits_per_dim(logits.float(), xb)                     # -log2 p(x) / (C H W): the exact likelihood
        return loss, {"bpd": loss}

    best = {"val": float("inf"), "weights": None}

    def callback(state: TrainState, logs: dict) -> None:
        if state.step % t.eval_every and state.step != t.steps:
            return
        val = evaluate_bpd(state.ema.module, x_val.to(job.device), y_val.to(job.device) if conditional else None)
        state.history.setdefault("val_bpd_step", []).append(state.step)
        state.history.setdefault("val_bpd", []).append(val)
        if val < best["val"]:
            best["val"], best["weights"] = val, {k: v.detach().clone() for k, v in state.ema.module.state_dict().items()}
            if best_path is not None:
                save_checkpoint(best_path, model_state=best["weights"], config=config.as_dict(),
                                metrics={"val_bpd": val}, seed=job.seed, command=job.command, data=job.data,
                                train_seconds=state.seconds)

    if best_path is not None and job.resume and best_path.exists() and job.checkpoint.exists():
        ck = load_checkpoint(best_path)
        best["val"], best["weights"] = float(ck.meta["metrics"]["val_bpd"]), ck.model_state
    data = StepBatches(x_tr, y_tr, batch_size=t.batch_size, seed=job.seed)
    state = fit_supervised(model, config, job, loss_fn, data, desc=name, weight_decay=0.0, clip=t.clip,
                           checkpoint_every=t.eval_every, callback=callback)
    if best["weights"] is not None:
        state.ema.module.load_state_dict(best["weights"])          # the best held-out EMA weights
    return state


def _evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    """test_bpd on the whole test split (1000 digits), test_bpd_first100 on its first 100 (a quick drift check for the
    test suite); for a class-conditional model also the digit classifier's accuracy on 100 cached samples (10 per
    class, seed 0)."""
    x, y = mnist5k("test", as_uint8=True)
    conditional = isinstance(model, GatedPixelCNN) and model.config.n_classes > 0
    y = y if conditional else None
    metrics = {"test_bpd": evaluate_bpd(model.to(device), x, y),
               "test_bpd_first100": evaluate_bpd(model, x[:100], None if y is None else y[:100])}
    if conditional:
        labels = torch.arange(N_JUDGED) % model.config.n_classes
        samples = sample_cached(model, N_JUDGED, 28, y=labels.to(device), generator=torch.Generator().manual_seed(0))
        metrics["conditional_sample_accuracy"] = judge_digits(samples, labels, device)
    return metrics


def guided_samples(model: GatedPixelCNN, guidance: float, n: int = N_GUIDED, *, seed: int = 0,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """n class-conditional samples (n, 1, 28, 28) uint8 with classifier-free guidance weight ``guidance`` and their
    labels (n,) (i % 10), from ``seed``."""
    labels = torch.arange(n) % model.config.n_classes
    samples = sample_cached(model, n, 28, y=labels.to(device), generator=torch.Generator().manual_seed(seed),
                            guidance=guidance)
    return samples, labels


def _evaluate_guided(model: nn.Module, device: torch.device) -> dict[str, float]:
    """:func:`_evaluate` + test_bpd_null (no labels: the unconditional model inside) and, per guidance weight w in
    GUIDANCE_WEIGHTS, the digit classifier's accuracy and the within-class spread of N_GUIDED guided samples (seed 0)."""
    metrics = _evaluate(model, device)
    x, _ = mnist5k("test", as_uint8=True)
    metrics["test_bpd_null"] = evaluate_bpd(model, x, torch.full((len(x),), NULL_LABEL))
    for w in GUIDANCE_WEIGHTS:
        samples, labels = guided_samples(model, w, device=device)
        metrics[f"guided_accuracy_w{w:g}"] = judge_digits(samples, labels, device)
        metrics[f"guided_spread_w{w:g}"] = within_class_spread(samples, labels)
    return metrics


@torch.no_grad()
def class_bits(model: "GatedPixelCNN", x_uint8: torch.Tensor, *, batch_size: int = 16) -> torch.Tensor:
    """-log2 p(x | y) in bits per image of the images ``x_uint8`` (N, C, H, W) under every class y of a
    class-conditional model -> (N, n_classes). With a uniform class prior, Bayes' rule makes the model a classifier:
    argmax_y p(y | x) = argmin_y class_bits[:, y]."""
    k = getattr(getattr(model, "config", None), "n_classes", 0)
    if not k:
        raise ValueError("class_bits needs a class-conditional model (a GatedPixelCNN with n_classes > 0)")
    n = len(x_uint8)
    return torch.stack([evaluate_bits_per_subpixel(model, x_uint8, torch.full((n,), c, dtype=torch.long),
                                                   batch_size=batch_size).flatten(1).sum(1) for c in range(k)], 1)


def _build_pixelcnn(cfg: dict) -> PixelCNN:
    return PixelCNN(PixelCNNConfig(**cfg))


def _build_gated(cfg: dict) -> GatedPixelCNN:
    return GatedPixelCNN(GatedPixelCNNConfig(**cfg))


def _recipes():
    tol = {"test_bpd": 0.002, "test_bpd_first100": 0.002}
    return (
        Recipe(name="pixelcnn_mnist", summary="PixelCNN (mask A 7x7, residual mask-B 3x3 layers) on MNIST 5k",
               build=_build_pixelcnn, config=_pixelcnn_config,
               train=lambda m, c, j: _train(m, c, j, "pixelcnn_mnist"), evaluate=_evaluate, metrics=tol, data=DATA),
        Recipe(name="gated_pixelcnn_mnist", summary="Gated PixelCNN (vertical + horizontal stacks) on MNIST 5k",
               build=_build_gated, config=_gated_config,
               train=lambda m, c, j: _train(m, c, j, "gated_pixelcnn_mnist"), evaluate=_evaluate, metrics=tol,
               data=DATA),
        Recipe(name="gated_pixelcnn_mnist_cond", summary="class-conditional Gated PixelCNN (one-hot h) on MNIST 5k",
               build=_build_gated, config=lambda profile: _gated_config(profile, n_classes=10),
               train=lambda m, c, j: _train(m, c, j, "gated_pixelcnn_mnist_cond"), evaluate=_evaluate, metrics=tol,
               data=DATA),
        Recipe(name="gated_pixelcnn_mnist_cond_attn",
               summary="class-conditional Gated PixelCNN + one causal self-attention layer (2 heads) on MNIST 5k",
               build=_build_gated, config=lambda profile: _gated_config(profile, n_classes=10, attention_heads=2),
               train=lambda m, c, j: _train(m, c, j, "gated_pixelcnn_mnist_cond_attn"), evaluate=_evaluate,
               metrics=tol, data=DATA),
        Recipe(name="gated_pixelcnn_mnist_cfg",
               summary="the conditional Gated PixelCNN fine-tuned with label dropout 0.2 (classifier-free guidance)",
               build=_build_gated, config=_guided_config,
               train=lambda m, c, j: _train(m, c, j, "gated_pixelcnn_mnist_cfg"), evaluate=_evaluate_guided,
               metrics=tol, data=DATA + "; starts from the shipped gated_pixelcnn_mnist_cond weights (init_from)"),
    )


(PIXELCNN_MNIST, GATED_PIXELCNN_MNIST, GATED_PIXELCNN_MNIST_COND, GATED_PIXELCNN_MNIST_COND_ATTN,
 GATED_PIXELCNN_MNIST_CFG) = _recipes()
