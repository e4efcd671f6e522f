"""Calibration: is a model as sure as it is right? Reliability bins, ECE, NLL and temperature scaling.

Guo et al. 2017, "On Calibration of Modern Neural Networks" (arXiv:1706.04599): bin the top-label
confidence, compare each bin's mean confidence with its accuracy (the reliability diagram); the
expected calibration error is the count-weighted mean gap. Temperature scaling divides the logits by
one scalar ``T`` fitted by minimising the negative log-likelihood on a held-out split (PublicTest
here, never the reported PrivateTest): it changes no prediction (argmax is unchanged) and usually
removes most of a network's over-confidence.

Everything takes numpy arrays or tensors and returns plain floats/lists, so reports are JSON as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

N_BINS = 15  # Guo et al.'s choice; with 3,589 faces that is ~240 faces per bin on average


def _np(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def reliability_bins(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, n_bins: int = N_BINS) -> dict:
    """Equal-width bins of top-label confidence over [0, 1]: per bin its face count, mean confidence and
    accuracy (``None`` for an empty bin, so a diagram draws no bar there), plus the bin edges."""
    probs, labels = _np(probs).astype(np.float64), _np(labels).astype(np.int64)
    conf, pred = probs.max(1), probs.argmax(1)
    right = (pred == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 cannot occur for a softmax
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    right_sum = np.bincount(which, weights=right, minlength=n_bins)
    mean = lambda s: [float(s[i] / count[i]) if count[i] else None for i in range(n_bins)]  # noqa: E731
    return {"edges": edges.tolist(), "count": count.tolist(), "confidence": mean(conf_sum), "accuracy": mean(right_sum)}


def ece(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, n_bins: int = N_BINS) -> float:
    """Expected calibration error: sum over bins of (faces in bin / all faces) * |accuracy - confidence|."""
    bins = reliability_bins(probs, labels, n_bins)
    n = sum(bins["count"])
    rows = zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
    return float(sum(c / n * abs(a - m) for c, a, m in rows if c))


def nll(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class (natural log); ``eps`` keeps a zero probability finite."""
    probs, labels = _np(probs).astype(np.float64), _np(labels).astype(np.int64)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], eps, None)).mean())


def apply_temperature(logits: np.ndarray | torch.Tensor, temperature: float) -> np.ndarray:
    """Probabilities ``softmax(logits / T)`` as float64 numpy (N, C)."""
    z = torch.as_tensor(_np(logits), dtype=torch.float64)
    return F.softmax(z / float(temperature), dim=1).numpy()


def fit_temperature(logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, max_iter: int = 100) -> float:
    """The ``T`` minimising the NLL of ``softmax(logits / T)``: L-BFGS on ``log T`` (so ``T`` stays positive),
    in float64. Fit it on a held-out split, never on the split you report."""
    z = torch.as_tensor(_np(logits), dtype=torch.float64)
    y = torch.as_tensor(_np(labels), dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def calibration_metrics(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> dict:
    """What a reliability diagram and its caption need: accuracy, ECE, NLL, mean confidence and the bins."""
    probs, labels = _np(probs), _np(labels).astype(np.int64)
    return {
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "confidence": float(probs.max(1).mean()),
        "ece": ece(probs, labels, n_bins),
        "nll": nll(probs, labels),
        "bins": reliability_bins(probs, labels, n_bins),
    }


def calibration_report(
    val_logits: np.ndarray | torch.Tensor,
    val_labels: np.ndarray | torch.Tensor,
    test_logits: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    n_bins: int = N_BINS,
) -> dict:
    """Fit ``T`` on the validation logits, then the test split's metrics before (T = 1) and after."""
    t = fit_temperature(val_logits, val_labels)
    return {
        "temperature": t,
        "n_bins": n_bins,
        "fit": {
            "nll_before": nll(apply_temperature(val_logits, 1.0), val_labels),
            "nll_after": nll(apply_temperature(val_logits, t), val_labels),
        },
        "before": calibration_metrics(apply_temperature(test_logits, 1.0), test_labels, n_bins),
        "after": calibration_metrics(apply_temperature(test_logits, t), test_labels, n_bins),
    }


# ---- using a stored temperature -----------------------------------------------------------------------
def stored_temperature(meta: Mapping[str, Any] | None) -> float | None:
    """The temperature a checkpoint's sidecar holds (``meta["calibration"]["temperature"]``), or None."""
    t = ((meta or {}).get("calibration") or {}).get("temperature")
    return float(t) if isinstance(t, int | float) and t > 0 else None


def temperature_scale(probs: np.ndarray | torch.Tensor, temperature: float | None) -> np.ndarray:
    """Calibrated probabilities from probabilities: ``softmax(log p / T)``.

    For probabilities that are one softmax of logits ``z`` this is exactly ``softmax(z / T)`` (``log p``
    is ``z`` minus a per-row constant, which softmax ignores), so pages can calibrate what they already
    computed or saved without running the model again. For probabilities averaged over TTA views it
    is the temperature applied to their mean, an approximation. ``None`` or 1 returns ``probs`` as float32.
    """
    p = _np(probs).astype(np.float64)
    if temperature is None or temperature == 1.0:
        return p.astype(np.float32)
    z = np.log(np.clip(p, 1e-30, None)) / float(temperature)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
