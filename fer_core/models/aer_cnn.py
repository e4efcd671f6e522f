"""AER-CNN: an attention-based emotion-region CNN, reconstructed from the description of a public
TensorFlow notebook on FER2013 (no paper, no code used). The notebook reported about 0.59 validation
accuracy for its best model (see :mod:`.drf_msam`) and called AER-CNN more robust than its
multi-scale sibling (:mod:`.msff_cnn`); no figure of AER-CNN's own is known to us.

Architecture::

    4 blocks of [conv3x3-BN-ReLU] x 2, widths 32/64/128/256, each followed by maxpool 2
    spatial attention (channel mean and max -> 7x7 conv -> sigmoid mask, multiplied in)
        on the feature maps of blocks 2, 3 and 4
    global average pool of each attended map -> concatenate (64 + 128 + 256 = 448)
    FC 256 -> ReLU -> dropout 0.5 -> FC 7

About 1.29 M parameters.

Choices the description left open, and deviations:

- The attention acts on each block's conv output before its pooling (masks of 24, 12 and 6 pixels for
  a 48 px face) and the attended map continues down the trunk ("multiplied in"). Block 4's maxpool is
  dropped: the global pool of the fusion takes its place.
- The spatial attention is :class:`fer_core.layers.SpatialAttention`, the same module as CBAM's.
- Fusion by concatenation; dropout 0.5 (the notebook's rate is not given).
- Convolutions before batch norm have no bias (BN's shift makes it redundant).
- Inputs normalised with mean 0.5 / std 0.25, like the rest of the zoo.
- Recipe: the description we worked from gives no training settings. Here AdamW 1e-3 (wd 5e-4),
  cosine with one warm-up epoch over 40 epochs, batch 64, the "standard" batch augmentation and label
  smoothing 0.1. About 300 img/s on 2 CPU cores, so 1.5-2 minutes per epoch, about 1.2 h in all.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import SpatialAttention
from ._registry import Recipe, register_model
from .base import FERModel, InputConfig
from .vggnet import conv_bn_relu


class AERCNN(FERModel):
    """Conv trunk with spatial attention on blocks ``attend`` (1-based) and a fused global descriptor.

    ``attention_maps`` returns ``block2``, ``block3``, ``block4``: the sigmoid masks (N, 1, h, w).
    """

    default_cfg = InputConfig(input_size=48, crop=1.0)

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        attend: tuple[int, ...] = (2, 3, 4),
        fc: int = 256,
        dropout: float = 0.5,
        num_classes: int = 7,
    ):
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = 1
        for w in widths:
            self.blocks.append(nn.Sequential(*conv_bn_relu(cin, w), *conv_bn_relu(w, w)))
            cin = w
        self.attend = tuple(attend)
        self.attn = nn.ModuleDict({f"block{i}": SpatialAttention(7) for i in self.attend})
        self.pool = nn.MaxPool2d(2)
        fused = sum(widths[i - 1] for i in self.attend)
        self.head = nn.Sequential(
            nn.Linear(fused, fc), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(fc, num_classes)
        )

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pooled, maps = [], {}
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            name = f"block{i}"
            if name in self.attn:
                x, maps[name] = self.attn[name].forward_with_mask(x)
                pooled.append(x.mean((2, 3)))
            if i < len(self.blocks):
                x = self.pool(x)
        return self.head(torch.cat(pooled, 1)), maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)[0]

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        was_training = self.training
        self.eval()
        try:
            return {k: v.float() for k, v in self._forward(x)[1].items()}
        finally:
            self.train(was_training)

    def last_conv_layer(self) -> nn.Module:
        return [m for m in self.blocks[-1] if isinstance(m, nn.Conv2d)][-1]  # not the attention's 7x7


_RECIPE = Recipe(
    optimizer="adamw",
    lr=1e-3,
    weight_decay=5e-4,
    schedule="cosine",
    warmup_epochs=1,
    epochs=40,
    batch_size=64,
    augment="standard",
    label_smoothing=0.1,
    early_stop_patience=10,
    notes=(
        "Source: training settings not described. Here: AdamW 1e-3 (wd 5e-4), cosine over 40 epochs (~1.5-2 "
        "min/epoch on 2 CPU cores), batch 64, standard augmentation, label smoothing 0.1, early stop after 10."
    ),
)


@register_model(
    _RECIPE,
    "4-block CNN with spatial attention on blocks 2-4 and fused global pools (TF notebook)",
    "none of its own; the notebook's best model: about 0.59 (its validation split)",
)
def aer_cnn(**kwargs) -> AERCNN:
    return AERCNN(**kwargs)
