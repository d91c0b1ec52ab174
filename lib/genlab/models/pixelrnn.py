"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks"): Row LSTM and
Diagonal BiLSTM, each ending in a 256-way softmax per pixel.

An image is a sequence of pixels in raster order, and its likelihood factorizes by the chain rule (Eq. 1)::

    p(x) = prod_i p(x_i | x_1, ..., x_{i-1})

Each conditional is a categorical distribution over the 256 intensities (Sec. 5.3, the discrete softmax), so a model
maps an image (B, C, H, W) to logits (B, 256, C, H, W) whose entry at pixel i may depend only on the pixels before i.

* :class:`RowLSTM` (Sec. 3.1) runs an LSTM down the rows. The input-to-state part is a masked 1 x k convolution along
  the current row (mask B: the pixel itself and the pixels to its left in the previous layer); the state-to-state part
  is a 1-D convolution of width k over the previous row's hidden state. Row i's state therefore sees a triangle above
  the pixel that widens by (k - 1) / 2 pixels per row: the context is incomplete.
* :class:`DiagonalBiLSTM` (Sec. 3.2) skews the map (:func:`skew`: row i shifted right by i) so that each diagonal of
  the image becomes a column, then runs an LSTM column by column with a 2 x 1 state-to-state convolution: the state of
  pixel (i, j) depends on (i, j-1) and (i-1, j). A second LSTM runs on the mirrored image (right to left); its output
  is shifted down one row before the two are added, so that pixel (i, j) receives only rows above it from that
  direction. Together they cover the full causal context.

Both start with a 7 x 7 mask-A convolution (Sec. 3.4; the pixel itself is hidden), stack recurrent layers with
residual connections (Sec. 3.5), and end with two ReLU + 1 x 1 convolutions and the 256-way softmax (Sec. 4).
This implementation models single-channel images (MNIST); the colour ordering R -> G -> B is PixelCNN's business
(genlab.models.pixelcnn).

Inputs: ``x`` (B, 1, H, W), either uint8 in [0, 255] or float in [0, 1] (float keeps autograd available for
genlab.metrics.receptive_field). Outputs: logits (B, 256, 1, H, W), scored by genlab.metrics.likelihood.bits_per_dim.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.eval_mode import evaluating
from genlab.nn.masked import MaskedConv2d

N_LEVELS = 256  # 8-bit intensities: the discrete softmax's classes (Sec. 5.3)


