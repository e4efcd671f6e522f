"""Training: one config, one loop for every model (in one process, or on many under torchrun)."""

from . import distributed
from .config import TrainConfig
from .loop import run_finished, stratified_subset, train

__all__ = ["TrainConfig", "distributed", "run_finished", "stratified_subset", "train"]
