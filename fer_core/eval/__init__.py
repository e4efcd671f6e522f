"""Evaluation under the standard protocol: metrics, TTA predictions, reports; and beyond accuracy:
calibration, corruption robustness and cross-dataset transfer (``robustness.json``, ``crossdata.json``)."""

from .calibration import ece, fit_temperature, nll, reliability_bins, stored_temperature, temperature_scale
from .corruptions import CORRUPTIONS, corrupt, list_corruptions
from .metrics import classification_metrics, confusion_matrix
from .predict import predict_logits, predict_probs
from .report import REPORT_SPLITS, TTAS, evaluate_model, headline, load_probs, write_report

__all__ = [
    "CORRUPTIONS",
    "REPORT_SPLITS",
    "TTAS",
    "classification_metrics",
    "confusion_matrix",
    "corrupt",
    "ece",
    "evaluate_model",
    "fit_temperature",
    "headline",
    "list_corruptions",
    "load_probs",
    "nll",
    "predict_logits",
    "predict_probs",
    "reliability_bins",
    "stored_temperature",
    "temperature_scale",
    "write_report",
]
