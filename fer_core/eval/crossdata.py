"""Cross-dataset transfer: a FER2013 model on another dataset (CK+, JAFFE, a user's own photos).

Any ``root/<class>/<image>`` tree works (class names as :func:`fer_core.data.list_class_folders`
maps them: anger -> angry, happiness -> happy, ...; contempt and other unknown classes are skipped and
counted). Images that are already face crops (at most ``PRECROPPED_MAX_SIDE`` pixels a side, like
FER2013's 48x48 or CK+48) are used as they are; larger ones are photos, so the face is found first
(the Haar detector by default; the largest face of each photo) and cropped exactly as
``fer_core.predict`` crops faces. Photos where no face is found are left out and counted.

Metrics are those of the FER2013 report, restricted to the classes the dataset has: a class it lacks
has no faces to be right or wrong on, so it is left out of per-class metrics and macro averages (and
the page says which). The model still chooses among all of its classes, so a face called by a missing
class counts as wrong in ``accuracy``; ``accuracy_present_classes`` is the accuracy when the choice is
restricted to the dataset's classes. Calibration uses the temperature fitted on FER2013's PublicTest
(is the model's calibration transferable?), with the same reliability bins and ECE as FER2013.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import atomic_write_text
from ..data import CLASSES, DataError, FaceSet, list_class_folders, load_class_folders
from ..data.images import open_image, to_gray_array
from ..faces.crop import crop_face, detection_image
from ..faces.detect import FaceDetector, resolve_detector
from .calibration import apply_temperature, calibration_metrics
from .metrics import classification_metrics
from .predict import predict_logits

PRECROPPED_MAX_SIDE = 64  # a larger image is a photo whose face must be found first
FACE_MODES = ("auto", "cropped", "detect")
FILENAME = "crossdata.json"


@dataclass
class FolderFaces:
    """The faces of a class-folder dataset, and how each image became a 48x48 face."""

    faces: FaceSet
    root: Path
    precropped: int = 0  # images used as they are
    detected: int = 0  # photos whose (largest) face the detector found
    no_face: list[str] = field(default_factory=list)  # photos where it found none: left out
    notes: list[str] = field(default_factory=list)  # what the loader skipped or converted

    @property
    def name(self) -> str:
        return self.root.name


def load_face_folder(
    root: str | Path, faces: str = "auto", detector: str | FaceDetector | None = "haar"
) -> FolderFaces:
    """Load a class-folder dataset as 48x48 faces; ``faces`` is ``auto`` (crops as they are, photos
    through face detection), ``cropped`` (every image is a face crop) or ``detect`` (every image is a photo).

    Raises :class:`~fer_core.data.DataError` for a folder with no usable face.
    """
    if faces not in FACE_MODES:
        raise ValueError(f"faces must be one of {', '.join(FACE_MODES)}, not {faces!r}")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    if faces == "cropped":
        data = load_class_folders(root)
        return FolderFaces(data, root, precropped=len(data), notes=data.summary.lines() if data.summary else [])
    items, summary = list_class_folders(root)
    det = resolve_detector(detector)
    crops, labels, names = [], [], []
    out = FolderFaces(FaceSet(torch.zeros(0, 48, 48, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), []), root)
    for path, label in items:
        rel = path.relative_to(root).as_posix()
        try:
            gray, colour, _ = to_gray_array(open_image(path), size=None)
        except ValueError as exc:
            summary.bad_files.append(f"{path}: {exc}")
            continue
        summary.converted_to_gray += colour
        if faces == "auto" and max(gray.shape) <= PRECROPPED_MAX_SIDE:
            face = crop_face(gray, (0, 0, gray.shape[1], gray.shape[0]))  # the image is the face: just resize
            out.precropped += 1
        else:
            small, factor = detection_image(gray)
            found = [d.scaled(factor) if factor > 1 else d for d in det.detect(small)]
            if not found:
                out.no_face.append(rel)
                continue
            box = max(found, key=lambda d: d.w * d.h).box
            face = crop_face(gray, box, det.margin)
            out.detected += 1
        crops.append(face)
        labels.append(label)
        names.append(rel)
    out.notes = summary.lines()
    if out.no_face:
        out.notes.append(f"no face found in {len(out.no_face)} photos (left out), e.g. {out.no_face[0]}")
    if not crops:
        raise DataError(f"no usable face in {root}" + (f": {'; '.join(out.notes)}" if out.notes else ""))
    out.faces = FaceSet(torch.from_numpy(np.stack(crops)), torch.tensor(labels), names, summary=summary)
    return out


def transfer_metrics(
    probs: np.ndarray, labels: np.ndarray, classes: Sequence[str] = CLASSES, temperature: float | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class metrics over the classes present in ``labels`` only (see the
    module docstring), the confusion matrix, and calibration (with ``temperature`` when given: ``probs``
    are then the un-scaled ones, rescaled here)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    present = sorted(set(labels.tolist()))
    full = classification_metrics(probs, labels, classes)
    restricted = np.asarray(present)[probs[:, present].argmax(1)]
    per_class = {classes[i]: full["per_class"][classes[i]] for i in present}
    out: dict[str, Any] = {
        "n": int(len(labels)),
        "classes_present": [classes[i] for i in present],
        "classes_left_out": [c for i, c in enumerate(classes) if i not in present],
        "accuracy": full["accuracy"],
        "accuracy_present_classes": float((restricted == labels).mean()),
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": full["confusion_matrix"],
        "calibration": {"temperature": temperature, "before": calibration_metrics(probs, labels)},
    }
    if temperature is not None:
        logits = np.log(np.clip(probs, 1e-30, None))
        out["calibration"]["after"] = calibration_metrics(apply_temperature(logits, temperature), labels)
    return out


def crossdata_report(
    model: nn.Module,
    data: FolderFaces,
    temperature: float | None = None,
    corruptions: bool = False,
    batch_size: int = 512,
    amp: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """``model`` on a class-folder dataset: :func:`transfer_metrics`, how the faces were obtained, and with
    ``corruptions`` the corruption grid on those faces too (the FER2013 report's other half)."""
    from .robustness import corruption_grid

    faces = data.faces
    logits = predict_logits(model, faces.images, batch_size=batch_size, amp=amp)
    probs = F.softmax(logits, dim=1).numpy()
    report = transfer_metrics(probs, faces.labels.numpy(), faces.classes, temperature)
    report.update(
        dataset=data.name,
        path=str(data.root),
        counts=dict(zip(faces.classes, faces.class_counts(), strict=True)),
        faces={"precropped": data.precropped, "detected": data.detected, "no_face": len(data.no_face)},
        notes=data.notes,
    )
    if corruptions:
        grid = corruption_grid(model, faces, batch_size=batch_size, amp=amp, progress=progress)
        report["corruptions"] = grid
        report["mean_corruption_accuracy"] = float(np.mean([a for r in grid.values() for a in r["accuracy"]]))
    return report


def store_crossdata(folder: str | Path, report: dict[str, Any]) -> Path:
    """Add (or replace) ``report`` under its dataset name in ``crossdata.json`` beside the checkpoint."""
    path = Path(folder) / FILENAME
    stored = load_crossdata(folder)
    stored[report["dataset"]] = report
    atomic_write_text(path, json.dumps(stored, indent=1) + "\n")
    return path


def load_crossdata(folder: str | Path) -> dict[str, dict[str, Any]]:
    """Every stored cross-dataset report of the checkpoint in ``folder``, by dataset name (empty if none)."""
    try:
        data = json.loads((Path(folder) / FILENAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
