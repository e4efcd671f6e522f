"""The model zoo: ``create_model(name, **kwargs)``, ``list_models()``, each model's recipe."""

from . import aer_cnn, deep_emotion, drf_msam, lobo_net, msff_cnn, sotaresemote, vggnet  # noqa: F401  (registers them)
from ._registry import (
    ModelEntry,
    Recipe,
    create_model,
    get_recipe,
    list_models,
    model_entry,
    parse_model_list,
    register_model,
)
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
    "parse_model_list",
    "register_model",
    "split_output",
]