# --------------------------------------------------------------------------------------------------- skewing
def skew(x: torch.Tensor) -> torch.Tensor:
    """Shift row i of a map right by i (Sec. 3.2, Fig. 3): diagonals of the image become columns.

    x: (B, C, H, W) -> (B, C, H, W + H - 1); out[..., i, i + j] = x[..., i, j], zeros elsewhere.
    """
    if x.dim() != 4:
        raise ValueError(f"skew expects a map of shape (B, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[2:]
    # pad each row with H zeros, read the rows back with stride W + H - 1: row i then starts i cells further right
    flat = F.pad(x, (0, h)).flatten(2)[:, :, :h * (w + h - 1)]            # (B, C, H * (W + H - 1))
    return flat.unflatten(2, (h, w + h - 1))


def unskew(x: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """Inverse of :func:`skew`: x (B, C, H, W + H - 1) -> (B, C, H, W), out[..., i, j] = x[..., i, i + j].

    width: W (default: the skewed width minus H - 1).
    """
    if x.dim() != 4:
        raise ValueError(f"unskew expects a skewed map of shape (B, C, H, W + H - 1), got {tuple(x.shape)}")
    h = x.shape[2]
    w = x.shape[3] - h + 1 if width is None else width
    if w < 1 or w + h - 1 != x.shape[3]:
        raise ValueError(f"unskew: a map with {h} rows and width {x.shape[3]} is not a skewed map of width {w} "
                         "(a skewed map is H - 1 columns wider than the image)")
    flat = F.pad(x.flatten(2), (0, h))                                     # (B, C, H * (W + H)): the skew's reshape
    return flat.unflatten(2, (h, w + h))[..., :w]                           # read back with stride W + H


# --------------------------------------------------------------------------------------------------- layers
def lstm_cell(gates: torch.Tensor, c: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM update of Eq. 3: gates (..., 4h, ...) = K_ss * h_{i-1} + K_is * x_i, split along ``dim`` into
    o, f, i, g; c: the previous cell state (..., h, ...). Returns (h_i, c_i).

    c_i = sigma(f) * c_{i-1} + sigma(i) * tanh(g);   h_i = sigma(o) * tanh(c_i)
    """
    o, f, i, g = gates.chunk(4, dim=dim)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class RowLSTMLayer(nn.Module):
    """One Row LSTM layer (Sec. 3.1): x (B, h, H, W) -> hidden states (B, h, H, W), computed row by row.

    input-to-state: masked (mask B) 1 x k convolution along the row, for all rows at once -> (B, 4h, H, W);
    state-to-state: 1-D convolution of width k over the previous row's hidden state (B, h, W) -> (B, 4h, W).
    """

    def __init__(self, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d("B", hidden, 4 * hidden, (1, kernel))
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        x_gates = self.input_to_state(x)                                   # K_is (*) x for every row at once
        h = x.new_zeros(b, self.hidden, width)
        c = x.new_zeros(b, self.hidden, width)
        rows = []
        for x_row in x_gates.unbind(2):                     # [o,f,i,g] = s(K_ss (*) h_{i-1} + K_is (*) x_i), Eq. 3
            h, c = lstm_cell(x_row + self.state_to_state(h), c)
            rows.append(h)
        return torch.stack(rows, dim=2)


class DiagonalBiLSTMLayer(nn.Module):
    """One Diagonal BiLSTM layer (Sec. 3.2): x (B, h, H, W), image (B, C, H, W) -> hidden states (B, h, H, W).

    Each direction is an LSTM over the skewed map, column by column. input-to-state: a 1 x 1 convolution (mask B is
    the identity for one colour group), computed for the whole map and then skewed; state-to-state: a 2 x 1
    convolution over the previous column of the skewed map, so the state of skewed cell (i, j) sees (i, j - 1) -- the
    left neighbour -- and (i - 1, j - 1) -- the pixel above. The right-to-left LSTM runs on the mirrored map; its output
    is mirrored back and shifted down one row, so pixel (i, j) receives from it only states of row i - 1 and above: no
    pixel to its right in its own row leaks. Because of that shift the right-to-left LSTM may also read each pixel
    itself, so it takes the image as extra input channels (mask B for this direction); without them the last pixel of
    the row above, (i - 1, W - 1), would stay unseen (the mask-A features never include their own pixel, and nothing
    lies to its right). Both directions advance together: their state-to-state kernels form one grouped convolution.
    """

    def __init__(self, hidden: int, image_channels: int = 1):
        super().__init__()
        self.hidden = hidden
        self.input_to_state_lr = nn.Conv2d(hidden, 4 * hidden, 1)
        self.input_to_state_rl = nn.Conv2d(hidden + image_channels, 4 * hidden, 1)
        self.state_to_state = nn.Conv1d(2 * hidden, 8 * hidden, 2, groups=2)  # taps: rows i-1, i; a group per direction

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        hid = self.hidden
        x_gates = torch.cat([skew(self.input_to_state_lr(x)),                                # left to right
                             skew(self.input_to_state_rl(torch.cat([x, image], 1).flip(3)))],  # right to left
                            dim=1)                                                           # (B, 8h, H, W + H - 1)
        h = x.new_zeros(b, 2 * hid, height)
        c = x.new_zeros(b, 2, hid, height)
        cols = []
        for x_col in x_gates.unbind(3):                     # [o,f,i,g] = s(K_ss (*) h_{j-1} + K_is (*) x_j), Eq. 3
            gates = x_col + self.state_to_state(F.pad(h, (1, 0)))           # row -1 is zero state
            h, c = lstm_cell(gates.view(b, 2, 4 * hid, height), c, dim=2)
            h = h.reshape(b, 2 * hid, height)
            cols.append(h)
        states = unskew(torch.stack(cols, dim=3), width)                    # (B, 2h, H, W)
        forward, backward = states[:, :hid], states[:, hid:].flip(3)
        backward = F.pad(backward, (0, 0, 1, 0))[:, :, :-1]                  # shift down one row
        return forward + backward


# --------------------------------------------------------------------------------------------------- models
@dataclass
class PixelRNNConfig:
    """hidden: feature/state channels h; layers: recurrent layers; first_kernel: the mask-A convolution's size;
    kernel: Row LSTM's input-to-state and state-to-state width k (unused by the Diagonal BiLSTM, whose kernels are
    fixed by the skew: 1 x 1 and 2 x 1); out_hidden: channels of the 1 x 1 output convolutions."""

    hidden: int = 32
    layers: int = 1
    first_kernel: int = 7
    kernel: int = 3
    out_hidden: int = 64
    channels: int = 1


class _PixelRNN(nn.Module):
    """Shared body: mask-A first convolution, residual recurrent layers, ReLU + 1 x 1 convolutions, 256-way logits.

    x: (B, 1, H, W) uint8 in [0, 255] or float in [0, 1] -> logits (B, 256, 1, H, W).
    """

    def __init__(self, config: PixelRNNConfig, layer: type[nn.Module], **layer_kwargs):
        super().__init__()
        if config.channels != 1:
            raise ValueError(f"PixelRNN here models single-channel images (channels=1), got channels="
                             f"{config.channels}; for colour images with the R -> G -> B ordering use PixelCNN")
        self.config = config
        h = config.hidden
        self.first = MaskedConv2d("A", config.channels, h, config.first_kernel)
        self.recurrent = nn.ModuleList(layer(h, **layer_kwargs) for _ in range(config.layers))
        self.project = nn.ModuleList(nn.Conv2d(h, h, 1) for _ in range(config.layers))   # residual branch (Sec. 3.5)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(h, config.out_hidden, 1), nn.ReLU(),
                                  nn.Conv2d(config.out_hidden, N_LEVELS * config.channels, 1))

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if x.dim() != 4 or x.shape[1] != self.config.channels:
            raise ValueError(f"{name} expects images of shape (B, {self.config.channels}, H, W), got "
                             f"{tuple(x.shape)} (add the channel axis: x[:, None])")
        if x.dtype == torch.uint8:
            return x.to(self.first.weight.dtype) / 255
        if not x.is_floating_point():
            raise TypeError(f"{name} expects uint8 in [0, 255] or float in [0, 1], got {x.dtype}")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{name} expects float pixels in [0, 1], got values in [{x.min().item():.3g}, "
                             f"{x.max().item():.3g}] (divide uint8 images by 255, or pass them as uint8)")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x)
        b, c, height, width = x.shape
        x = 2 * x - 1                                                      # centre the input around 0
        h = self.first(x)
        for rnn, proj in zip(self.recurrent, self.project):
            h = h + proj(self._recur(rnn, h, x))                           # residual connection (Sec. 3.5)
        return self.head(h).view(b, N_LEVELS, c, height, width)            # softmax over 256 levels per pixel


class RowLSTM(_PixelRNN):
    """PixelRNN with Row LSTM layers (Sec. 3.1): x (B, 1, H, W) -> logits (B, 256, 1, H, W); triangular context."""

    def __init__(self, config: PixelRNNConfig | None = None):
        config = config or PixelRNNConfig()
        super().__init__(config, RowLSTMLayer, kernel=config.kernel)

    @staticmethod
    def _recur(rnn: nn.Module, h: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return rnn(h)


class DiagonalBiLSTM(_PixelRNN):
    """PixelRNN with Diagonal BiLSTM layers (Sec. 3.2): x (B, 1, H, W) -> logits (B, 256, 1, H, W); full context."""

    def __init__(self, config: PixelRNNConfig | None = None):
        config = config or PixelRNNConfig()
        super().__init__(config, DiagonalBiLSTMLayer, image_channels=config.channels)

    @staticmethod
    def _recur(rnn: nn.Module, h: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return rnn(h, image)


# --------------------------------------------------------------------------------------------------- sampling
@torch.no_grad()
def sample(model: nn.Module, n: int, image_size: tuple[int, int] = (28, 28), *,
           generator: torch.Generator | None = None, start: torch.Tensor | None = None, start_row: int = 0,
           device: torch.device | str | None = None) -> torch.Tensor:
    """Draw images pixel by pixel in raster order from the model's softmaxes (ancestral sampling of Eq. 1).

    Each of the H * W steps runs the network (the naive sampler: no cached states) on rows 0..i of the image, which
    is all the logits of row i depend on, and samples the next pixel.
    n: number of images; start: optional (n, 1, H, W) uint8 images whose rows before ``start_row`` are kept (image
    completion). generator: torch.Generator on ``device`` for reproducible draws. Returns (n, 1, H, W) uint8.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    height, width = image_size
    if start is not None:
        if start.shape != (n, 1, height, width) or start.dtype != torch.uint8:
            raise ValueError(f"start must be uint8 of shape {(n, 1, height, width)}, got {start.dtype} "
                             f"{tuple(start.shape)}")
        x = start.to(device).clone()
        x[:, :, start_row:] = 0
    else:
        x = torch.zeros(n, 1, height, width, dtype=torch.uint8, device=device)
        start_row = 0
    with evaluating(model):
        for i in range(start_row, height):
            for j in range(width):
                probs = model(x[:, :, :i + 1])[:, :, 0, i, j].float().softmax(dim=1)   # p(x_ij | x_<ij), (n, 256)
                x[:, 0, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(torch.uint8)
    return x
