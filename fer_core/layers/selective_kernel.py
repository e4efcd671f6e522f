"""Selective kernel: parallel dilated 3x3 branches mixed by per-channel softmax weights computed from
the input, so the receptive field adapts per image (DRF-MSAM's "dynamic receptive field").

Li, Wang, Hu & Yang, "Selective Kernel Networks", CVPR 2019 (arXiv:1903.06586): split (one branch per
kernel), fuse (sum, global average pool, a bottleneck FC), select (a softmax across branches for every
channel). SKNet uses a 3x3 and a dilated 3x3; here dilations 1, 2 and 3 (receptive fields 3, 5, 7).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SelectiveKernel(nn.Module):
    """``forward_with_weights`` returns the output, the branch weights (N, B, C) (a softmax over the B
    branches for every channel) and the B branch outputs (each N, C, H, W) for :func:`branch_shares`.

    The squeeze FC has no batch norm (SKNet has one) so that a batch of one can still be trained.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: tuple[int, ...] = (1, 2, 3),
        reduction: int = 16,
        min_hidden: int = 32,
    ):
        super().__init__()
        self.dilations = tuple(dilations)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, padding=d, dilation=d, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
            for d in self.dilations
        )
        hidden = max(out_channels // reduction, min_hidden)
        self.squeeze = nn.Sequential(nn.Conv2d(out_channels, hidden, 1), nn.ReLU(inplace=True))
        self.select = nn.Conv2d(hidden, out_channels * len(self.dilations), 1)

    def forward_with_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        feats = [branch(x) for branch in self.branches]  # B x (N, C, H, W); kept 4-D for channels_last speed
        n, c = feats[0].shape[:2]
        z = self.squeeze(sum(feats).mean((2, 3), keepdim=True))
        weights = self.select(z).view(n, len(feats), c).softmax(dim=1)
        w = weights.to(feats[0].dtype)  # autocast's softmax is float32: do not promote the big maps
        out = sum(f * w[:, b].view(n, c, 1, 1) for b, f in enumerate(feats))
        return out, weights, feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_weights(x)[0]


def branch_shares(weights: torch.Tensor, feats: list[torch.Tensor], eps: float = 1e-6) -> torch.Tensor:
    """Where each branch matters: (N, B, H, W) in [0, 1], summing to 1 over B at every position.

    The per-channel weights alone are not spatial; weighting each branch's (non-negative, post-ReLU)
    output by them and summing over channels gives each branch's share of the output at each position,
    which a dashboard can lay over the face.
    """
    contrib = torch.stack([(f.float() * weights[:, b, :, None, None].float()).sum(1) for b, f in enumerate(feats)], 1)
    return contrib / contrib.sum(1, keepdim=True).clamp_min(eps)
