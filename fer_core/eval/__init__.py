"""Evaluation under the standard protocol: metrics, TTA predictions, reports."""

from .metrics import classification_metrics, confusion_matrix
from .predict import predict_probs
from .report import REPORT_SPLITS, TTAS, evaluate_model, headline, load_probs, write_report

__all__ = [
    "REPORT_SPLITS",
    "TTAS",
    "classification_metrics",
    "confusion_matrix",
    "evaluate_model",
    "headline",
    "load_probs",
    "predict_probs",
    "write_report",
]
