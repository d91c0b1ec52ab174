"""PixelCNN (van den Oord et al. 2016a, "Pixel Recurrent Neural Networks", Sec. 3.4) and Gated / Conditional PixelCNN
(van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN Decoders", Sec. 2), with two samplers.

Both models define p(x) = prod_i p(x_i | x_<i) with a 256-way softmax per sub-pixel (genlab.metrics.likelihood).

* :class:`PixelCNN`: a 7x7 mask-A convolution, then residual 3x3 mask-B convolutions, then two 1x1 mask-B layers.
  Stacked masked 3x3 kernels never reach the pixels up and to the right of the current one that lie more than one
  row up per column to the right: the *blind spot* (2016b, Fig. 1; measured by genlab.metrics.receptive_field).
* :class:`GatedPixelCNN`: a *vertical* stack (everything in the rows above) and a *horizontal* stack (the current row,
  to the left), which together see the whole causal context; gated units y = tanh(W_f * x) . sigmoid(W_g * x) (Eq. 2);
  the vertical stack feeds the horizontal one through a 1x1 convolution (it only ever sees rows strictly above, so the
  link cannot leak); residual connections in the horizontal stack and skip connections to the output; optional
  conditioning on a vector h: y = tanh(W_f * x + V_f^T h) . sigmoid(W_g * x + V_g^T h) (Eq. 4), with h a one-hot class
  label, a learned class embedding, or any vector the caller passes.

Model contract (shared with genlab.models.pixelrnn and genlab.metrics.receptive_field):

    model(x) -> logits (B, 256, C, H, W)       (conditional models: model(x, y) or model(x, h=h))
    x: (B, C, H, W) uint8 (or another integer dtype) with values 0..255, or float in [0, 1] (value / 255; used to take
       gradients w.r.t. the input). Inside, pixels are mapped to [-1, 1].

Sampling (:func:`sample_naive`, :func:`sample_cached`) fills the image in raster order, colours R -> G -> B inside a
pixel, drawing each sub-pixel by inverse-CDF sampling from one uniform number pre-drawn from ``generator``, so the two
samplers consume randomness identically and give identical images for the same seed. The naive sampler runs the full
network once per sub-pixel; the cached one (the idea of Fast PixelCNN++, Ramachandran et al. 2017) keeps every layer's
activations and computes only what the new pixel changes: for PixelCNN one position per layer per pixel (a layer's
output at pixel q depends only on pixels before q, so it is final once computed), for Gated PixelCNN the vertical stack
once per row and the horizontal stack one position per pixel.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from genlab.nn.attention import CausalSelfAttention
from genlab.nn.masked import MaskedConv2d

N_LEVELS = 256


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
    f, g = rearrange(pre, "b (k two c) ... -> two b (k c) ...", k=groups, two=2)
    return torch.tanh(f) * torch.sigmoid(g)


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

    def forward(self, v: torch.Tensor, h_row: torch.Tensor, h: torch.Tensor | None):
        wv = self.vertical_conv(v)
        v_out = gated_activation(wv + self._cond(self.cond_v, h, wv))             # vertical stack: no colour order
        pre = self.h_conv(h_row) + self.link(wv)
        g = gated_activation(pre + self._cond(self.cond_h, h, pre), self.groups)
        h_out = self.res(g) if self.first else h_row + self.res(g)                # residual (2016b, Fig. 2)
        return v_out, h_out, self.skip(g)


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
            if n and (int(y.min()) < 0 or int(y.max()) >= cfg.n_classes):
                raise ValueError(f"class labels must lie in [0, {cfg.n_classes}), got [{int(y.min())}, "
                                 f"{int(y.max())}]")
            y = y.long()
            if self.embedding is not None:
                return self.embedding(y)                                          # learned embedding
            return F.one_hot(y, cfg.n_classes).float()                            # one-hot h
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
        v, hr, skip = u, u, 0.0
        for layer in self.layers:
            v, hr, s = layer(v, hr, cond)
            skip = skip + s
        if self.attention is not None:
            skip = skip + self.attention(skip)                                    # reads positions <= s only
        out = self.out(F.relu(self.head(F.relu(skip))))
        return out if self.config.vocab else _logits(out, self.config.in_channels)


# ------------------------------------------------------------------------------------------------------ sampling
def _image_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    hh, ww = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if hh < 1 or ww < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return hh, ww


def _draw(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: logits (B, K), u (B,) in [0, 1) -> values (B,) int64, the first k with CDF(k) > u."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)
    return torch.searchsorted(cdf, u.double()[:, None], right=True).clamp_(max=logits.shape[-1] - 1).squeeze(1)


def _is_code_model(model: nn.Module) -> bool:
    return isinstance(model, GatedPixelCNN) and model.config.vocab > 0


def _prepare(model: nn.Module, n: int, image_size, y, h, generator, n_pixels):
    hh, ww = _image_size(image_size)
    c = model.config.in_channels
    device = next(model.parameters()).device
    u = torch.rand(n, c, hh, ww, generator=generator)        # all the sampling noise, drawn up front (CPU generator)
    positions = [(i, j) for i in range(hh) for j in range(ww)][:n_pixels]
    cond_kwargs = {}
    if isinstance(model, GatedPixelCNN) and model.config.n_classes:
        if h is not None:
            raise ValueError("this model is class-conditional: sample with y, not h")
        cond_kwargs = {"y": torch.as_tensor(y, device=device).expand(n) if y is not None else None}
    elif isinstance(model, GatedPixelCNN) and (model.config.h_dim or model.config.cond_channels):
        if y is not None:
            raise ValueError("this model is conditioned on h: sample with h=..., not y")
        cond_kwargs = {"h": h.to(device) if isinstance(h, torch.Tensor) else h}
    elif y is not None or h is not None:
        raise ValueError(f"{type(model).__name__} is unconditional: sample without y / h")
    return hh, ww, c, device, u, positions, cond_kwargs


def _canvas(model: nn.Module, n: int, c: int, hh: int, ww: int, device=None) -> torch.Tensor:
    """The all-zero start of sampling: (n, C, H, W) uint8 images, or (n, 1, H, W) int64 codes for a code model."""
    return torch.zeros(n, c, hh, ww, dtype=torch.long if _is_code_model(model) else torch.uint8, device=device)


@torch.no_grad()
def sample_naive(model: nn.Module, n: int, image_size: int | tuple[int, int] = 28, *, y=None, h=None,
                 generator: torch.Generator | None = None, n_pixels: int | None = None) -> torch.Tensor:
    """Sample ``n`` images by running the whole network once per sub-pixel (H * W * C forward passes).

    y: class label(s) for a class-conditional model (int or (n,)); h: the vector (n, h_dim) or feature map
    (n, cond_channels, H, W) of an h-conditioned model; generator: CPU torch.Generator for the noise;
    n_pixels: stop after this many pixels in raster order (the rest stay 0), e.g. to time a few steps.
    Returns (n, C, H, W) uint8, or (n, H, W) int64 codes for a code model (vocab > 0).
    """
    model.eval()
    hh, ww, c, device, u, positions, cond = _prepare(model, n, image_size, y, h, generator, n_pixels)
    x = _canvas(model, n, c, hh, ww, device)
    code = _is_code_model(model)
    for i, j in positions:
        for ch in range(c):
            logits = model(x[:, 0], **cond)[:, :, i, j] if code else model(x, **cond)[:, :, ch, i, j]   # (n, K)
            x[:, ch, i, j] = _draw(logits, u[:, ch, i, j]).to(device)
    return x[:, 0].cpu() if code else x.cpu()


@torch.no_grad()
def sample_cached(model: nn.Module, n: int, image_size: int | tuple[int, int] = 28, *, y=None, h=None,
                  generator: torch.Generator | None = None, n_pixels: int | None = None) -> torch.Tensor:
    """Sample like :func:`sample_naive` (same arguments, identical images for the same generator state), computing only
    what each new pixel changes: for PixelCNN one position of every layer per pixel; for GatedPixelCNN the vertical
    stack once per row and one position of the horizontal stack per pixel (and one attention step, from cached keys
    and values). Returns (n, C, H, W) uint8, or (n, H, W) int64 codes for a code model.
    """
    model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # every op works on (n, channels) vectors: intra-op threads only add overhead
    try:
        return _sample_cached(model, n, image_size, y, h, generator, n_pixels)
    finally:
        torch.set_num_threads(threads)


def _sample_cached(model: nn.Module, n: int, image_size, y, h, generator, n_pixels) -> torch.Tensor:
    hh, ww, c, device, u, positions, cond = _prepare(model, n, image_size, y, h, generator, n_pixels)
    if isinstance(model, GatedPixelCNN):
        state = _GatedCache(model, n, hh, ww, device, cond.get("y"), cond.get("h"))
    elif isinstance(model, PixelCNN):
        state = _PixelCNNCache(model, n, hh, ww, device)
    else:
        raise TypeError(f"sample_cached knows PixelCNN and GatedPixelCNN, not {type(model).__name__}: use sample_naive")
    x = _canvas(model, n, c, hh, ww)
    row = -1
    for i, j in positions:
        if i != row:
            state.start_row(i)
            row = i
        for ch in range(c):
            logits = state.logits_at(i, j)[:, ch]                                  # (n, 256)
            x[:, ch, i, j] = _draw(logits, u[:, ch, i, j]).cpu()
            state.set_pixel(i, j, ch, x[:, ch, i, j])
    return x[:, 0] if _is_code_model(model) else x


def _dense(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A (masked) convolution's weight as a matrix (C_out, C_in * kh * kw) and its bias, for one-position products."""
    w = conv.masked_weight() if isinstance(conv, MaskedConv2d) else conv.weight
    return w.flatten(1), conv.bias


