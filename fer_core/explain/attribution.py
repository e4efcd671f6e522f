"""Attributions for one face: which input pixels drove a model's score for a class.

One verb, Captum-style: ``attribute(model, x, target, method)`` returns a map shaped like the model's
input (H, W). The methods are Captum's (``captum.attr``); Captum Insights is retired upstream, so the
rendering is ours (:mod:`fer_core.explain.render`).

- ``saliency``: |d score / d pixel| (Simonyan et al. 2014).
- ``integrated_gradients``: path integral of gradients from a black face (Sundararajan et al. 2017).
- ``smoothgrad``: saliency averaged over noisy copies (Smilkov et al. 2017), Captum's NoiseTunnel.
- ``guided_backprop``: gradients with negative ReLU gradients zeroed (Springenberg et al. 2015).
- ``gradcam``: last conv layer's activations weighted by pooled gradients, upsampled (Selvaraju et al. 2017).
- ``guided_gradcam``: guided backprop times Grad-CAM.
- ``occlusion``: score drop when an 8x8 patch is greyed out (Zeiler & Fergus 2014).

Signed methods (integrated gradients, guided backprop, guided Grad-CAM, occlusion) keep their sign, so
a diverging colour map can show evidence for and against the class.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import (
    GuidedBackprop,
    GuidedGradCam,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

from ..data import eval_views
from .faithfulness import Deletion, deletion_score

METHODS: dict[str, str] = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "guided_backprop": "Guided Backprop",
    "gradcam": "Grad-CAM",
    "guided_gradcam": "Guided Grad-CAM",
    "occlusion": "Occlusion",
}
SIGNED = {"integrated_gradients", "guided_backprop", "guided_gradcam", "occlusion"}


def model_input(model: nn.Module, face: torch.Tensor) -> torch.Tensor:
    """The exact tensor evaluation feeds the model for a uint8 48x48 face: (1, 1, S, S), normalised."""
    cfg = model.default_cfg
    face = torch.as_tensor(face, dtype=torch.uint8).reshape(1, 48, 48)
    return eval_views(face, cfg.input_size, cfg.crop, "none", cfg.mean, cfg.std)[0]


def explainable(model: nn.Module) -> nn.Module:
    """A float32 eval-mode copy with out-of-place ReLUs: Captum's backward hooks (guided backprop)
    break on in-place activations, and the user's model is left untouched."""
    m = copy.deepcopy(model).float().eval()
    for module in m.modules():
        if isinstance(module, nn.ReLU | nn.ReLU6 | nn.LeakyReLU | nn.SiLU | nn.GELU) and hasattr(module, "inplace"):
            module.inplace = False
    return m


def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.softmax(model(x).float(), dim=1)[0]


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    method: str,
    ig_steps: int = 32,
    smoothgrad_samples: int = 16,
    occlusion_window: int = 8,
) -> torch.Tensor:
    """Attribution of ``model``'s score for class ``target`` to each input pixel: (H, W) float32.

    ``model`` should come from :func:`explainable`; ``x`` from :func:`model_input`.
    """
    x = x.detach().clone().requires_grad_(True)
    if method == "saliency":
        a = Saliency(model).attribute(x, target=target, abs=True)
    elif method == "integrated_gradients":
        baseline = torch.full_like(x, float((0 - model.default_cfg.mean) / model.default_cfg.std))  # black face
        a = IntegratedGradients(model).attribute(
            x, baselines=baseline, target=target, n_steps=ig_steps, internal_batch_size=ig_steps
        )
    elif method == "smoothgrad":
        a = NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=smoothgrad_samples,
            nt_samples_batch_size=smoothgrad_samples,
            stdevs=0.2,
            target=target,
            abs=True,
        )
    elif method == "guided_backprop":
        a = GuidedBackprop(model).attribute(x, target=target)
    elif method == "gradcam":
        cam = LayerGradCam(model, model.last_conv_layer()).attribute(x, target=target, relu_attributions=True)
        a = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    elif method == "guided_gradcam":
        a = GuidedGradCam(model, model.last_conv_layer()).attribute(x, target=target, interpolate_mode="bilinear")
    elif method == "occlusion":
        w = occlusion_window
        a = Occlusion(model).attribute(
            x,
            target=target,
            sliding_window_shapes=(1, w, w),
            strides=(1, w // 2, w // 2),
            baselines=0.0,
            perturbations_per_eval=64,
        )
    else:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return a.detach().float().reshape(x.shape[-2:])


def attribute_target(target: str | int, probs: torch.Tensor, true_label: int | None = None) -> int:
    """Resolve "predicted", "true" or a class index to a class index."""
    if target == "predicted":
        return int(probs.argmax())
    if target == "true":
        if true_label is None:
            raise ValueError("this face has no known true label")
        return int(true_label)
    return int(target)


@dataclass
class Explanation:
    """Everything the Explain page shows for one model and one face (all on the CPU, numpy-friendly)."""

    probs: torch.Tensor  # (C,)
    target: int
    face: torch.Tensor  # (1, 1, H, W): the model's exact input
    maps: dict[str, torch.Tensor] = field(default_factory=dict)  # method -> (H, W)
    deletion: dict[str, Deletion] = field(default_factory=dict)  # method -> faithfulness


def explain_face(
    model: nn.Module,
    face: torch.Tensor,
    methods: list[str],
    target: str | int = "predicted",
    true_label: int | None = None,
    faithfulness: bool = True,
    **kwargs: int,
) -> Explanation:
    """Attributions of every method in ``methods`` for one uint8 48x48 face (and their deletion scores).

    ``model`` should come from :func:`explainable`; ``kwargs`` go to :func:`attribute`.
    """
    x = model_input(model, face)
    probs = probabilities(model, x)
    cls = attribute_target(target, probs, true_label)
    out = Explanation(probs, cls, x)
    for method in methods:
        out.maps[method] = attribute(model, x, cls, method, **kwargs)
        if faithfulness:
            out.deletion[method] = deletion_score(model, x, out.maps[method], cls)
    return out
