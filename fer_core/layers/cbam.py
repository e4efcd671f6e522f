"""CBAM: channel attention, then spatial attention (Woo et al., ECCV 2018, arXiv:1807.06521)."""

from __future__ import annotations

import torch
import torch.nn as nn

from .channel_attention import ChannelAttention
from .spatial_attention import SpatialAttention


class CBAM(nn.Module):
    """Convolutional block attention module; ``forward_with_mask`` also returns the spatial mask
    (N, 1, H, W) in [0, 1], the part worth showing on a face."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, pools=("avg", "max"))
        self.spatial = SpatialAttention(kernel_size)

    def forward_with_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spatial.forward_with_mask(self.channel(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_mask(x)[0]
