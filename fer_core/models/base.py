"""What every model in the zoo offers on top of ``forward``.

- ``forward(x)`` returns logits, or, for a model with auxiliary heads in training mode, a
  :class:`ModelOutput` that the training loop knows how to weigh.
- ``attention_maps(x)``: the model's own attention, maps (N, 1, H, W) in [0, 1]; empty by default.
- ``last_conv_layer()``: where Grad-CAM hooks in.
- ``regularization_loss()``: penalties the source put in the loss (Keras L2 on a layer, say) rather
  than in the optimizer's weight decay.
- ``default_cfg``: input size, crop fraction and normalisation, so no caller hard-codes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass(frozen=True)
class InputConfig:
    input_size: int = 48  # the side the network takes
    crop: float = 1.0  # fraction of the 48x48 face the model sees at test time (centre crop)
    mean: float = 0.5
    std: float = 0.25


@dataclass
class ModelOutput:
    logits: torch.Tensor
    aux: dict[str, tuple[float, torch.Tensor]] = field(default_factory=dict)  # name -> (loss weight, logits)


def split_output(out: torch.Tensor | ModelOutput) -> tuple[torch.Tensor, dict[str, tuple[float, torch.Tensor]]]:
    return (out.logits, out.aux) if isinstance(out, ModelOutput) else (out, {})


class FERModel(nn.Module):
    default_cfg: InputConfig = InputConfig()

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def last_conv_layer(self) -> nn.Module:
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        return convs[-1]

    def regularization_loss(self) -> torch.Tensor | float:
        return 0.0
