"""Explanations: Captum attributions, the models' own attention, feature maps, faithfulness, rendering."""

from .attribution import (
    METHODS,
    SIGNED,
    Explanation,
    attribute,
    attribute_target,
    explain_face,
    explainable,
    model_input,
    probabilities,
)
from .faithfulness import Deletion, deletion_score
from .features import class_atlas, feature_maps, own_attention

__all__ = [
    "METHODS",
    "SIGNED",
    "Deletion",
    "Explanation",
    "attribute",
    "attribute_target",
    "class_atlas",
    "deletion_score",
    "explain_face",
    "explainable",
    "feature_maps",
    "model_input",
    "own_attention",
    "probabilities",
]
