"""FER Explorer core: datasets, the model zoo, training, evaluation and inference for facial expressions."""

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202 (PEP 562: lazy, so ``import fer_core`` does not load torch)
    """``fer_core.predict``: per-face emotions of a photo (see :func:`fer_core.inference.predict`)."""
    if name == "predict":
        from .inference import predict

        return predict
    raise AttributeError(f"module 'fer_core' has no attribute {name!r}")
