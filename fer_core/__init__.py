"""FER Explorer core: datasets, the model zoo, training, evaluation and inference for facial expressions."""

__version__ = "0.1.0"
