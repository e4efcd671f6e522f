"""The model zoo: ``create_model(name, **kwargs)``, ``list_models()``, each model's recipe."""

from . import lobo_net, vggnet  # noqa: F401  (importing registers the builders)
from ._registry import ModelEntry, Recipe, create_model, get_recipe, list_models, model_entry, register_model
from .base import FERModel, InputConfig, ModelOutput, split_output

__all__ = [
    "FERModel",
    "InputConfig",
    "ModelEntry",
    "ModelOutput",
    "Recipe",
    "create_model",
    "get_recipe",
    "list_models",
    "model_entry",
    "register_model",
    "split_output",
]
