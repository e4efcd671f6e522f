"""What the network sees inside: per-stage activations, the model's own attention, class atlases."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..data import FaceSet
from .attribution import attribute, model_input, probabilities


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, top: int = 16, max_layers: int = 12) -> dict[str, torch.Tensor]:
    """Activations of every conv layer for input ``x``: name -> (k, h, w), the ``top`` most active channels
    first (by mean activation), as the course report's prediction mode showed them."""
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    if len(convs) > max_layers:  # keep the stages readable: spread evenly, always the last one
        keep = {round(i * (len(convs) - 1) / (max_layers - 1)) for i in range(max_layers)}
        convs = [c for i, c in enumerate(convs) if i in keep]
    out: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, o, name=name: out.__setitem__(name, o[0].float())) for name, m in convs
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    ranked = {}
    for name, act in out.items():
        act = act.relu()
        order = act.mean((1, 2)).argsort(descending=True)[:top]
        ranked[name] = act[order]
    return ranked


@torch.no_grad()
def own_attention(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's built-in attention (``attention_maps``), or {} for models without one."""
    fn = getattr(model, "attention_maps", None)
    return {k: v.detach().float() for k, v in fn(x).items()} if fn is not None else {}


def class_atlas(
    model: nn.Module, faces: FaceSet, method: str = "gradcam", per_class: int = 20, seed: int = 0
) -> tuple[torch.Tensor, list[int]]:
    """Mean attribution of each class over up to ``per_class`` correctly classified faces.

    Returns ((C, H, W) maps, each scaled to [0, 1] where non-empty; the number of faces per class).
    """
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(faces), generator=g)
    maps: list[list[torch.Tensor]] = [[] for _ in faces.classes]
    for i in order.tolist():
        label = int(faces.labels[i])
        if len(maps[label]) >= per_class:
            continue
        x = model_input(model, faces.images[i])
        if int(probabilities(model, x).argmax()) != label:
            continue
        maps[label].append(attribute(model, x, label, method).abs())
        if all(len(m) >= per_class for m in maps):
            break
    size = model_input(model, faces.images[0]).shape[-2:]
    atlas = torch.zeros(len(faces.classes), *size)
    for c, ms in enumerate(maps):
        if ms:
            mean = torch.stack(ms).mean(0)
            atlas[c] = mean / mean.max().clamp_min(1e-12)
    return atlas, [len(m) for m in maps]
