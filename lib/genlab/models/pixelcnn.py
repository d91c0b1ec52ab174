"""PixelCNN (van den Oord et al. 2016a, "Pixel Recurrent Neural Networks", Sec. 3.4) and Gated / Conditional PixelCNN
(van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN Decoders", Sec. 2).

Both models define p(x) = prod_i p(x_i | x_<i) with a 256-way softmax per sub-pixel (genlab.metrics.likelihood).

* :class:`PixelCNN`: a 7x7 mask-A convolution, then residual 3x3 mask-B convolutions, then two 1x1 mask-B layers.
  Stacked masked 3x3 kernels never reach the pixels up and to the right of the current one that lie more than one
  row up per column to the right: the *blind spot* (2016b, Fig. 1; measured by genlab.metrics.receptive_field).
* :class:`GatedPixelCNN`: a *vertical* stack (everything in the rows above) and a *horizontal* stack (the current row,
  to the left), which together see the whole causal context; gated units y = tanh(W_f * x) . sigmoid(W_g * x) (Eq. 2);
  the vertical stack feeds the horizontal one through a 1x1 convolution (it only ever sees rows strictly above, so the
  link cannot leak); residual connections in the horizontal stack and skip connections to the output; optional
  conditioning on a vector h: y = tanh(W_f * x + V_f^T h) . sigmoid(W_g * x + V_g^T h) (Eq. 4), with h a one-hot class
  label, a learned class embedding, or any vector the caller passes. With one-hot labels, ``y = NULL_LABEL`` (-1)
  means "no label": h = 0, the empty condition of classifier-free guidance (Ho & Salimans 2021) for a model trained
  with label dropout (genlab.zoo.pixelcnn, ``gated_pixelcnn_mnist_cfg``).

Model contract (shared with genlab.models.pixelrnn and genlab.metrics.receptive_field):

    model(x) -> logits (B, 256, C, H, W)       (conditional models: model(x, y) or model(x, h=h))
    x: (B, C, H, W) uint8 (or another integer dtype) with values 0..255, or float in [0, 1] (value / 255; used to take
       gradients w.r.t. the input). Inside, pixels are mapped to [-1, 1].

Sampling: :mod:`genlab.models.pixelcnn_sampling` (a naive and a cached sampler that give identical images).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from genlab.nn.attention import CausalSelfAttention
from genlab.nn.masked import MaskedConv2d

N_LEVELS = 256
NULL_LABEL = -1    # "no label" for a one-hot class-conditional model: h = 0 (label dropout, classifier-free guidance)


# -------------------------------------------------------------------------------------------------- inputs, gates
def model_input(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Validate images for an autoregressive model and map them to [-1, 1] float: (B, C, H, W) -> (B, C, H, W).

    Integer dtypes (uint8) are read as 0..255; float tensors must lie in [0, 1] (pixel value / 255).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected images of shape (B, {channels}, H, W), got {shape} (add the channel axis with "
                         f"x.unsqueeze(1) for grey images)")
    if x.is_floating_point():
        lo, hi = float(x.detach().min()), float(x.detach().max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"float images must lie in [0, 1] (value / 255), got [{lo:.3g}, {hi:.3g}]: pass uint8 "
                             "pixels 0..255, or divide by 255")
        u = x
    elif x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"images must be uint8 (0..255) or float in [0, 1], got {x.dtype}")
    else:
        if x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
            raise ValueError(f"integer images must hold values 0..255, got [{int(x.min())}, {int(x.max())}]")
        u = x.float() / 255.0
    return u * 2.0 - 1.0


def gated_activation(pre: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Gated unit (2016b, Eq. 2): y = tanh(f) . sigmoid(g), with the 2p pre-activation channels split into f and g.

    pre: (B, 2p, ...) -> (B, p, ...). Layout per colour group k (channels in G contiguous blocks, see
    genlab.nn.masked): block k of ``pre`` is [f_k, g_k]; the output keeps the blocks in order, so a colour group's
    features are gated only by its own group. With groups=1 this is f = pre[:, :p], g = pre[:, p:].
    """
    f, g = pre.unflatten(1, (groups, 2, -1)).unbind(2)                          # (B, k, p/k, ...) each: views
    return (torch.tanh(f) * torch.sigmoid(g)).flatten(1, 2)


