"""VGGNet for FER2013 from Khaireddin & Chen, "Facial Emotion Recognition: State of the Art Performance
on FER2013", arXiv:2105.03588 (2021): 73.28% on PublicTest with ten-crop test-time augmentation.

Architecture: four stages of two [conv3x3 -> BN -> ReLU] then maxpool (widths 64/128/256/512) on
40 x 40 crops of the 48 x 48 face, then FC 4096 -> FC 4096 -> FC 7 with dropout 0.2.

Deviations and choices the paper left open:

- Protocol: the paper selected its model on PrivateTest and reported PublicTest; we select on
  PublicTest and report both (the literature's protocol), so our PrivateTest figure is the honest one.
- Schedule: the paper trains 300 epochs with ReduceLROnPlateau (factor 0.75, patience 5). Its tuning
  study also ran cosine annealing close behind; the registered recipe uses cosine with one warm-up epoch
  over 60 epochs, because a schedule of known length fits a CPU budget. Optimizer as published: SGD,
  Nesterov, lr 0.01, momentum 0.9, weight decay 1e-4, batch 64.
- Augmentation as published (random rescale 0.8-1.2, rotation +-10 degrees, shifts, flip, random
  erasing), applied on whole batches (see :mod:`fer_core.data.augment`).
- Inputs normalised with mean 0.5 / std 0.25 (the paper divides by 255 only).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._registry import Recipe, register_model
from .base import FERModel, InputConfig


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VGGNet(FERModel):
    default_cfg = InputConfig(input_size=40, crop=40 / 48)

    def __init__(
        self, widths: tuple[int, ...] = (64, 128, 256, 512), fc: int = 4096, dropout: float = 0.2, num_classes: int = 7
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for w in widths:
            layers += [*conv_bn_relu(cin, w), *conv_bn_relu(w, w), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        side = self.default_cfg.input_size // 2 ** len(widths)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * side * side, fc),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc, fc),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    Recipe(
        optimizer="sgd",
        lr=0.01,
        weight_decay=1e-4,
        schedule="cosine",
        warmup_epochs=1,
        epochs=60,
        batch_size=64,
        augment="standard",
        notes="Paper: SGD Nesterov 0.01, ReduceLROnPlateau(0.75, 5), 300 epochs. Here: cosine over 60.",
    ),
    "VGG-style 8-conv CNN on 40x40 crops (Khaireddin & Chen 2021)",
    "73.28% PublicTest, ten-crop (selected on PrivateTest)",
)
def vggnet(**kwargs) -> VGGNet:
    return VGGNet(**kwargs)
