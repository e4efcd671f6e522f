"""Batched class probabilities (and logits) for uint8 faces, with optional test-time augmentation."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import eval_views
from ..device import autocast
from ..models import split_output


def _view_logits(
    model: nn.Module, images: torch.Tensor, tta: str, batch_size: int, amp: bool
) -> Iterator[torch.Tensor]:
    """Per batch, the logits of every TTA view, float32 (V, n, C) on the CPU; the model runs in eval mode
    (restored afterwards), on its own device."""
    cfg = model.default_cfg
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size].to(device)
            views = eval_views(batch, cfg.input_size, cfg.crop, tta, cfg.mean, cfg.std)
            v, n = views.shape[:2]
            x = views.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits, _ = split_output(model(x))
            yield logits.float().view(v, n, -1).cpu()
    finally:
        model.train(was_training)


@torch.no_grad()
def predict_probs(
    model: nn.Module, images: torch.Tensor, tta: str = "none", batch_size: int = 256, amp: bool = True
) -> torch.Tensor:
    """Softmax probabilities (N, C) for uint8 faces (N, 48, 48), averaged over the TTA views.

    Runs on the model's device, in eval mode (restored afterwards); the result is float32 on the CPU.
    """
    return torch.cat([F.softmax(z, dim=2).mean(0) for z in _view_logits(model, images, tta, batch_size, amp)])


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256, amp: bool = True) -> torch.Tensor:
    """Logits (N, C) of the single centre view (the evaluation's ``tta="none"``), float32 on the CPU.

    Calibration needs logits: probabilities averaged over TTA views are not a softmax of anything.
    """
    return torch.cat([z[0] for z in _view_logits(model, images, "none", batch_size, amp)])
