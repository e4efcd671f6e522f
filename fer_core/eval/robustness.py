"""The robustness report of a checkpoint: calibration, corruption robustness, stored beside its report.

Computed once per checkpoint (``scripts/compute_robustness.py``, or a background job from the
Robustness page) and read by the dashboard, like ``report.json``:

- **Calibration** on PrivateTest before and after temperature scaling fitted on PublicTest
  (:mod:`.calibration`); every page offers calibrated probabilities with that temperature
  (:func:`checkpoint_temperature`). It stays in the report: written into the weights file's header
  it would make git keep a second copy of every shipped weights file.
- **Corruptions** (:mod:`.corruptions`): PrivateTest accuracy (and ECE) under every registered
  corruption at severities 1..5, fixed seeds; the mean over that grid is the *mean corruption
  accuracy*, and its ratio to the clean accuracy the *relative* one.

Everything runs batched with the evaluation's single centre view (``tta="none"``) and, by default, in
float32, as ``report.json``'s ``none`` numbers are made, so the report reproduces on every machine;
``amp=True`` uses autocast where the device does it fast. The report says which (``precision``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import atomic_write_text
from ..data import FaceSet
from ..device import hardware_name, precision_name
from .calibration import N_BINS, calibration_metrics, calibration_report, ece, stored_temperature
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt, list_corruptions
from .predict import predict_logits

FORMAT = 1
FILENAME = "robustness.json"
Progress = Callable[[str, int, int], None]  # (what is being done, steps done, steps in all)


def weights_digest(weights: str | Path) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes: the same for a checkpoint whose
    sidecar was rewritten, different for other weights. Cached per file version (about a second for
    a 70 MB checkpoint)."""
    stat = Path(weights).stat()
    return _digest_of_version(str(weights), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _digest_of_version(weights: str, mtime_ns: int, size: int) -> str:
    from safetensors import safe_open

    h = hashlib.sha256()
    with safe_open(weights, framework="pt") as f:
        for k in sorted(f.keys()):  # noqa: SIM118 (safe_open is not a dict)
            t = f.get_tensor(k).contiguous()
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def made_for(robustness: dict[str, Any] | None, weights: str | Path) -> bool:
    """True when the stored robustness report was made for the tensors in ``weights`` (its
    ``weights_digest``). A report made for weights since re-shipped, or one without a digest, is not:
    the page then offers to recompute it, and no page calibrates with its temperature."""
    from safetensors import SafetensorError

    if not robustness or "weights_digest" not in robustness:
        return False
    try:
        return robustness["weights_digest"] == weights_digest(weights)
    except (SafetensorError, OSError, ValueError):
        return False  # unreadable weights: the caller's own load reports that


def checkpoint_temperature(weights: str | Path, meta: dict[str, Any] | None = None) -> float | None:
    """The calibration temperature of the checkpoint ``weights``, or None when it has none.

    The temperature its robustness report (beside it) fitted, when that report was :func:`made_for`
    these tensors; otherwise one that an older checkpoint holds in its sidecar ``meta["calibration"]``."""
    report = load_robustness(Path(weights).parent)
    return stored_temperature(report if made_for(report, weights) else meta)


def corruption_grid(
    model: nn.Module,
    data: FaceSet,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    batch_size: int = 512,
    amp: bool = False,
    progress: Progress | None = None,
    done: int = 0,
    total: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy and ECE of ``model`` on ``data`` under each corruption at each severity.

    Returns ``{name: {"title", "description", "params", "severities", "accuracy": [...], "ece": [...]}}``
    with one list entry per severity. ``progress(what, done + k, total)`` is called before each cell.
    """
    names = list(corruptions) if corruptions is not None else list_corruptions()
    labels = data.labels.numpy()
    total = total if total is not None else len(names) * len(severities)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        c = CORRUPTIONS[name]
        row: dict[str, Any] = {
            "title": c.title,
            "description": c.description,
            "params": [c.params[s] for s in severities],
            "severities": list(severities),
            "accuracy": [],
            "ece": [],
        }
        for s in severities:
            if progress is not None:
                progress(f"{c.title}, severity {s}", done, total)
            logits = predict_logits(model, corrupt(data.images, name, s, seed), batch_size=batch_size, amp=amp)
            probs = F.softmax(logits, dim=1).numpy()
            row["accuracy"].append(float((probs.argmax(1) == labels).mean()))
            row["ece"].append(ece(probs, labels))
            done += 1
        out[name] = row
    return out


def robustness_report(
    model: nn.Module,
    splits: dict[str, FaceSet],
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    batch_size: int = 512,
    amp: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The full report for ``model``: temperature fitted on ``splits["PublicTest"]``, calibration and the
    corruption grid on ``splits["PrivateTest"]``, mean corruption accuracy, and how it was computed."""
    missing = [s for s in ("PublicTest", "PrivateTest") if s not in splits]
    if missing:
        raise ValueError(f"the robustness report needs FER2013's {' and '.join(missing)}")
    t0 = time.perf_counter()
    names = list(corruptions) if corruptions is not None else list_corruptions()
    total = 2 + len(names) * len(severities)
    val, test = splits["PublicTest"], splits["PrivateTest"]
    if progress is not None:
        progress("calibration (PublicTest, PrivateTest)", 0, total)
    val_logits = predict_logits(model, val.images, batch_size=batch_size, amp=amp)
    test_logits = predict_logits(model, test.images, batch_size=batch_size, amp=amp)
    calibration = calibration_report(val_logits, val.labels, test_logits, test.labels)
    clean_probs = F.softmax(test_logits, dim=1).numpy()
    clean = {"accuracy": calibration["before"]["accuracy"], "ece": calibration["before"]["ece"]}
    grid = corruption_grid(model, test, names, severities, seed, batch_size, amp, progress, 2, total)
    cells = [a for row in grid.values() for a in row["accuracy"]]
    mca = float(np.mean(cells)) if cells else float("nan")
    if progress is not None:
        progress("done", total, total)
    return {
        "format": FORMAT,
        "model": getattr(model, "model_name", type(model).__name__),
        "split": "PrivateTest",
        "calibration_split": "PublicTest",
        "n": len(test),
        "tta": "none",
        "amp": amp,
        "precision": precision_name(next(model.parameters()).device, amp),
        "seed": seed,
        "clean": clean | {"mean_confidence": float(clean_probs.max(1).mean())},
        "calibration": calibration,
        "corruptions": grid,
        "mean_corruption_accuracy": mca,
        "relative_corruption_accuracy": mca / clean["accuracy"] if clean["accuracy"] else float("nan"),
        "seconds": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        "hardware": hardware_name(next(model.parameters()).device),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def store_robustness(folder: str | Path, report: dict[str, Any]) -> Path:
    """Write ``robustness.json`` beside the checkpoint in ``folder``, with the weights' digest (which
    ties the report, and the temperature :func:`checkpoint_temperature` reads from it, to these weights)."""
    folder = Path(folder)
    weights = folder / "model.safetensors"
    if weights.is_file():
        report = {**report, "weights_digest": weights_digest(weights)}
    path = folder / FILENAME
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    return path


def load_robustness(folder: str | Path) -> dict[str, Any] | None:
    """The stored report of the checkpoint in ``folder``; None when there is none (or it is unreadable)."""
    path = Path(folder) / FILENAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def compute_and_store(
    weights: str | Path,
    splits: dict[str, FaceSet],
    progress: Progress | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Load a checkpoint, compute its report (``kwargs`` go to :func:`robustness_report`) and store it."""
    from ..checkpoint import load_checkpoint

    weights = Path(weights)
    model, meta = load_checkpoint(weights)
    report = robustness_report(model, splits, progress=progress, **kwargs)
    report["model"] = meta.get("name") or weights.parent.name
    report["architecture"] = meta["model"]
    store_robustness(weights.parent, report)
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """One row of the side-by-side table: the headline numbers of a stored report."""
    cal = report["calibration"]
    return {
        "clean accuracy": report["clean"]["accuracy"],
        "ECE": cal["before"]["ece"],
        "ECE (scaled)": cal["after"]["ece"],
        "NLL": cal["before"]["nll"],
        "NLL (scaled)": cal["after"]["nll"],
        "temperature": cal["temperature"],
        "mean corruption accuracy": report["mean_corruption_accuracy"],
        "relative": report["relative_corruption_accuracy"],
    }


def corruption_gallery(
    face: np.ndarray | torch.Tensor,
    severity: int,
    corruptions: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """One uint8 48x48 face under every corruption at ``severity`` (plus ``"clean"`` first), for the page."""
    x = torch.as_tensor(np.asarray(face, dtype=np.uint8)).reshape(1, 48, 48)
    names = list(corruptions) if corruptions is not None else list_corruptions()
    return {"clean": x[0].numpy(), **{n: corrupt(x, n, severity, seed)[0].numpy() for n in names}}


def gallery_predictions(
    model: nn.Module, faces: dict[str, np.ndarray], temperature: float | None = None
) -> dict[str, np.ndarray]:
    """Class probabilities of ``model`` for each face of :func:`corruption_gallery` (one batch), by name;
    temperature-scaled when ``temperature`` is given."""
    from .calibration import temperature_scale
    from .predict import predict_probs

    probs = predict_probs(model, torch.from_numpy(np.stack(list(faces.values())))).numpy()
    if temperature is not None:
        probs = temperature_scale(probs, temperature)
    return dict(zip(faces, probs, strict=True))


__all__ = [
    "FILENAME",
    "N_BINS",
    "calibration_metrics",
    "checkpoint_temperature",
    "compute_and_store",
    "corruption_gallery",
    "corruption_grid",
    "gallery_predictions",
    "load_robustness",
    "made_for",
    "robustness_report",
    "store_robustness",
    "summary",
    "weights_digest",
]