class _PixelCNNCache:
    """Activation caches of a PixelCNN: the (padded) input of every masked layer; positions are filled in raster
    order, and the value at pixel q is final once computed (it only depends on pixels before q)."""

    def __init__(self, model: PixelCNN, n: int, hh: int, ww: int, device):
        self.m, cfg = model, model.config
        self.pad = max(cfg.first_kernel, cfg.kernel) // 2
        p = self.pad
        self.x = torch.zeros(n, cfg.in_channels, hh + 2 * p, ww + 2 * p, device=device)
        self.x[:, :, p:p + hh, p:p + ww] = -1.0                                   # uint8 0 -> -1 (model_input)
        self.a = [torch.zeros(n, cfg.channels, hh + 2 * p, ww + 2 * p, device=device) for _ in model.layers]
        self.first = _dense(model.first)
        self.layers = [_dense(conv) for conv in model.layers]
        self.head, self.out = _dense(model.head), _dense(model.out)

    def start_row(self, i: int) -> None:
        pass

    def set_pixel(self, i: int, j: int, ch: int, value: torch.Tensor) -> None:
        self.x[:, ch, self.pad + i, self.pad + j] = value.to(self.x.device).float() / 255.0 * 2.0 - 1.0

    def _window(self, t: torch.Tensor, i: int, j: int, k: int) -> torch.Tensor:
        """The k x k input window centred on (i, j), flattened like the weight matrix: (n, C * k * k)."""
        r0, c0 = self.pad + i - k // 2, self.pad + j - k // 2
        return t[:, :, r0:r0 + k, c0:c0 + k].flatten(1)

    def logits_at(self, i: int, j: int) -> torch.Tensor:
        m, p, cfg = self.m, self.pad, self.m.config
        h = F.linear(self._window(self.x, i, j, cfg.first_kernel), *self.first)   # (n, channels)
        for (w, b), a in zip(self.layers, self.a):
            a[:, :, p + i, p + j] = F.relu(h)
            h = h + F.linear(self._window(a, i, j, cfg.kernel), w, b)             # residual mask-B layer
        out = F.linear(F.relu(F.linear(F.relu(h), *self.head)), *self.out)        # (n, C*256)
        return out.view(out.shape[0], cfg.in_channels, N_LEVELS)                  # (n, C, 256)


