"""My faces: the user's own labelled faces, saved one at a time from the Upload and Webcam pages.

Each face is the exact crop the models saw (48x48 grayscale), kept as a PNG in
``<my faces>/<class>/<id>.png`` (``FER_MY_FACES``, default ``<jobs folder>/my_faces``, so tests and
deployments that move the jobs folder move the faces with it). That is the class-folder layout a zip
of faces is extracted to, so a fine-tuning job loads both through the same
:func:`fer_core.data.load_class_folders`.

- The id is a hash of the pixels: saving the same face twice keeps one file, and saving it under
  another label moves it (a face has one expression).
- Every PNG is written to a temporary name and renamed into place, so a crash or a full disk never
  leaves a half-written image that would break a later fine-tune.
- PNG through Pillow, nothing pickled; where a face came from is a PNG text field.
- A job trains on a snapshot (:func:`snapshot_faces`), so faces added or deleted while it runs, or
  before it is resumed, do not change its data, and its held-out comparison stays the same.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from contextlib import suppress
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from ..data import CLASSES
from .uploads import MIN_PER_CLASS, UploadSummary, check_class_counts

ID_RE = re.compile(r"^[0-9a-f]{16}$")


def my_faces_root() -> Path:
    """``FER_MY_FACES``, else ``my_faces/`` inside the jobs folder (``FER_JOBS_DIR``)."""
    from .runner import jobs_root

    return Path(os.environ.get("FER_MY_FACES", jobs_root() / "my_faces"))


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else my_faces_root()


def _label(label: str) -> str:
    if label not in CLASSES:
        raise ValueError(f"unknown expression {label!r}: one of {', '.join(CLASSES)}")
    return label


def face_id(crop: np.ndarray) -> str:
    """The face's id: a hash of its pixels (and shape), so the same crop always gets the same file."""
    crop = np.ascontiguousarray(crop)
    return hashlib.sha256(f"{crop.shape}".encode() + crop.tobytes()).hexdigest()[:16]


def save_face(crop: np.ndarray, label: str, source: str = "", root: str | Path | None = None) -> Path:
    """Save a grayscale uint8 face crop (H, W) under ``label``; returns its file.

    The same face saved again replaces itself (under the new label if that changed)."""
    crop = np.asarray(crop)
    if crop.ndim != 2 or crop.dtype != np.uint8 or min(crop.shape) < 16:
        raise ValueError(f"a face must be a grayscale uint8 image of at least 16x16, not {crop.dtype} {crop.shape}")
    root, fid = _root(root), face_id(crop)
    target = root / _label(label) / f"{fid}.png"
    target.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the user's faces: this user only
    target.parent.mkdir(exist_ok=True, mode=0o700)
    info = PngImagePlugin.PngInfo()
    if source:
        info.add_text("source", source[:500])
    tmp = target.with_name(f".{fid}.{uuid.uuid4().hex[:8]}.tmp")  # per call: two threads never share one
    try:
        Image.fromarray(crop, mode="L").save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for other in CLASSES:  # relabelled: the face leaves its old class
        if other != label:
            (root / other / f"{fid}.png").unlink(missing_ok=True)
    return target


def list_faces(root: str | Path | None = None) -> dict[str, list[Path]]:
    """The saved faces of every class (classes without faces included, empty), newest first."""
    root = _root(root)
    out: dict[str, list[Path]] = {}
    for c in CLASSES:
        folder = root / c
        files = [p for p in folder.glob("*.png") if ID_RE.match(p.stem)] if folder.is_dir() else []
        out[c] = sorted(files, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return out


def face_counts(root: str | Path | None = None) -> dict[str, int]:
    """Faces per class, in the model's class order (zeros included)."""
    return {c: len(files) for c, files in list_faces(root).items()}


def face_source(path: str | Path) -> str:
    """Where a saved face came from ("Upload: party.jpg, face 2"), as saved; empty if unknown."""
    with Image.open(path) as img:
        return str(img.info.get("source", ""))


def delete_face(label: str, fid: str, root: str | Path | None = None) -> None:
    """Delete one face. Label and id are checked against strict patterns, so no path escapes the folder."""
    if not ID_RE.match(fid):
        raise ValueError(f"not a face id: {fid!r}")
    (_root(root) / _label(label) / f"{fid}.png").unlink(missing_ok=True)


def delete_class(label: str, root: str | Path | None = None) -> int:
    """Delete every face of one class; returns how many there were."""
    files = list_faces(root)[_label(label)]
    for f in files:
        f.unlink(missing_ok=True)
    return len(files)


def check_faces(counts: dict[str, int], min_per_class: int = MIN_PER_CLASS) -> None:
    """Raise :class:`~fer_core.jobs.uploads.UploadError` unless ``counts`` can be fine-tuned on: at least
    two expressions, each with ``min_per_class`` faces (classes with none are simply left out)."""
    check_class_counts(
        counts,
        min_per_class,
        noun="faces",
        fix="save more on the Upload or Webcam page, or delete that expression's faces",
        empty="no saved faces yet: label faces on the Upload or Webcam page with 'Save to My faces'",
    )


def snapshot_faces(
    dest: str | Path, root: str | Path | None = None, min_per_class: int = MIN_PER_CLASS
) -> UploadSummary:
    """Check the collection and copy it to ``dest/<class>/`` for one job; returns the counts.

    Copied into a temporary folder renamed into place, so ``dest`` is complete or absent."""
    faces = list_faces(root)
    check_faces({c: len(files) for c, files in faces.items() if files}, min_per_class)
    dest = Path(dest)
    part = dest.with_name(f".{dest.name}.part")
    shutil.rmtree(part, ignore_errors=True)
    counts: dict[str, int] = {}
    try:
        for c, files in faces.items():
            for f in files:
                (part / c).mkdir(parents=True, exist_ok=True)
                with suppress(FileNotFoundError):  # deleted on another tab meanwhile: counted out below
                    shutil.copyfile(f, part / c / f.name)
                    counts[c] = counts.get(c, 0) + 1
        check_faces(counts, min_per_class)
        os.replace(part, dest)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return UploadSummary(counts=counts)


__all__ = [
    "check_faces",
    "delete_class",
    "delete_face",
    "face_counts",
    "face_id",
    "face_source",
    "list_faces",
    "my_faces_root",
    "save_face",
    "snapshot_faces",
]
