"""DRF-MSAM net: dynamic receptive fields and multi-scale attention, the "novel" model of the public
TensorFlow notebook behind :mod:`.aer_cnn` and :mod:`.msff_cnn` (reconstructed from its description; no
paper). The notebook's best: 0.59 validation accuracy.

Architecture::

    stem: conv3x3 (1 -> 32) - BN - ReLU
    3 stages (64, 128, 256 channels), each:
        DRF   dynamic receptive field: 3x3 branches with dilation 1, 2, 3 mixed by per-channel softmax
              weights computed from the input (selective kernel, Li et al. 2019, arXiv:1903.06586)
        MSAM  multi-scale attention: squeeze-excitation, then spatial attention computed at full, half
              and quarter resolution, upsampled, summed and squashed to a mask; output x + x * mask
        maxpool 2
    global average pool -> dropout 0.4 -> FC 7

About 1.24 M parameters.

Attention exposed by ``attention_maps`` (all (N, 1, h, w) in [0, 1], h = 48, 24, 12 for stages 1-3):

- ``msam1`` .. ``msam3``: the MSAM spatial masks.
- ``drf1_d1``, ``drf1_d2``, ``drf1_d3`` .. ``drf3_d3``: the DRF branch weights made displayable: each
  branch's share of the stage's output at every position (its per-channel weights times its output,
  summed over channels, divided by the sum over branches), so the three maps of a stage sum to 1. A face
  region where ``d3`` dominates is one the network looked at with its widest (7 x 7) field. The raw
  weights, (N, 3, C) per stage with a softmax over the 3 branches, come from :meth:`DRFMSAMNet.drf_weights`.

Choices the description left open, and deviations:

- Widths 64/128/256, SE reduction 16, spatial kernel 7 at every scale (so the quarter-scale conv sees
  28 x 28 pixels of the stage), dropout 0.4.
- The DRF's squeeze FC has no batch norm (SKNet's has), so batches of one still train.
- Recipe: the description gives no training settings. Here AdamW 1e-3 (wd 5e-4), cosine over 25
  epochs with one warm-up epoch, batch 64, standard batch augmentation, label smoothing 0.1. The DRF
  runs three convolutions per stage at the stage's full resolution (stage 1 at 48 px), about 0.38 GMAC
  per face and much memory traffic: about 96 img/s, 5 minutes per epoch on 2 CPU cores, so 25
  epochs (2.3 h) rather than AER-CNN's 40. The shipped run: PrivateTest 66.04% (PublicTest 65.25%).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import SelectiveKernel, SpatialAttention, SqueezeExcite, branch_shares
from ._registry import Recipe, register_model
from .base import FERModel, InputConfig


class MSAM(nn.Module):
    """Multi-scale attention module: SE channel attention, then a residual multi-scale spatial mask."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, scales: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.channel = SqueezeExcite(channels, reduction)
        self.spatial = SpatialAttention(kernel_size, scales=scales, residual=True)

    def forward_with_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spatial.forward_with_mask(self.channel(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_mask(x)[0]


class DRFMSAMNet(FERModel):
    default_cfg = InputConfig(input_size=48, crop=1.0)

    def __init__(
        self,
        stem: int = 32,
        widths: tuple[int, ...] = (64, 128, 256),
        dilations: tuple[int, ...] = (1, 2, 3),
        dropout: float = 0.4,
        num_classes: int = 7,
    ):
        super().__init__()
        self.dilations = tuple(dilations)
        self.stem = nn.Sequential(nn.Conv2d(1, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(True))
        self.drf = nn.ModuleList()
        self.msam = nn.ModuleList()
        cin = stem
        for w in widths:
            self.drf.append(SelectiveKernel(cin, w, self.dilations))
            self.msam.append(MSAM(w))
            cin = w
        self.features_out = nn.Identity()  # a called module on the final attended map, for Grad-CAM hooks
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def _forward(
        self, x: torch.Tensor, collect: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Logits, and with ``collect`` the attention maps and the raw DRF branch weights."""
        x = self.stem(x)
        maps: dict[str, torch.Tensor] = {}
        drf_weights: dict[str, torch.Tensor] = {}
        for k, (drf, msam) in enumerate(zip(self.drf, self.msam, strict=True), start=1):
            x, weights, feats = drf.forward_with_weights(x)
            x, mask = msam.forward_with_mask(x)
            if collect:
                maps[f"msam{k}"] = mask
                shares = branch_shares(weights, feats)
                for b, d in enumerate(self.dilations):
                    maps[f"drf{k}_d{d}"] = shares[:, b : b + 1]
                drf_weights[f"drf{k}"] = weights
            if k == len(self.drf):
                x = self.features_out(x)
            x = self.pool(x)
        return self.head(x.mean((2, 3))), maps, drf_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)[0]

    @torch.no_grad()
    def _collect(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        was_training = self.training
        self.eval()
        try:
            _, maps, weights = self._forward(x, collect=True)
        finally:
            self.train(was_training)
        return {k: v.float() for k, v in maps.items()}, {k: v.float() for k, v in weights.items()}

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._collect(x)[0]

    def drf_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The raw DRF branch weights: ``drf1`` .. ``drf3``, each (N, B, C), a softmax over the B branches
        (dilations 1, 2, 3) for every channel."""
        return self._collect(x)[1]

    def last_conv_layer(self) -> nn.Module:
        """An identity module on the last stage's attended feature map (256 x 12 x 12), which hooks see: the
        DRF and MSAM modules are run through ``forward_with_*`` (no hooks fire), and the last
        ``nn.Conv2d`` would be the attention's own 7x7 mask convolution."""
        return self.features_out


@register_model(
    Recipe(
        optimizer="adamw",
        lr=1e-3,
        weight_decay=5e-4,
        schedule="cosine",
        warmup_epochs=1,
        epochs=25,
        batch_size=64,
        augment="standard",
        label_smoothing=0.1,
        early_stop_patience=8,
        notes=(
            "Source: settings not described. Here: AdamW 1e-3 (wd 5e-4), cosine over 25 epochs (~5 min/epoch on "
            "2 CPU cores), batch 64, standard batch augmentation, label smoothing 0.1, early stop after 8 flat epochs."
        ),
    ),
    "Stem + 3 x (dilated selective-kernel DRF -> SE + multi-scale spatial attention) (TF notebook)",
    "0.59 (source's best; its validation split)",
)
def drf_msam(**kwargs) -> DRFMSAMNet:
    return DRFMSAMNet(**kwargs)
