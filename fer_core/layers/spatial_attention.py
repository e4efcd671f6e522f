"""Spatial attention: a sigmoid mask over positions from the channel mean and max (CBAM, AER-CNN).

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (arXiv:1807.06521), section 3:
pool the features over channels (mean and max), convolve the two maps with a 7x7 kernel, squash with a
sigmoid and multiply the mask in. AER-CNN's attention is the same operation, so both use this module.

``scales`` generalises it to the multi-scale spatial attention of DRF-MSAM: the two-channel descriptor
is also average-pooled to 1/2, 1/4, ... resolution, each scale gets its own convolution, the logits are
upsampled back and summed before the sigmoid. ``scales=(1,)`` is plain CBAM.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def channel_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 2, H, W): the mean and the max over channels."""
    return torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)


class SpatialAttention(nn.Module):
    """``x * mask(x)`` with ``mask`` of shape (N, 1, H, W) in [0, 1].

    Args:
        kernel_size: side of the convolution over the pooled descriptor (CBAM: 7).
        scales: downsampling factors at which the descriptor is also convolved; (1,) is CBAM.
        residual: return ``x + x * mask`` (DRF-MSAM, SOTAResEmote) instead of ``x * mask``, so an
            untrained mask cannot switch features off.
    """

    def __init__(self, kernel_size: int = 7, scales: tuple[int, ...] = (1,), residual: bool = False):
        super().__init__()
        self.scales = tuple(scales)
        self.residual = residual
        self.convs = nn.ModuleList(nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2) for _ in self.scales)

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        desc = channel_pool(x)
        size = desc.shape[-2:]
        logits = 0
        for s, conv in zip(self.scales, self.convs, strict=True):
            if s == 1:
                logits = logits + conv(desc)
            else:
                coarse = conv(F.adaptive_avg_pool2d(desc, (math.ceil(size[0] / s), math.ceil(size[1] / s))))
                logits = logits + F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)

    def forward_with_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask(x)
        return (x + x * m if self.residual else x * m), m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_mask(x)[0]
