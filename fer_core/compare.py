"""Comparing models from their saved per-sample probabilities (no model is run).

Each checkpoint folder's ``probs.npz`` holds, per split and TTA, the class probabilities of every face.
These functions line those up across models, find the faces in a confusion-matrix cell or where two
models disagree, and build weighted ensembles, all in numpy so the dashboard stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .eval.report import load_probs


@dataclass
class Predictions:
    """One model's probabilities on one split: ``probs`` (N, C), ``labels`` (N,), ``names`` (N,)."""

    model: str
    probs: np.ndarray
    labels: np.ndarray
    names: np.ndarray

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.labels).mean())

    def take(self, index: np.ndarray) -> Predictions:
        return Predictions(self.model, self.probs[index], self.labels[index], self.names[index])


def load_predictions(folder: str | Path, split: str, tta: str = "none", model: str | None = None) -> Predictions:
    """The saved predictions of the checkpoint in ``folder`` for ``split`` and ``tta``."""
    arrays = load_probs(Path(folder))
    key = f"{split}_{tta}"
    if key not in arrays:
        raise KeyError(f"{folder}/probs.npz has no predictions for {split} with TTA {tta!r}")
    return Predictions(
        model or Path(folder).name,
        arrays[key].astype(np.float32),
        arrays[f"{split}_labels"].astype(np.int64),
        arrays[f"{split}_names"],
    )


def align(preds: list[Predictions], names: np.ndarray | list[str] | None = None) -> list[Predictions]:
    """Restrict every model to the same faces in the same order (``names``, or those all models share)."""
    if names is None:
        common = set(preds[0].names.tolist())
        for p in preds[1:]:
            common &= set(p.names.tolist())
        names = [n for n in preds[0].names.tolist() if n in common]
    names = list(names)
    out = []
    for p in preds:
        where = {n: i for i, n in enumerate(p.names.tolist())}
        missing = [n for n in names if n not in where]
        if missing:
            raise KeyError(f"{p.model} has no prediction for {len(missing)} faces, e.g. {missing[0]}")
        out.append(p.take(np.array([where[n] for n in names], dtype=np.int64)))
    return out


def cell_indices(p: Predictions, true_class: int, pred_class: int) -> np.ndarray:
    """Indices of the faces of ``true_class`` that the model called ``pred_class``."""
    return np.flatnonzero((p.labels == true_class) & (p.preds == pred_class))


def disagreements(a: Predictions, b: Predictions) -> np.ndarray:
    """Indices where two aligned models predict different classes."""
    return np.flatnonzero(a.preds != b.preds)


def top_k(probs: np.ndarray, classes: tuple[str, ...] | list[str], k: int = 2) -> list[tuple[str, float]]:
    order = np.argsort(-probs)[:k]
    return [(classes[i], float(probs[i])) for i in order]


def ensemble(preds: list[Predictions], weights: list[float] | None = None, name: str = "ensemble") -> Predictions:
    """Weighted mean of aligned members' probabilities."""
    if not preds:
        raise ValueError("an ensemble needs at least one member")
    w = np.ones(len(preds)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        raise ValueError("ensemble weights must not all be zero")
    probs = sum(wi * p.probs for wi, p in zip(w / w.sum(), preds, strict=True))
    return Predictions(name, probs.astype(np.float32), preds[0].labels, preds[0].names)


def greedy_ensemble(val: dict[str, Predictions], max_members: int = 7) -> list[str]:
    """Members chosen on the validation split (PublicTest): forward selection with replacement-free steps,
    adding the model that most improves ensemble accuracy, stopping when none does."""
    chosen: list[str] = []
    best = -1.0
    while len(chosen) < max_members:
        scores = {m: ensemble([val[c] for c in [*chosen, m]]).accuracy for m in val if m not in chosen}
        if not scores:
            break
        m, acc = max(scores.items(), key=lambda kv: kv[1])
        if acc <= best:
            break
        chosen.append(m)
        best = acc
    return chosen


def index_by_name(names: np.ndarray | list[str], faces_names: list[str]) -> np.ndarray:
    """For each prediction name, the index of that face in ``faces_names`` (-1 where it is absent)."""
    where = {n: i for i, n in enumerate(faces_names)}
    return np.array([where.get(str(n), -1) for n in names], dtype=np.int64)