class _GatedCache:
    """Activation caches of a GatedPixelCNN: every layer's vertical and horizontal inputs (zero-padded by ``pad``),
    and for the current row the link from the vertical stack (+ the conditioning term) of every layer."""

    def __init__(self, model: GatedPixelCNN, n: int, hh: int, ww: int, device, y, h=None):
        self.m, cfg = model, model.config
        self.pad = p = max(cfg.first_kernel, cfg.kernel) // 2 + 1
        self.cond = model.condition(n, y, h, device, size=(hh, ww))
        self.spatial = cfg.cond_channels > 0
        c_in = [cfg.input_channels] + [cfg.channels] * (cfg.n_layers - 1)
        self.x = torch.zeros(n, cfg.input_channels, hh + 2 * p, ww + 2 * p, device=device)
        if cfg.vocab:
            self.x[:, :, p:p + hh, p:p + ww] = model.code_embed.weight[0][None, :, None, None]   # code 0's embedding
        else:
            self.x[:, :, p:p + hh, p:p + ww] = -1.0                               # uint8 0 -> -1 (model_input)
        self.v = [self.x] + [torch.zeros(n, c, hh + 2 * p, ww + 2 * p, device=device) for c in c_in[1:]]
        self.h = [self.x] + [torch.zeros(n, c, hh + 2 * p, ww + 2 * p, device=device) for c in c_in[1:]]
        self.hh, self.ww = hh, ww
        self.links: list[torch.Tensor] = []                                       # per layer (n, W, 2p)
        self.dense = [(_dense(layer.h_conv), _dense(layer.res), _dense(layer.skip)) for layer in model.layers]
        # V * h: (n, 2p, 1, 1) / (n, 2p) for a vector h; whole maps (n, 2p, H, W) for a spatial h (rows taken later)
        self.cond_v = [layer._cond(layer.cond_v, self.cond, torch.empty(1, 1, 1, 1)) for layer in model.layers]
        self.cond_h = [layer._cond(layer.cond_h, self.cond, torch.empty(1, 1)) for layer in model.layers]
        self.head, self.out = _dense(model.head), _dense(model.out)
        self.attention: dict = {}                                                 # cached keys and values

    def start_row(self, i: int) -> None:
        """The vertical stack for all of row i (it depends on rows < i only), and its links into the horizontal one."""
        p, ww = self.pad, self.ww
        self.links = []
        for li, layer in enumerate(self.m.layers):
            kh, kw = layer.v_conv.kernel_size
            top = p + i - kh if layer.first else p + i - kh + 1                   # first input row of the window
            window = self.v[li][:, :, top:top + kh, p - kw // 2:p + ww + kw // 2]  # (n, c, kh, W + kw - 1)
            wv = layer.v_conv(window)                                             # (n, 2p, 1, W)
            if self.cond is None:
                cond_h, cond_v = 0.0, 0.0
            elif self.spatial:
                cond_h, cond_v = self.cond_h[li][:, :, i], self.cond_v[li][:, :, i:i + 1]   # row i of V * h
            else:
                cond_h, cond_v = self.cond_h[li][:, :, None], self.cond_v[li]
            self.links.append((layer.link(wv)[:, :, 0] + cond_h).transpose(1, 2))
            if li + 1 < len(self.v):
                self.v[li + 1][:, :, p + i, p:p + ww] = gated_activation(wv + cond_v)[:, :, 0]

    def set_pixel(self, i: int, j: int, ch: int, value: torch.Tensor) -> None:
        if self.m.config.vocab:
            self.x[:, :, self.pad + i, self.pad + j] = self.m.code_embed(value.to(self.x.device).long())
        else:
            self.x[:, ch, self.pad + i, self.pad + j] = value.to(self.x.device).float() / 255.0 * 2.0 - 1.0

    def logits_at(self, i: int, j: int) -> torch.Tensor:
        p, m = self.pad, self.m
        skip = 0.0
        for li, layer in enumerate(m.layers):
            (wh, bh), (wr, br), (ws, bs) = self.dense[li]
            k = layer.h_conv.kernel_size[1]
            window = self.h[li][:, :, p + i, p + j - k // 2:p + j + k // 2 + 1].flatten(1)   # (n, c_in * k)
            g = gated_activation(F.linear(window, wh, bh) + self.links[li][:, j], layer.groups)
            r = F.linear(g, wr, br)
            h_new = r if layer.first else self.h[li][:, :, p + i, p + j] + r        # residual
            if li + 1 < len(self.h):
                self.h[li + 1][:, :, p + i, p + j] = h_new
            skip = skip + F.linear(g, ws, bs)
        if m.attention is not None:
            skip = skip + m.attention.step(skip, i * self.ww + j, (self.hh, self.ww), self.attention)
        out = F.linear(F.relu(F.linear(F.relu(skip), *self.head)), *self.out)     # (n, C*K)
        return out.view(out.shape[0], m.config.in_channels, m.config.levels)      # (n, C, K)


# ------------------------------------------------------------------------------------------------------ recipes
DATA = ("genlab.data.mnist5k (uint8): train split (4000 digits) -- the first 3600 for training, the last 400 held out to "
        "keep the best EMA weights; test split (1000 digits) for test_bpd")
N_HELD_OUT = 400
N_JUDGED = 100     # class-conditional samples judged by the digit classifier (10 per class)


def _pixelcnn_config(profile: str) -> dict:
    """cpu: sized to train in ~40 min on one CPU thread; ci: a smoke run of the recipe (notebooks load the shipped
    cpu checkpoint in every profile); gpu: a wider, deeper network trained longer."""
    model = {"ci": PixelCNNConfig(channels=8, n_layers=2, head_channels=16),
             "cpu": PixelCNNConfig(channels=32, n_layers=5, head_channels=64),
             "gpu": PixelCNNConfig(channels=128, n_layers=12, head_channels=256)}[profile]
    train = {"ci": dict(steps=4, batch_size=16), "cpu": dict(steps=1500, batch_size=32),
             "gpu": dict(steps=20000, batch_size=64)}[profile]
    return {"model": asdict(model), "train": {**train, "lr": 3e-3, "warmup": 0.03, "ema_decay": 0.995,
                                             "clip": 1.0, "eval_every": max(train["steps"] // 8, 1)}}


def _gated_config(profile: str, n_classes: int = 0, attention_heads: int = 0) -> dict:
    """The Gated PixelCNN recipes; attention_heads > 0 adds one causal self-attention layer (the same net otherwise,
    trained the same way: an ablation of global context)."""
    model = {"ci": GatedPixelCNNConfig(channels=8, n_layers=2, head_channels=16),
             "cpu": GatedPixelCNNConfig(channels=48, n_layers=6, head_channels=96),
             "gpu": GatedPixelCNNConfig(channels=128, n_layers=12, head_channels=256)}[profile]
    model.n_classes, model.attention_heads = n_classes, attention_heads
    train = {"ci": dict(steps=4, batch_size=16), "cpu": dict(steps=2400, batch_size=32),
             "gpu": dict(steps=20000, batch_size=64)}[profile]
    return {"model": asdict(model), "train": {**train, "lr": 3e-3, "warmup": 0.03, "ema_decay": 0.995,
                                             "clip": 1.0, "eval_every": max(train["steps"] // 8, 1)}}


def _train(model: nn.Module, config: dict, job, name: str) -> "TrainState":
    """AdamW with warm-up + cosine decay on bits/dim, gradient clipping, weight EMA; every ``eval_every`` steps the
    EMA's bits/dim on the held-out 400 train digits, and the best EMA weights are the ones returned (early stopping
    without looking at the test split)."""
    from genlab.checkpoints import load_checkpoint, save_checkpoint
    from genlab.data.mnist import mnist5k
    from genlab.metrics.likelihood import bits_per_dim, evaluate_bpd
    from genlab.train import StepBatches, TrainState, autocast, fit, make_ema, warmup_cosine, wrap_ddp

    t = config["train"]
    conditional = bool(config["model"].get("n_classes"))
    x, y = mnist5k("train", as_uint8=True)
    x_tr, y_tr, x_val, y_val = x[:-N_HELD_OUT], y[:-N_HELD_OUT], x[-N_HELD_OUT:], y[-N_HELD_OUT:]
    opt = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=0.0)
    state = TrainState(model=wrap_ddp(model), optimizer=opt, ema=make_ema(model, t["ema_decay"]))
    best_path = job.checkpoint.with_name("best.pt") if job.checkpoint is not None else None

    def step_fn(state: TrainState, batch) -> dict[str, torch.Tensor]:
        xb, yb = batch
        for group in opt.param_groups:
            group["lr"] = t["lr"] * warmup_cosine(state.step, t["steps"], warmup=t["warmup"])
        with autocast(job.device):
            logits = state.model(xb, yb) if conditional else state.model(xb)
        loss = bits_per_dim(logits.float(), xb)                     # -log2 p(x) / (C H W): the exact likelihood
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["clip"])
        opt.step()
        return {"bpd": loss}

    best = {"val": float("inf"), "weights": None}

    def callback(state: TrainState, logs: dict) -> None:
        if state.step % t["eval_every"] and state.step != t["steps"]:
            return
        val = evaluate_bpd(state.ema.module, x_val.to(job.device), y_val.to(job.device) if conditional else None)
        state.history.setdefault("val_bpd_step", []).append(state.step)
        state.history.setdefault("val_bpd", []).append(val)
        if val < best["val"]:
            best["val"], best["weights"] = val, {k: v.detach().clone() for k, v in state.ema.module.state_dict().items()}
            if best_path is not None:
                save_checkpoint(best_path, model_state=best["weights"], config=config, metrics={"val_bpd": val},
                                seed=job.seed, command=job.command, data=job.data, train_seconds=state.seconds)

    if best_path is not None and job.resume and best_path.exists() and job.checkpoint.exists():
        ck = load_checkpoint(best_path)
        best["val"], best["weights"] = float(ck.meta["metrics"]["val_bpd"]), ck.model_state
    data = StepBatches(x_tr, y_tr, batch_size=t["batch_size"], seed=job.seed)
    fit(state, step_fn, data, t["steps"], device=job.device, checkpoint=job.checkpoint,
        checkpoint_every=t["eval_every"], resume=job.resume, meta=job.meta(config), progress=job.progress, desc=name,
        callback=callback)
    if best["weights"] is not None:
        state.ema.module.load_state_dict(best["weights"])          # the best held-out EMA weights
    return state


def _evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
    """test_bpd on the whole test split (1000 digits), test_bpd_first100 on its first 100 (a quick drift check for the
    test suite); for a class-conditional model also the digit classifier's accuracy on 100 cached samples (10 per
    class, seed 0)."""
    from genlab.data.mnist import mnist5k
    from genlab.metrics.likelihood import evaluate_bpd

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


@torch.no_grad()
def class_bits(model: "GatedPixelCNN", x_uint8: torch.Tensor, *, batch_size: int = 16) -> torch.Tensor:
    """-log2 p(x | y) in bits per image of the images ``x_uint8`` (N, C, H, W) under every class y of a
    class-conditional model -> (N, n_classes). With a uniform class prior, Bayes' rule makes the model a classifier:
    argmax_y p(y | x) = argmin_y class_bits[:, y]."""
    from genlab.metrics.likelihood import evaluate_bits_per_subpixel

    k = getattr(getattr(model, "config", None), "n_classes", 0)
    if not k:
        raise ValueError("class_bits needs a class-conditional model (a GatedPixelCNN with n_classes > 0)")
    n = len(x_uint8)
    return torch.stack([evaluate_bits_per_subpixel(model, x_uint8, torch.full((n,), c, dtype=torch.long),
                                                   batch_size=batch_size).flatten(1).sum(1) for c in range(k)], 1)


@torch.no_grad()
def judge_digits(samples: torch.Tensor, labels: torch.Tensor, device: torch.device | str = "cpu") -> float:
    """Fraction of ``samples`` (N, 1, 28, 28) uint8 that the shipped digit classifier reads as ``labels`` (N,)."""
    from genlab.checkpoints import load_pretrained

    judge = load_pretrained("digit_classifier", map_location=device).model
    pred = judge(samples.to(device).float() / 255.0).argmax(1).cpu()
    return float((pred == labels.cpu()).float().mean())


def _build_pixelcnn(cfg: dict) -> PixelCNN:
    return PixelCNN(PixelCNNConfig(**cfg))


def _build_gated(cfg: dict) -> GatedPixelCNN:
    return GatedPixelCNN(GatedPixelCNNConfig(**cfg))


def _recipes():
    from genlab.zoo import Recipe

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
    )


PIXELCNN_MNIST, GATED_PIXELCNN_MNIST, GATED_PIXELCNN_MNIST_COND, GATED_PIXELCNN_MNIST_COND_ATTN = _recipes()
