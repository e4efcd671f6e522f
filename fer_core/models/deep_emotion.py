"""Deep-Emotion: Minaee & Abdolrashidi, "Deep-Emotion: Facial Expression Recognition Using Attentional
Convolutional Network", arXiv:1902.01019 (2019; Sensors 21(9):3046, 2021): 70.02% reported on FER2013.

Architecture (the paper's figure, as in the widely used PyTorch port)::

    spatial transformer on the input face:
        localisation: conv7x7 (1 -> 8) - maxpool 2 - ReLU - conv5x5 (8 -> 10) - maxpool 2 - ReLU
        regressor:    FC 640 -> 32 - ReLU - FC 32 -> 6 (the affine matrix)
    classifier on the warped face:
        conv3x3 (10) - ReLU - conv3x3 (10) - maxpool 2 - ReLU
        conv3x3 (10) - ReLU - conv3x3 (10) - BN - maxpool 2 - ReLU
        dropout 0.5 - FC 810 -> 50 - ReLU - FC 50 -> 7

66,867 parameters. ``attention_maps`` returns ``stn_warped`` (the warped face, un-normalised to
[0, 1]) and ``stn_grid`` (the output's regular lattice drawn where it samples the input face, see
:func:`fer_core.layers.sampling_lattice`); :meth:`DeepEmotion.sampling_grid` gives the raw grid.

Deviations from the paper and fixes to the port:

- The transform starts at the identity (zero regression weights, identity bias), and ``affine_grid``
  and ``grid_sample`` share ``align_corners=False``, so the warped face equals the input at step 0. The
  port calls both without ``align_corners`` (a warning, and a behaviour that changed across versions).
- Dropout is an ``nn.Dropout`` module, off in eval mode; the port calls ``F.dropout`` with its default
  ``training=True``, so its published evaluations dropped half the features at random.
- The paper's loss adds an L2 penalty on the weights of the fully connected layers; here
  :meth:`DeepEmotion.regularization_loss` adds ``fc_l2 * sum(W ** 2)`` for the two classifier FC layers
  (not the transform regressor, which the penalty would pull towards a collapsed transform rather than
  the identity). ``fc_l2 = 1e-3`` is our choice: we could not confirm the paper's value.
- conv4 has no bias (it feeds batch norm, whose shift makes it redundant): 10 parameters fewer than the
  port's 66,877.
- Inputs normalised with mean 0.5 / std 0.25 (the port: 0.5 / 0.5); grid padding is zeros (mid-grey).
- Recipe: the port trains 100 epochs with Adam 0.005, batch 128, no augmentation. Here Adam 5e-3 with
  cosine (one warm-up epoch) over 100 epochs, batch 128, the "light" batch augmentation (the STN is
  there to undo small shifts and rotations); the network costs about 4 MMAC per face, so 100 epochs
  remain cheap on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import AffineSpatialTransformer, sampling_lattice
from ._registry import Recipe, register_model
from .base import FERModel, InputConfig


class DeepEmotion(FERModel):
    default_cfg = InputConfig(input_size=48, crop=1.0)

    def __init__(self, dropout: float = 0.5, fc_l2: float = 1e-3, num_classes: int = 7):
        super().__init__()
        self.fc_l2 = fc_l2
        self.features = nn.Sequential(
            nn.Conv2d(1, 10, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(10, 10, 3),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(10, 10, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(10, 10, 3, bias=False),
            nn.BatchNorm2d(10),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        self.fc1 = nn.Linear(810, 50)
        self.fc2 = nn.Linear(50, num_classes)
        self.dropout = nn.Dropout(dropout)
        localization = nn.Sequential(
            nn.Conv2d(1, 8, 7),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 10, 5),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        self.stn = AffineSpatialTransformer(localization, loc_features=640, hidden=32, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.stn(x))
        return self.fc2(torch.relu(self.fc1(self.dropout(x.flatten(1)))))

    def regularization_loss(self) -> torch.Tensor | float:
        if not self.fc_l2:
            return 0.0
        return self.fc_l2 * (self.fc1.weight.pow(2).sum() + self.fc2.weight.pow(2).sum())

    @torch.no_grad()
    def sampling_grid(self, x: torch.Tensor) -> torch.Tensor:
        """The transformer's sampling grid (N, H, W, 2), (x, y) in [-1, 1] as ``F.grid_sample`` takes it."""
        return self.stn.forward_with_grid(x)[1]

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        warped, grid = self.stn.forward_with_grid(x)  # no dropout or batch norm on this path
        cfg = self.default_cfg
        return {
            "stn_warped": (warped * cfg.std + cfg.mean).clamp(0, 1),
            "stn_grid": sampling_lattice(grid, step=6, align_corners=self.stn.align_corners),
        }

    def last_conv_layer(self) -> nn.Module:
        return self.features[7]  # conv4, not the localisation network's convolutions


@register_model(
    Recipe(
        optimizer="adam",
        lr=5e-3,
        weight_decay=0.0,
        schedule="cosine",
        warmup_epochs=1,
        epochs=100,
        batch_size=128,
        augment="light",
        notes=(
            "Port: Adam 0.005, batch 128, 100 epochs, no augmentation, no schedule; paper: L2 on FC weights. "
            "Here: the same optimizer, lr, batch and epochs with cosine decay, light batch augmentation, "
            "L2 1e-3 on the classifier FC weights through regularization_loss()."
        ),
    ),
    "Small CNN behind a spatial transformer that warps the face (Minaee & Abdolrashidi 2019)",
    "70.02% on FER2013 (the paper's test accuracy)",
)
def deep_emotion(**kwargs) -> DeepEmotion:
    return DeepEmotion(**kwargs)
