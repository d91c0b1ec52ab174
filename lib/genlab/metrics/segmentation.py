"""Semantic fidelity of synthesized images (pix2pixHD Sec. 4, vid2vid Sec. 4): segment the generated frame with a
segmentation network and compare its prediction with the label map the generator was given.

* :func:`confusion_matrix` -- counts C[i, j] of pixels with true class i predicted as j.
* :func:`pixel_accuracy` -- sum_i C[i, i] / sum C.
* :func:`mean_iou` -- mean over classes present in the truth or the prediction of IoU_i = C[i, i] / (sum_j C[i, j] +
  sum_j C[j, i] - C[i, i]).
* :func:`segment` -- a segmentation module's argmax prediction, batched, in eval mode.
"""
from __future__ import annotations

import torch
from torch import nn

from genlab.nn.inference import batched


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """pred, target: integer class ids of the same shape -> (K, K) int64, rows = truth, columns = prediction."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    t, p = target.reshape(-1).long(), pred.reshape(-1).long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes or int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"class ids must be in [0, {num_classes})")
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).view(num_classes, num_classes)


def pixel_accuracy(conf: torch.Tensor) -> float:
    return float(conf.diag().sum() / conf.sum().clamp_min(1))


def mean_iou(conf: torch.Tensor) -> float:
    """Mean IoU over the classes that occur in the truth or the prediction."""
    inter = conf.diag().double()
    union = conf.sum(0).double() + conf.sum(1).double() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def segment(net: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """images (N, 3, H, W) in [-1, 1] -> (N, H, W) predicted class ids (argmax of the net's logits)."""
    return batched(lambda x: net(x).argmax(1), images, batch_size=batch_size, module=net)
