"""How faithful is an explanation? The deletion curve (Petsiuk et al. 2018, "RISE").

Remove the most attributed pixels first (replace them by the mean grey, 0 after normalisation) and
watch the class probability fall; the area under that curve is small when the explanation found the
pixels the model really uses. The same curve for random pixel orders is the baseline: an explanation
worth trusting has a deletion AUC well below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Deletion:
    fractions: list[float]  # share of pixels removed at each point, 0 .. 1
    curve: list[float]  # class probability at each point
    auc: float  # area under the curve (mean probability over the fractions)
    random_auc: float  # the same for random orders (mean of several)

    @property
    def ratio(self) -> float:
        """auc / random_auc: below 1 means more faithful than chance."""
        return self.auc / max(self.random_auc, 1e-8)


@torch.no_grad()
def _curve(model: nn.Module, x: torch.Tensor, target: int, order: torch.Tensor, steps: int) -> torch.Tensor:
    n = order.numel()
    batch = x.repeat(steps + 1, 1, 1, 1)
    flat = batch.view(steps + 1, -1)
    for i in range(1, steps + 1):
        flat[i, order[: round(n * i / steps)]] = 0.0
    return F.softmax(model(batch).float(), dim=1)[:, target]


def _auc(curve: torch.Tensor) -> float:
    return float(torch.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def deletion_score(
    model: nn.Module,
    x: torch.Tensor,
    attribution: torch.Tensor,
    target: int,
    steps: int = 20,
    random_orders: int = 5,
    seed: int = 0,
) -> Deletion:
    """Deletion curve of ``attribution`` (H, W) for ``model`` on input ``x`` (1, 1, H, W)."""
    order = torch.argsort(attribution.flatten(), descending=True)
    curve = _curve(model, x, target, order, steps)
    g = torch.Generator().manual_seed(seed)
    n = attribution.numel()
    random = [_auc(_curve(model, x, target, torch.randperm(n, generator=g), steps)) for _ in range(random_orders)]
    return Deletion([i / steps for i in range(steps + 1)], curve.tolist(), _auc(curve), sum(random) / len(random))
