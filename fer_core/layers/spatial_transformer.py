"""Spatial transformer: a localisation network predicts an affine transform that resamples the input.

Jaderberg, Simonyan, Zisserman & Kavukcuoglu, "Spatial Transformer Networks", NeurIPS 2015
(arXiv:1506.02025). The regression layer starts at zero weights and the identity bias, so at step 0 the
output equals the input; ``affine_grid`` and ``grid_sample`` take the same ``align_corners`` (False), the
pairing under which the identity transform reproduces the input exactly.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class AffineSpatialTransformer(nn.Module):
    """``localization`` maps the input to ``loc_features`` values; two FC layers regress the 2x3 affine
    matrix. ``forward_with_grid`` returns the warped input and the sampling grid (N, H, W, 2) in the
    [-1, 1] coordinates of ``F.grid_sample``."""

    def __init__(
        self,
        localization: nn.Module,
        loc_features: int,
        hidden: int = 32,
        align_corners: bool = False,
        padding_mode: str = "zeros",
    ):
        super().__init__()
        self.localization = localization
        self.fc_loc = nn.Sequential(
            nn.Flatten(), nn.Linear(loc_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 6)
        )
        self.align_corners = align_corners
        self.padding_mode = padding_mode
        nn.init.zeros_(self.fc_loc[-1].weight)
        with torch.no_grad():
            self.fc_loc[-1].bias.copy_(torch.tensor(IDENTITY_THETA))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_loc(self.localization(x)).float().view(-1, 2, 3)

    def forward_with_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=self.align_corners)
        warped = F.grid_sample(
            x.float(), grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=self.align_corners
        )
        return warped, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_grid(x)[0]


def sampling_lattice(grid: torch.Tensor, step: int = 6, align_corners: bool = False) -> torch.Tensor:
    """Draw where a regular lattice of the output lands on the input: (N, 1, H, W) in {0, 1}.

    Every ``step``-th row and column of the output (and its last row and column) is followed through
    ``grid`` back to the input pixel it samples; those pixels are set to 1. The identity transform draws
    the plain lattice; a zoom draws it smaller, a rotation rotates it. Lay it over the input face.
    """
    n, h, w, _ = grid.shape
    on = torch.zeros(h, w, dtype=torch.bool, device=grid.device)
    on[::step, :] = on[:, ::step] = True
    on[-1, :] = on[:, -1] = True
    pts = grid[:, on].float()  # N, P, 2 as (x, y) in [-1, 1]
    if align_corners:
        px, py = (pts[..., 0] + 1) / 2 * (w - 1), (pts[..., 1] + 1) / 2 * (h - 1)
    else:
        px, py = ((pts[..., 0] + 1) * w - 1) / 2, ((pts[..., 1] + 1) * h - 1) / 2
    ix, iy = px.round().long(), py.round().long()
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    idx = torch.where(inside, iy * w + ix, torch.full_like(ix, h * w))  # outside -> a dump slot
    img = torch.zeros(n, h * w + 1, device=grid.device).scatter_(1, idx, 1.0)
    return img[:, : h * w].view(n, 1, h, w)
