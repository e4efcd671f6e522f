"""Timing helpers shared by the export step and the benchmark scripts."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn

from .device import autocast


@torch.no_grad()
def latency_ms(model: nn.Module, batch: int = 1, reps: int = 30, warmup: int = 5, amp: bool = False) -> float:
    """Median milliseconds of one forward pass on ``batch`` faces, on the model's device, eval mode."""
    cfg = model.default_cfg
    device = next(model.parameters()).device
    x = torch.randn(batch, 1, cfg.input_size, cfg.input_size, device=device).contiguous(
        memory_format=torch.channels_last
    )
    was_training = model.training
    model.eval()
    times = []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        with autocast(device, amp):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    model.train(was_training)
    return statistics.median(times)
