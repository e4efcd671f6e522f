"""Generalised-mean (GeM) pooling: between average (p=1) and max (p -> inf) pooling, p learnt.

Radenovic, Tolias & Chum, "Fine-tuning CNN Image Retrieval with No Human Annotation", TPAMI 2018
(arXiv:1711.02512).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def gem(x: torch.Tensor, p: torch.Tensor | float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """(N, C, H, W) -> (N, C): ``mean(x.clamp(eps) ** p) ** (1 / p)``, computed in float32 (a learnt
    power in bfloat16 loses too much precision)."""
    x = x.float().clamp(min=eps)
    p = p.float() if isinstance(p, torch.Tensor) else p
    return x.pow(p).mean((2, 3)).pow(1.0 / p)


class GeM(nn.Module):
    """GeM pooling with a learnable (or fixed) exponent ``p``; returns (N, C) float32."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True):
        super().__init__()
        self.eps = eps
        if learnable:
            self.p = nn.Parameter(torch.tensor(float(p)))
        else:
            self.register_buffer("p", torch.tensor(float(p)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, self.p, self.eps)
