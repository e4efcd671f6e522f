"""Channel attention: a per-channel gate from globally pooled features (SE, CBAM).

Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507): average-pool, a
bottleneck MLP, a sigmoid, multiply in. CBAM (arXiv:1807.06521) feeds the average- and the max-pooled
vectors through the same MLP and adds the two before the sigmoid. One module does both; ``SqueezeExcite``
is the average-only case.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class ChannelAttention(nn.Module):
    """``x * gate`` with ``gate`` (N, C, 1, 1) in [0, 1].

    Args:
        channels: feature channels.
        reduction: bottleneck ratio of the MLP (hidden = max(channels // reduction, min_hidden)).
        pools: "avg", "max" or both (CBAM); their MLP outputs are summed before the sigmoid.
    """

    def __init__(
        self, channels: int, reduction: int = 16, pools: tuple[str, ...] = ("avg", "max"), min_hidden: int = 8
    ):
        super().__init__()
        if not pools or set(pools) - {"avg", "max"}:
            raise ValueError(f"pools must be a non-empty subset of ('avg', 'max'), not {pools!r}")
        self.pools = tuple(pools)
        hidden = max(channels // reduction, min_hidden)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        logits = 0
        if "avg" in self.pools:
            logits = logits + self.mlp(x.mean((2, 3), keepdim=True))
        if "max" in self.pools:
            logits = logits + self.mlp(x.amax((2, 3), keepdim=True))
        return torch.sigmoid(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SqueezeExcite(ChannelAttention):
    """Squeeze-and-excitation: channel attention from the average-pooled features only."""

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 8):
        super().__init__(channels, reduction, pools=("avg",), min_hidden=min_hidden)
