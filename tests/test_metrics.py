"""Our metrics agree with scikit-learn's."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from fer_core.data import CLASSES
from fer_core.eval import classification_metrics


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    logits = rng.normal(size=(500, 7))
    logits[np.arange(500), labels] += rng.normal(1.0, 1.0, 500)  # a better-than-chance classifier
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    preds = probs.argmax(1)
    m = classification_metrics(probs, labels, CLASSES)
    assert np.isclose(m["accuracy"], skm.accuracy_score(labels, preds))
    assert np.isclose(m["top2_accuracy"], skm.top_k_accuracy_score(labels, probs, k=2))
    assert np.isclose(m["macro_f1"], skm.f1_score(labels, preds, average="macro"))
    p, r, f, s = skm.precision_recall_fscore_support(labels, preds, zero_division=0)
    for i, c in enumerate(CLASSES):
        pc = m["per_class"][c]
        assert np.allclose([pc["precision"], pc["recall"], pc["f1"], pc["support"]], [p[i], r[i], f[i], s[i]])
    assert np.array_equal(np.array(m["confusion_matrix"]), skm.confusion_matrix(labels, preds))


def test_a_class_never_predicted_has_zero_precision():
    labels = np.array([0, 1, 1, 2])
    probs = np.eye(7)[[0, 0, 0, 2]]
    m = classification_metrics(probs, labels, CLASSES)
    assert m["per_class"]["disgust"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    expected = skm.f1_score(labels, probs.argmax(1), average="macro", labels=range(7), zero_division=0)
    assert np.isclose(m["macro_f1"], expected)
