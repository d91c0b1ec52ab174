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

from dataclasses import dataclass

import torch
from torch import nn

from genlab.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from genlab.models.pixelcnn_sampling import sample_cached, sample_naive
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
               generator: torch.Generator | None = None, cached: bool = True, batch_size: int = 256) -> torch.Tensor:
        """n code maps (n, H, W) int64 (CPU); for the bottom prior ``cond`` is the (n, H/2, W/2) top codes.

        Sampled ``batch_size`` maps at a time, one after another from the same ``generator`` (the cached sampler keeps
        every layer's activations for the whole batch: 2000 bottom maps at once peak at about 3.5 GB)."""
        sampler = sample_cached if cached else sample_naive
        device = next(self.parameters()).device
        out = []
        with evaluating(self):
            for i in range(0, n, batch_size):
                m = min(batch_size, n - i)
                h = self.condition_map(None if cond is None else cond[i:i + m].to(device))
                out.append(sampler(self.pixelcnn, m, size, h=h, generator=generator))
        return torch.cat(out) if out else torch.empty(0, *((size, size) if isinstance(size, int) else size),
                                                      dtype=torch.long)


def build(model_config: dict) -> CodePrior:
    return CodePrior(CodePriorConfig(**model_config))
