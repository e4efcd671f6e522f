"""Training: one config, one loop for every model."""

from .config import TrainConfig
from .loop import run_finished, stratified_subset, train

__all__ = ["TrainConfig", "run_finished", "stratified_subset", "train"]
