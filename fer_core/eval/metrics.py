"""Classification metrics from a confusion matrix, as the FER literature reports them.

Computed here (a few lines of numpy) rather than through scikit-learn so that the dashboard can
recompute them for any subset or ensemble instantly; ``tests/test_metrics.py`` checks every number
against scikit-learn.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str] | tuple[str, ...]) -> dict:
    """Accuracy, top-2 accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    k = len(classes)
    preds = probs.argmax(1)
    cm = confusion_matrix(labels, preds, k)
    tp = np.diag(cm).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / cm.sum(0))
        recall = np.nan_to_num(tp / cm.sum(1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    top2 = np.argsort(-probs, axis=1)[:, :2]
    return {
        "n": int(len(labels)),
        "accuracy": float((preds == labels).mean()),
        "top2_accuracy": float((top2 == labels[:, None]).any(1).mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            c: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(cm[i].sum()),
            }
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
    }
