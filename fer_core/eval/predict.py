"""Batched class probabilities for uint8 faces, with optional test-time augmentation."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import eval_views
from ..device import autocast
from ..models import split_output


@torch.no_grad()
def predict_probs(
    model: nn.Module, images: torch.Tensor, tta: str = "none", batch_size: int = 256, amp: bool = True
) -> torch.Tensor:
    """Softmax probabilities (N, C) for uint8 faces (N, 48, 48), averaged over the TTA views.

    Runs on the model's device, in eval mode (restored afterwards); the result is float32 on the CPU.
    """
    cfg = model.default_cfg
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size].to(device)
            views = eval_views(batch, cfg.input_size, cfg.crop, tta, cfg.mean, cfg.std)
            v, n = views.shape[:2]
            x = views.flatten(0, 1).contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits, _ = split_output(model(x))
            out.append(F.softmax(logits.float(), dim=1).view(v, n, -1).mean(0).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)
