"""Evaluation as background jobs: the body the job runner's process runs for the Robustness page.

Two kinds, both reusing :mod:`fer_core.jobs` (queue, one job at a time, cancel, crash recovery):

- ``robustness``: the full report of the checkpoint ``spec.base`` on FER2013 (``spec.data_path`` or
  ``FER2013_DIR``), stored beside it (:func:`.robustness.compute_and_store`).
- ``crossdata``: the checkpoint on a class-folder dataset ``spec.data_path`` (:mod:`.crossdata`),
  stored in ``crossdata.json`` beside it; ``spec.options`` may hold ``faces`` (auto, cropped, detect)
  and ``corruptions`` (True adds the corruption grid on those faces).

Progress is written as ``phase`` and ``eval_done`` / ``eval_total`` (:func:`eval_fraction` reads them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .crossdata import FACE_MODES

EVAL_KINDS = ("robustness", "crossdata")


def validate_eval_spec(spec: Any) -> list[str]:
    """What is wrong with an evaluation job's settings (empty when nothing)."""
    problems = []
    if spec.kind not in EVAL_KINDS:
        problems.append(f"kind {spec.kind!r}: one of {', '.join(EVAL_KINDS)}")
    if not Path(spec.base).is_file():
        problems.append(f"checkpoint {spec.base!r} does not exist")
    if spec.kind == "robustness":
        fer_path = spec.data_path or os.environ.get("FER2013_DIR", "")
        if not (fer_path and Path(fer_path).exists()):
            problems.append("no FER2013 data: set the FER2013 folder in the sidebar (or FER2013_DIR)")
    if spec.kind == "crossdata" and not Path(spec.data_path).is_dir():
        problems.append(f"dataset folder {spec.data_path!r} does not exist")
    faces = (spec.options or {}).get("faces", "auto")
    if faces not in FACE_MODES:
        problems.append(f"faces {faces!r}: one of {', '.join(FACE_MODES)}")
    if spec.register:
        problems.append("evaluation jobs register no model (register=False)")
    return problems


def run_eval_job(spec: Any, update: Callable[..., None]) -> dict[str, Any]:
    """Run an evaluation job to its end; returns the job's result (headline numbers, where it is stored).

    ``update(force=True, **fields)`` writes progress (``fer_core.jobs.worker.Progress.update``).
    """
    import torch

    from ..checkpoint import load_checkpoint
    from ..data import load_fer2013
    from .crossdata import crossdata_report, load_face_folder, store_crossdata
    from .robustness import checkpoint_temperature, compute_and_store, summary

    if spec.threads:
        torch.set_num_threads(spec.threads)
    t0 = time.time()

    def progress(what: str, done: int, total: int) -> None:
        update(force=True, phase=what, eval_done=done, eval_total=total, eval_started=t0)

    weights = Path(spec.base)
    if spec.kind == "robustness":
        progress("loading FER2013", 0, 1)
        splits = load_fer2013(spec.data_path or None)
        report = compute_and_store(weights, splits, progress=progress)
        return {"model": report["model"], "stored": str(weights.parent), **summary(report)}
    progress("finding the faces", 0, 1)
    options = spec.options or {}
    data = load_face_folder(spec.data_path, faces=options.get("faces", "auto"))
    model, meta = load_checkpoint(weights)
    progress("evaluating", 0, 1)
    report = crossdata_report(
        model,
        data,
        checkpoint_temperature(weights, meta),
        corruptions=bool(options.get("corruptions")),
        progress=progress,
    )
    report["model"] = meta.get("name") or weights.parent.name
    store_crossdata(weights.parent, report)
    keys = ("model", "dataset", "n", "accuracy", "accuracy_present_classes", "macro_f1", "classes_left_out")
    return {k: report[k] for k in keys} | {"stored": str(weights.parent)}


def eval_fraction(job: Any) -> float:
    """Share of an evaluation job done, 0 to 1 (1 once finished)."""
    if job.state == "finished":
        return 1.0
    p = job.progress or {}
    return min(1.0, p.get("eval_done", 0) / p["eval_total"]) if p.get("eval_total") else 0.0
