"""lobo_net: the final CNN of the course report "Human facial expression detector using Deep Learning
Network" (a Keras model trained on the Kaggle FER2013 folders), and the report's ablations.

Architecture (Keras layer by layer)::

    conv32 -> conv64 -> BN -> maxpool -> dropout 0.25
    conv128 -> conv256 (unpadded, L2 0.01) -> BN -> maxpool -> dropout 0.25
    flatten -> dense 1024 -> dropout 0.5 -> dense 7

Ablations from the report, registered beside it: two conv layers only (``lobo_net_2conv``), plus
batch norm (``lobo_net_2conv_bn``), plus dropout (``lobo_net_2conv_bn_dropout``).

Choices the report left open, and deviations:

- Padding: the report marks only conv256 as unpadded; the other convolutions are 'same'. That is
  the reading that gives its "about 32 M parameters" (11 x 11 x 256 features into dense 1024).
- The L2 0.01 kernel penalty on conv256 is added to the loss exactly as Keras does
  (``0.01 * sum(W**2)``) through :meth:`regularization_loss`, not as optimizer weight decay.
- PyTorch batch-norm defaults (momentum 0.1, eps 1e-5) instead of Keras' (0.99, 1e-3).
- Inputs are normalised with mean 0.5 / std 0.25 instead of the report's rescale 1/255 only.
- Reported result: 0.632 accuracy on the merged Public+Private test folder (Kaggle's ``test/``);
  we report PublicTest and PrivateTest separately.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._registry import Recipe, register_model
from .base import FERModel, InputConfig


def _conv(cin: int, cout: int, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=padding), nn.ReLU(inplace=True)]


class LoboNet(FERModel):
    default_cfg = InputConfig(input_size=48, crop=1.0)

    def __init__(self, four_conv: bool = True, batch_norm: bool = True, dropout: bool = True, num_classes: int = 7):
        super().__init__()
        drop = (lambda p: [nn.Dropout(p)]) if dropout else (lambda p: [])
        bn = (lambda c: [nn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
        layers = [*_conv(1, 32), *_conv(32, 64), *bn(64), nn.MaxPool2d(2), *drop(0.25)]
        side = 24
        self.l2_index: int | None = None  # conv256's place in ``features`` (registered once: no shared tensors)
        if four_conv:
            layers += _conv(64, 128)
            self.l2_index = len(layers)
            layers += [nn.Conv2d(128, 256, 3, padding=0), nn.ReLU(inplace=True), *bn(256), nn.MaxPool2d(2)]
            layers += drop(0.25)
            channels, side = 256, 11
        else:
            channels = 64
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, 1024),
            nn.ReLU(inplace=True),
            *drop(0.5),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def regularization_loss(self) -> torch.Tensor | float:
        if self.l2_index is None:
            return 0.0
        return 0.01 * self.features[self.l2_index].weight.pow(2).sum()


_RECIPE = Recipe(
    optimizer="adam",
    lr=1e-4,
    weight_decay=0.0,
    schedule="plateau",
    plateau_factor=0.5,
    plateau_patience=3,
    epochs=40,
    batch_size=32,
    augment="keras_zoom",
    early_stop_patience=8,
    notes="The report's recipe: Adam 1e-4, batch 32, zoom 0.3 + flips, ReduceLROnPlateau, early stopping.",
)
_PUBLISHED = "0.632 (merged Public+Private test folder)"


@register_model(_RECIPE, "Keras-era 4-conv CNN with a 32 M-parameter dense head (course report)", _PUBLISHED)
def lobo_net(**kwargs) -> LoboNet:
    return LoboNet(four_conv=True, batch_norm=True, dropout=True, **kwargs)


@register_model(_RECIPE, "lobo_net ablation: two conv layers only", tags=("ablation",))
def lobo_net_2conv(**kwargs) -> LoboNet:
    return LoboNet(four_conv=False, batch_norm=False, dropout=False, **kwargs)


@register_model(_RECIPE, "lobo_net ablation: two conv layers + batch norm", tags=("ablation",))
def lobo_net_2conv_bn(**kwargs) -> LoboNet:
    return LoboNet(four_conv=False, batch_norm=True, dropout=False, **kwargs)


@register_model(_RECIPE, "lobo_net ablation: two conv layers + batch norm + dropout", tags=("ablation",))
def lobo_net_2conv_bn_dropout(**kwargs) -> LoboNet:
    return LoboNet(four_conv=False, batch_norm=True, dropout=True, **kwargs)