def _logits(out: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C*256, H, W) with channel c's 256 logits contiguous -> (B, 256, C, H, W)."""
    return rearrange(out, "b (c k) h w -> b k c h w", c=channels, k=N_LEVELS)


# ------------------------------------------------------------------------------------------------------ PixelCNN
@dataclass
class PixelCNNConfig:
    """in_channels: 1 (grey) or 3 (RGB, R -> G -> B ordering); channels: feature maps per layer (divisible by
    in_channels); n_layers: mask-B layers after the mask-A one; first_kernel / kernel: their (odd) sizes;
    head_channels: width of the 1x1 output layer."""

    in_channels: int = 1
    channels: int = 64
    n_layers: int = 7
    first_kernel: int = 7
    kernel: int = 3
    head_channels: int = 128


class PixelCNN(nn.Module):
    """PixelCNN: mask-A conv (first_kernel), n_layers residual mask-B convs (kernel), ReLU, 1x1 B, ReLU, 1x1 B.

    x: (B, C, H, W) uint8 0..255 or float in [0, 1] -> logits (B, 256, C, H, W).
    h_0 = A(x);  h_l = h_{l-1} + B_l(relu(h_{l-1}));  logits = B_out(relu(B_head(relu(h_L))))
    """

    def __init__(self, config: PixelCNNConfig | None = None):
        super().__init__()
        self.config = cfg = config or PixelCNNConfig()
        g = cfg.in_channels
        self.first = MaskedConv2d("A", g, cfg.channels, cfg.first_kernel, colour_groups=g)
        self.layers = nn.ModuleList(MaskedConv2d("B", cfg.channels, cfg.channels, cfg.kernel, colour_groups=g)
                                    for _ in range(cfg.n_layers))
        self.head = MaskedConv2d("B", cfg.channels, cfg.head_channels, 1, colour_groups=g)
        self.out = MaskedConv2d("B", cfg.head_channels, g * N_LEVELS, 1, colour_groups=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(model_input(x, self.config.in_channels))
        for conv in self.layers:
            h = h + conv(F.relu(h))                                  # residual mask-B layer
        return _logits(self.out(F.relu(self.head(F.relu(h)))), self.config.in_channels)


# ------------------------------------------------------------------------------------------------ Gated PixelCNN
@dataclass
class GatedPixelCNNConfig:
    """in_channels: 1 or 3 (R -> G -> B); channels: p, the gated features per stack (divisible by in_channels);
    n_layers: gated layers including the first; first_kernel / kernel: odd sizes (vertical kernels are
    (k//2) x k in the first layer and (k//2 + 1) x k after, horizontal ones 1 x k, masked to the left half);
    head_channels: width of the 1x1 output layer.

    Conditioning (Eq. 4): n_classes > 0 makes it class-conditional (``model(x, y)``, y in [0, n_classes)), with h the
    one-hot label if embedding_dim == 0, else a learned embedding of that size; n_classes == 0 and h_dim > 0
    conditions on any vector h (``model(x, h=h)``, h: (B, h_dim)); cond_channels > 0 conditions on a feature map
    h (B, cond_channels, H, W) of the image's size, the spatial form of Eq. 4:
    y = tanh(W_f * x + V_f * h) . sigmoid(W_g * x + V_g * h) with V_f, V_g 1x1 convolutions (the VQ-VAE-2 bottom prior
    reads the top codes this way).

    Discrete codes instead of pixels (the priors of VQ-VAE / VQ-VAE-2): vocab = K > 0 makes the input a code map
    (B, H, W) int64 in [0, K), read through a learned embedding of size code_embedding, and the output a K-way
    softmax per position, logits (B, K, H, W) (in_channels must be 1). attention_heads > 0 adds one causal
    self-attention layer (genlab.nn.attention) over the summed skip features before the output head, so every position
    reads the whole causal context (PixelSNAIL-like; grey / code inputs only).
    """

    in_channels: int = 1
    channels: int = 64
    n_layers: int = 7
    first_kernel: int = 7
    kernel: int = 3
    head_channels: int = 128
    n_classes: int = 0
    embedding_dim: int = 0
    h_dim: int = 0
    cond_channels: int = 0
    vocab: int = 0
    code_embedding: int = 32
    attention_heads: int = 0

    @property
    def cond_dim(self) -> int:
        if self.n_classes:
            return self.embedding_dim or self.n_classes
        return self.h_dim

    @property
    def levels(self) -> int:
        """Values per position: 256 intensities, or the K codes of a code model."""
        return self.vocab or N_LEVELS

    @property
    def input_channels(self) -> int:
        """Channels of the first layer's input: the image channels, or the code embedding size."""
        return self.code_embedding if self.vocab else self.in_channels


class GatedLayer(nn.Module):
    """One gated layer of both stacks (2016b, Fig. 2).

    vertical:   pre_v = W_v * v (+ V_v^T h);  v' = tanh(f_v) . sigmoid(g_v)
                (first layer: rows i-k//2 .. i-1 of the image; later: rows i-k//2 .. i of v, which itself only
                 depends on rows above i -- so v never sees the current row)
    horizontal: pre_h = W_h * h_row + link(W_v * v) (+ V_h^T h);  g = tanh(f_h) . sigmoid(g_h)
                h' = h + W_res g  (first layer: h' = W_res g);  skip = W_skip g
    """

    def __init__(self, c_in: int, p: int, kernel: int, first: bool, groups: int, cond_dim: int,
                 cond_channels: int = 0):
        super().__init__()
        self.first, self.groups = first, groups
        kh = kernel // 2 if first else kernel // 2 + 1
        self.v_conv = nn.Conv2d(c_in, 2 * p, (kh, kernel))                        # padded by hand: causal rows
        self.h_conv = MaskedConv2d("A" if first else "B", c_in, 2 * p, (1, kernel), colour_groups=groups)
        self.link = nn.Conv2d(2 * p, 2 * p, 1)                                    # vertical -> horizontal
        self.res = MaskedConv2d("B", p, p, 1, colour_groups=groups)
        self.skip = MaskedConv2d("B", p, p, 1, colour_groups=groups)
        self.cond_v = self.cond_h = None
        if cond_dim:
            self.cond_v = nn.Linear(cond_dim, 2 * p, bias=False)                   # V_v^T h
            self.cond_h = nn.Linear(cond_dim, 2 * p, bias=False)                   # V_h^T h
        elif cond_channels:
            self.cond_v = nn.Conv2d(cond_channels, 2 * p, 1, bias=False)           # V_v * h (spatial h)
            self.cond_h = nn.Conv2d(cond_channels, 2 * p, 1, bias=False)           # V_h * h

    def vertical_conv(self, v: torch.Tensor) -> torch.Tensor:
        """W_v * v over the rows above: (B, c_in, H, W) -> (B, 2p, H, W)."""
        kh, kw = self.v_conv.kernel_size
        if self.first:   # rows i-kh .. i-1: pad kh rows on top, drop the last row
            return self.v_conv(F.pad(v, (kw // 2, kw // 2, kh, 0))[:, :, :-1])
        return self.v_conv(F.pad(v, (kw // 2, kw // 2, kh - 1, 0)))                # rows i-kh+1 .. i

    @staticmethod
    def _cond(lin: nn.Module | None, h: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | float:
        if lin is None:
            return 0.0
        if isinstance(lin, nn.Conv2d):
            return lin(h)                                                         # (B, 2p, H, W)
        c = lin(h)                                                                # (B, 2p)
        return c.view(*c.shape, *([1] * (like.dim() - 2)))

    def _conditioned(self, pre: torch.Tensor, lin: nn.Module | None, h: torch.Tensor | None) -> torch.Tensor:
        """pre + V^T h; an unconditional layer returns pre itself (no addition of a zero)."""
        return pre if lin is None else pre + self._cond(lin, h, pre)

    def res_and_skip(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(W_res g, W_skip g): the two 1x1 convolutions as one, their masked weights stacked at call time.
        g: (B, p, H, W) -> two (B, p, H, W)."""
        weight = torch.cat([self.res.masked_weight(), self.skip.masked_weight()])
        return F.conv2d(g, weight, torch.cat([self.res.bias, self.skip.bias])).chunk(2, dim=1)

    def forward(self, v: torch.Tensor, h_row: torch.Tensor, h: torch.Tensor | None):
        wv = self.vertical_conv(v)
        v_out = gated_activation(self._conditioned(wv, self.cond_v, h))           # vertical stack: no colour order
        pre = self.h_conv(h_row) + self.link(wv)
        g = gated_activation(self._conditioned(pre, self.cond_h, h), self.groups)
        res, skip = self.res_and_skip(g)
        h_out = res if self.first else h_row + res                                # residual (2016b, Fig. 2)
        return v_out, h_out, skip


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN with vertical and horizontal stacks, optionally conditional (2016b, Sec. 2.2-2.3).

    forward(x, y=None, *, h=None): x (B, C, H, W) uint8 0..255 or float in [0, 1]; y (B,) class indices for a
    class-conditional model; h (B, h_dim) for a vector-conditional one, (B, cond_channels, H, W) for a spatially
    conditioned one  ->  logits (B, 256, C, H, W).  A code model (vocab = K): x (B, H, W) int64 codes -> (B, K, H, W).
    s = sum_l skip_l (+ attention(s));  logits = 1x1_out(relu(1x1_head(relu(s))))
    """

    def __init__(self, config: GatedPixelCNNConfig | None = None):
        super().__init__()
        self.config = cfg = config or GatedPixelCNNConfig()
        g, p = cfg.in_channels, cfg.channels
        if cfg.first_kernel < 3:
            raise ValueError("first_kernel must be >= 3 (the vertical stack needs at least one row above)")
        if sum(bool(v) for v in (cfg.n_classes, cfg.h_dim, cfg.cond_channels)) > 1:
            raise ValueError("condition on one thing: set only one of n_classes, h_dim and cond_channels")
        if (cfg.vocab or cfg.attention_heads) and g != 1:
            raise ValueError("code inputs (vocab > 0) and attention need in_channels = 1 (attention would mix the "
                             "colour groups of a pixel)")
        self.embedding = nn.Embedding(cfg.n_classes, cfg.embedding_dim) if cfg.n_classes and cfg.embedding_dim \
            else None
        self.code_embed = nn.Embedding(cfg.vocab, cfg.code_embedding) if cfg.vocab else None
        self.layers = nn.ModuleList(
            GatedLayer(cfg.input_channels if i == 0 else p, p, cfg.first_kernel if i == 0 else cfg.kernel, i == 0, g,
                       cfg.cond_dim, cfg.cond_channels)
            for i in range(cfg.n_layers))
        self.attention = CausalSelfAttention(p, cfg.attention_heads) if cfg.attention_heads else None
        self.head = MaskedConv2d("B", p, cfg.head_channels, 1, colour_groups=g)
        self.out = MaskedConv2d("B", cfg.head_channels, g * cfg.levels, 1, colour_groups=g)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code maps (B, H, W) integer in [0, vocab) -> (B, code_embedding, H, W) (code models only)."""
        k = self.config.vocab
        if not isinstance(codes, torch.Tensor) or codes.dim() != 3 or codes.is_floating_point() \
                or codes.dtype == torch.bool:
            got = f"{tuple(codes.shape)} {codes.dtype}" if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(f"this prior reads code maps (B, H, W) of integer codes in [0, {k}), got {got}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= k):
            raise ValueError(f"codes must lie in [0, {k}) (the codebook size), got [{int(codes.min())}, "
                             f"{int(codes.max())}]")
        return self.code_embed(codes.long()).permute(0, 3, 1, 2)

    def condition(self, n: int, y: torch.Tensor | int | None = None, h: torch.Tensor | None = None,
                  device: torch.device | None = None, size: tuple[int, int] | None = None) -> torch.Tensor | None:
        """The conditioning h: (n, cond_dim) from class labels ``y`` or a given vector ``h``, or the given map
        (n, cond_channels, H, W) with (H, W) = ``size``; None if unconditional."""
        cfg = self.config
        device = device or self.layers[0].v_conv.weight.device
        if cfg.cond_channels:
            if y is not None or h is None:
                raise ValueError(f"this model is conditioned on a feature map: pass h=(n, {cfg.cond_channels}, H, W)")
            want = (n, cfg.cond_channels, *(size or h.shape[-2:]))
            if not isinstance(h, torch.Tensor) or tuple(h.shape) != want:
                got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
                raise ValueError(f"h must be a feature map of shape {want} (the input's size), got {got}")
            return h.float()
        if cfg.n_classes:
            if h is not None:
                raise ValueError("this model is class-conditional: pass the labels y, not h")
            if y is None:
                raise ValueError(f"this model is class-conditional: pass the labels y (n,) in [0, {cfg.n_classes})")
            y = torch.as_tensor(y, device=device)
            if y.is_floating_point() or y.dtype == torch.bool:
                raise TypeError(f"class labels y must be integers, got {y.dtype}")
            y = y.expand(n) if y.dim() == 0 else y
            if y.shape != (n,):
                raise ValueError(f"y must have shape ({n},) (one label per image), got {tuple(y.shape)}")
            low = NULL_LABEL if self.embedding is None else 0
            if n and (int(y.min()) < low or int(y.max()) >= cfg.n_classes):
                raise ValueError(f"class labels must lie in [0, {cfg.n_classes}) (or be NULL_LABEL = -1, no label, "
                                 f"for a one-hot model), got [{int(y.min())}, {int(y.max())}]")
            y = y.long()
            if self.embedding is not None:
                return self.embedding(y)                                          # learned embedding
            return F.one_hot(y.clamp_min(0), cfg.n_classes).float() * (y != NULL_LABEL)[:, None]   # one-hot h; 0 = none
        if cfg.h_dim:
            if y is not None or h is None:
                raise ValueError(f"this model is conditioned on a vector: pass h=(n, {cfg.h_dim})")
            if h.shape != (n, cfg.h_dim):
                raise ValueError(f"h must have shape ({n}, {cfg.h_dim}), got {tuple(h.shape)}")
            return h.float()
        if y is not None or h is not None:
            raise ValueError("this model is unconditional: call it without y / h (train a config with n_classes > 0 "
                             "for class conditioning)")
        return None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *, h: torch.Tensor | None = None):
        u = self.embed_codes(x) if self.config.vocab else model_input(x, self.config.in_channels)
        cond = self.condition(u.shape[0], y, h, u.device, size=tuple(u.shape[-2:]))
        v, hr, skip = u, u, None
        for layer in self.layers:
            v, hr, s = layer(v, hr, cond)
            skip = s if skip is None else skip + s
        if self.attention is not None:
            skip = skip + self.attention(skip)                                    # reads positions <= s only
        out = self.out(F.relu(self.head(F.relu(skip))))
        return out if self.config.vocab else _logits(out, self.config.in_channels)
