"""Sampling PixelCNN and Gated PixelCNN (genlab.models.pixelcnn) in raster order, naively and with caches.

Sampling (:func:`sample_naive`, :func:`sample_cached`) fills the image in raster order, colours R -> G -> B inside a
pixel, drawing each sub-pixel by inverse-CDF sampling from one uniform number pre-drawn from ``generator``, so the two
samplers consume randomness identically and give identical images for the same seed. The naive sampler runs the full
network once per sub-pixel; the cached one (the idea of Fast PixelCNN++, Ramachandran et al. 2017) keeps every layer's
activations and computes only what the new pixel changes: for PixelCNN one position per layer per pixel (a layer's
output at pixel q depends only on pixels before q, so it is final once computed), for Gated PixelCNN the vertical stack
once per row and the horizontal stack one position per pixel.

Classifier-free guidance (Ho & Salimans 2021; ``guidance=w`` for a one-hot class-conditional model trained with label
dropout): every sub-pixel is drawn from the logits (1 + w) log p(x_i | x_<i, y) - w log p(x_i | x_<i, no label),
both computed in one batch of 2n (the second half with ``NULL_LABEL``). w = 0 is ordinary conditional sampling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.pixelcnn import N_LEVELS, NULL_LABEL, GatedPixelCNN, PixelCNN, gated_activation
from genlab.nn.masked import MaskedConv2d

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


def guided_logits(logits: torch.Tensor, n: int, guidance: float) -> torch.Tensor:
    """(2n, ..., K) logits, conditional then unconditional -> (n, ..., K): (1 + w) log p(. | y) - w log p(. | none)."""
    if not guidance:
        return logits
    logp = torch.log_softmax(logits.double(), dim=-1)
    return (1 + guidance) * logp[:n] - guidance * logp[n:]


def _prepare(model: nn.Module, n: int, image_size, y, h, generator, n_pixels, guidance: float = 0.0):
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
        if guidance:
            if model.config.embedding_dim or y is None:
                raise ValueError("classifier-free guidance needs a one-hot class-conditional model and labels y")
            cond_kwargs["y"] = torch.cat([cond_kwargs["y"], torch.full_like(cond_kwargs["y"], NULL_LABEL)])
    elif isinstance(model, GatedPixelCNN) and (model.config.h_dim or model.config.cond_channels):
        if y is not None:
            raise ValueError("this model is conditioned on h: sample with h=..., not y")
        cond_kwargs = {"h": h.to(device) if isinstance(h, torch.Tensor) else h}
    elif y is not None or h is not None:
        raise ValueError(f"{type(model).__name__} is unconditional: sample without y / h")
    if guidance and "y" not in cond_kwargs:
        raise ValueError("classifier-free guidance needs a class-conditional model (n_classes > 0)")
    return hh, ww, c, device, u, positions, cond_kwargs


def _canvas(model: nn.Module, n: int, c: int, hh: int, ww: int, device=None) -> torch.Tensor:
    """The all-zero start of sampling: (n, C, H, W) uint8 images, or (n, 1, H, W) int64 codes for a code model."""
    return torch.zeros(n, c, hh, ww, dtype=torch.long if _is_code_model(model) else torch.uint8, device=device)


@torch.no_grad()
def sample_naive(model: nn.Module, n: int, image_size: int | tuple[int, int] = 28, *, y=None, h=None,
                 generator: torch.Generator | None = None, n_pixels: int | None = None,
                 guidance: float = 0.0) -> torch.Tensor:
    """Sample ``n`` images by running the whole network once per sub-pixel (H * W * C forward passes).

    y: class label(s) for a class-conditional model (int or (n,)); h: the vector (n, h_dim) or feature map
    (n, cond_channels, H, W) of an h-conditioned model; generator: CPU torch.Generator for the noise;
    n_pixels: stop after this many pixels in raster order (the rest stay 0), e.g. to time a few steps;
    guidance: the classifier-free guidance weight w (module docstring).
    Returns (n, C, H, W) uint8, or (n, H, W) int64 codes for a code model (vocab > 0).
    """
    model.eval()
    hh, ww, c, device, u, positions, cond = _prepare(model, n, image_size, y, h, generator, n_pixels, guidance)
    m = 2 * n if guidance else n                                 # guided: the same images twice, with and without y
    x = _canvas(model, m, c, hh, ww, device)
    code = _is_code_model(model)
    for i, j in positions:
        for ch in range(c):
            logits = model(x[:, 0], **cond)[:, :, i, j] if code else model(x, **cond)[:, :, ch, i, j]   # (m, K)
            value = _draw(guided_logits(logits, n, guidance), u[:, ch, i, j]).to(device)
            x[:, ch, i, j] = value.repeat(m // n)
    return x[:n, 0].cpu() if code else x[:n].cpu()


@torch.no_grad()
def sample_cached(model: nn.Module, n: int, image_size: int | tuple[int, int] = 28, *, y=None, h=None,
                  generator: torch.Generator | None = None, n_pixels: int | None = None,
                  guidance: float = 0.0) -> torch.Tensor:
    """Sample like :func:`sample_naive` (same arguments, identical images for the same generator state), computing only
    what each new pixel changes: for PixelCNN one position of every layer per pixel; for GatedPixelCNN the vertical
    stack once per row and one position of the horizontal stack per pixel (and one attention step, from cached keys
    and values). Returns (n, C, H, W) uint8, or (n, H, W) int64 codes for a code model.
    """
    model.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # every op works on (n, channels) vectors: intra-op threads only add overhead
    try:
        return _sample_cached(model, n, image_size, y, h, generator, n_pixels, guidance)
    finally:
        torch.set_num_threads(threads)


def _sample_cached(model: nn.Module, n: int, image_size, y, h, generator, n_pixels, guidance=0.0) -> torch.Tensor:
    hh, ww, c, device, u, positions, cond = _prepare(model, n, image_size, y, h, generator, n_pixels, guidance)
    m = 2 * n if guidance else n                                 # guided: the same images twice, with and without y
    if isinstance(model, GatedPixelCNN):
        state = _GatedCache(model, m, hh, ww, device, cond.get("y"), cond.get("h"))
    elif isinstance(model, PixelCNN):
        state = _PixelCNNCache(model, m, hh, ww, device)
    else:
        raise TypeError(f"sample_cached knows PixelCNN and GatedPixelCNN, not {type(model).__name__}: use sample_naive")
    x = _canvas(model, n, c, hh, ww)
    row = -1
    for i, j in positions:
        if i != row:
            state.start_row(i)
            row = i
        for ch in range(c):
            logits = guided_logits(state.logits_at(i, j)[:, ch], n, guidance)    # (n, 256)
            x[:, ch, i, j] = _draw(logits, u[:, ch, i, j]).cpu()
            state.set_pixel(i, j, ch, x[:, ch, i, j].repeat(m // n))
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
        p, cfg = self.pad, self.m.config
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
