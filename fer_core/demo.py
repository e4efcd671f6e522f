"""The demo sample shipped with the package: a few hundred real PrivateTest faces, stratified by class.

It lets every dashboard page show real faces on a fresh machine without the dataset. The faces keep
their FER2013 names, so the per-sample probabilities in each checkpoint's ``probs.npz`` (computed on
the whole PrivateTest) give their per-model predictions without running any model.
Rebuild it with ``python scripts/make_demo_sample.py --data ~/fer2013``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import CLASSES, FaceSet

DEMO_PATH = Path(__file__).resolve().parent / "assets" / "demo_faces.npz"
DEMO_SPLIT = "PrivateTest"


def make_demo_sample(faces: FaceSet, per_class: int = 43, seed: int = 0) -> FaceSet:
    """``per_class`` random faces of every class (all of a class if it has fewer)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(len(faces.classes)):
        idx = torch.nonzero(faces.labels == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values)
    return faces.subset(torch.cat(keep))


def save_demo(faces: FaceSet, path: Path = DEMO_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, images=faces.images.numpy(), labels=faces.labels.numpy().astype(np.int8), names=np.array(faces.names)
    )


def load_demo(path: Path = DEMO_PATH) -> FaceSet:
    with np.load(path, allow_pickle=False) as z:
        return FaceSet(
            torch.from_numpy(z["images"]),
            torch.from_numpy(z["labels"].astype(np.int64)),
            [str(n) for n in z["names"]],
            CLASSES,
        )


def one_of_each_class(faces: FaceSet) -> np.ndarray:
    """Indices taking one face of every class in turn (angry, disgust, ..., then again): the demo sample is
    stored class by class, so its first faces are all angry; this order shows every expression early."""
    labels = faces.labels.numpy()
    ranks = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        ranks[labels == c] = np.arange((labels == c).sum())  # the k-th face of its class
    return np.lexsort((labels, ranks))  # by rank, then class
