"""The model registry: ``@register_model`` stores a builder and its training recipe under a name.

As in timm, a model file ends with small builder functions; ``create_model(name, **kwargs)`` is the
one way the rest of the project makes a model, and ``get_recipe(name)`` tells the training loop how
the architecture's source trained it, so ``train_all.py`` needs no per-model code.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

import torch.nn as nn


@dataclass(frozen=True)
class Recipe:
    """How to train one architecture; every field can be overridden from the command line."""

    optimizer: str = "adamw"  # adamw | adam | sgd (SGD is always Nesterov with momentum 0.9)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine (with warm-up) | onecycle | plateau | constant
    warmup_epochs: int = 1
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    epochs: int = 40
    batch_size: int = 64
    augment: str = "standard"  # a key of fer_core.data.PRESETS
    label_smoothing: float = 0.0
    class_weights: bool = False
    grad_clip: float = 0.0  # 0 disables
    ema_decay: float = 0.0  # 0 disables the EMA of weights
    early_stop_patience: int = 0  # epochs without a better PublicTest accuracy; 0 disables
    notes: str = ""  # where the recipe departs from the source and why


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    recipe: Recipe
    summary: str  # one line for tables and the dashboard
    published: str = ""  # the source's published figure and the split it was measured on
    tags: tuple[str, ...] = field(default_factory=tuple)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    recipe: Recipe, summary: str, published: str = "", tags: tuple[str, ...] = ()
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn`` under its function name with its recipe."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} registered twice")
        _MODELS[fn.__name__] = ModelEntry(fn.__name__, fn, recipe, summary, published, tags)
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_entry(name: str) -> ModelEntry:
    try:
        return _MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None


def get_recipe(name: str) -> Recipe:
    return model_entry(name).recipe


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. ``model.model_name`` and ``model.model_args`` record how, so a
    checkpoint can rebuild it without pickling code."""
    model = model_entry(name).builder(**kwargs)
    model.model_name = name
    model.model_args = dict(kwargs)
    return model


def parse_model_list(spec: str) -> list[str]:
    """``"a,b"`` from a command line -> registered names (all of them for an empty spec).

    Raises ``KeyError`` naming the first unknown model and the registered ones."""
    names = [m.strip() for m in spec.split(",") if m.strip()] or list_models()
    for name in names:
        model_entry(name)
    return names
