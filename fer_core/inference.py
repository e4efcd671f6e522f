"""Per-face emotions for photos and videos: detect faces, crop them like training, run checkpoints.

``fer_core.predict(image, models=..., detector=...)`` is the one call most users need: it decodes
anything a user may have (see :func:`fer_core.faces.read_image`), finds the faces, makes each the
48x48 grayscale crop the models were trained on and returns, per face, its box, the detector's
score, every model's class probabilities, the ensemble's (their mean) and the top label, with
quality flags (too small, too blurry). :func:`predict_video` does the same for every N-th frame of a
video file and keeps face ids stable across frames by box overlap.

Loading checkpoints is the slow part (tens of MB each), so :func:`load_models` caches them by path
and modification time; pass its result as ``models=`` to skip even the lookup.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from .checkpoint import CheckpointError, load_checkpoint, model_meta
from .data.faceset import CLASSES
from .data.images import to_gray_array
from .eval.calibration import stored_temperature, temperature_scale
from .eval.predict import predict_probs
from .eval.robustness import checkpoint_temperature
from .faces.crop import (
    MAX_DETECT_SIDE,
    MIN_FACE_PX,
    MIN_SHARPNESS,
    LoadedImage,
    crop_face,
    detection_image,
    quality_flags,
    read_image,
    sharpness,
)
from .faces.detect import Detection, FaceDetector, WholeImage, resolve_detector
from .faces.track import IoUTracker
from .faces.video import iter_frames, video_info
from .zoo import checkpoints_root, list_zoo

Box = tuple[int, int, int, int]


class UnknownModelError(ValueError):
    """A model name that is neither a checkpoint of the zoo nor a checkpoint file."""


@dataclass
class LoadedModel:
    """A checkpoint ready to run: its display ``name``, the model in eval mode, its sidecar ``meta`` and,
    when it came from a file, that file's ``path``."""

    name: str
    model: nn.Module
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta.get("classes") or CLASSES)

    @property
    def temperature(self) -> float | None:
        """The calibration temperature of its robustness report (or older sidecar), or None."""
        return checkpoint_temperature(self.path, self.meta) if self.path else stored_temperature(self.meta)


@functools.lru_cache(maxsize=16)
def _load_file(path: str, mtime: float) -> tuple[nn.Module, dict[str, Any]]:
    """``mtime`` is part of the key so a re-exported checkpoint is reloaded."""
    return load_checkpoint(path)


def _from_file(path: Path, name: str) -> LoadedModel:
    model, meta = _load_file(str(path), path.stat().st_mtime)
    return LoadedModel(name, model, meta, path)


ModelSpec = str | Path | LoadedModel | nn.Module | tuple[nn.Module, dict[str, Any]]


def load_models(
    models: ModelSpec | Sequence[ModelSpec] | None = None, root: str | Path | None = None
) -> list[LoadedModel]:
    """Resolve ``models`` into runnable models.

    ``None``: every usable checkpoint under ``root`` (``FER_CHECKPOINTS``, default ``checkpoints/``) and
    every user model (``FER_USER_MODELS``, made by fine-tuning jobs).
    Each item may be a checkpoint name of that folder, a path to a ``.safetensors`` file or to its
    folder, an already-loaded ``(model, meta)`` pair, a :class:`LoadedModel`, or a bare zoo model.
    A comma-separated string is a list of names. Raises :class:`UnknownModelError` naming the
    available checkpoints, or ``CheckpointError`` for a broken one.
    """
    root = Path(root) if root is not None else checkpoints_root()
    entries = {e.name: e for e in list_zoo(root)}  # shipped checkpoints, then the user's fine-tuned models
    if models is None:
        usable = [e for e in entries.values() if e.ok]
        if not usable:
            raise UnknownModelError(f"no usable checkpoints in {root}: train and ship one, or pass models=")
        return [_from_file(e.weights, e.name) for e in usable]
    if isinstance(models, str):
        items: list[Any] = [m.strip() for m in models.split(",") if m.strip()]
    elif isinstance(models, Path | LoadedModel | nn.Module) or _is_pair(models):
        items = [models]
    else:
        items = list(models)
    if not items:
        raise UnknownModelError("no models given")
    out: list[LoadedModel] = []
    for item in items:
        if isinstance(item, LoadedModel):
            out.append(item)
        elif _is_pair(item):
            model, meta = item
            out.append(LoadedModel(str(meta.get("name") or meta.get("model", "model")), model.eval(), meta))
        elif isinstance(item, nn.Module):
            out.append(LoadedModel(getattr(item, "model_name", "model"), item.eval(), model_meta(item)))
        elif isinstance(item, str) and item in entries:
            entry = entries[item]
            if not entry.ok:
                raise CheckpointError(entry.error or f"{item}: broken checkpoint")
            out.append(_from_file(entry.weights, entry.name))
        elif Path(item).exists():
            path = Path(item)
            path = path / "model.safetensors" if path.is_dir() else path
            name = path.parent.name if path.name == "model.safetensors" else path.stem
            out.append(_from_file(path, name))
        else:
            names = ", ".join(n for n, e in entries.items() if e.ok) or "none"
            raise UnknownModelError(f"unknown model {str(item)!r}: not a checkpoint in {root} (available: {names})")
    seen: dict[str, int] = {}
    for m in out:  # two files called model.safetensors in different places must stay apart in the results
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name}#{seen[m.name]}"
    classes = {m.classes for m in out}
    if len(classes) > 1:
        raise ValueError(f"the models do not share one class list, so they cannot be ensembled: {sorted(classes)}")
    return out


def _is_pair(x: object) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], nn.Module) and isinstance(x[1], dict)


@dataclass
class FaceResult:
    """One face: where it is, how sure the detector was, what every model and the ensemble say."""

    id: int
    box: Box  # x, y, w, h in the upright photo's pixels
    score: float  # the detector's (Haar: last-stage weight, higher is surer)
    crop: np.ndarray  # uint8 48x48: what the models received, before their own centre crop and normalisation
    probs: dict[str, np.ndarray]  # model name -> class probabilities
    ensemble: np.ndarray  # mean of the models' probabilities
    label: str  # the ensemble's top class
    flags: list[str] = field(default_factory=list)  # "too small (...)", "too blurry (...)"
    sharpness: float = 0.0

    @property
    def confidence(self) -> float:
        return float(self.ensemble.max())

    def to_dict(self, classes: Sequence[str]) -> dict[str, Any]:
        as_dict = lambda p: {c: round(float(v), 5) for c, v in zip(classes, p, strict=True)}
        return {
            "id": self.id,
            "box": list(self.box),
            "score": self.score,
            "label": self.label,
            "flags": self.flags,
            "sharpness": round(self.sharpness, 4),
            "ensemble": as_dict(self.ensemble),
            "probs": {m: as_dict(p) for m, p in self.probs.items()},
        }


@dataclass
class ImageResult:
    """Every face of one photo (or video frame), with what had to be done to read it."""

    source: str
    size: tuple[int, int]  # width, height of the upright photo
    faces: list[FaceResult]
    classes: tuple[str, ...]
    models: list[str]
    detector: str
    notes: list[str] = field(default_factory=list)
    image: Any = None  # the upright RGB photo (PIL), for drawing; None for video frames
    frame: int | None = None
    time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "source": self.source,
            "size": list(self.size),
            "detector": self.detector,
            "models": self.models,
            "notes": self.notes,
            "faces": [f.to_dict(self.classes) for f in self.faces],
        }
        if self.frame is not None:
            d.update(frame=self.frame, time_s=self.time_s)
        return d


@dataclass
class VideoResult:
    """The analysed frames of a video; :meth:`table` is the tidy per-frame, per-face table."""

    source: str
    fps: float
    frames: list[ImageResult]
    every: int
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return results_table(self.frames)

    def face_crops(self) -> dict[int, np.ndarray]:
        """The first crop of every tracked face id."""
        crops: dict[int, np.ndarray] = {}
        for fr in self.frames:
            for f in fr.faces:
                crops.setdefault(f.id, f.crop)
        return crops


@dataclass(frozen=True)
class FaceOptions:
    """How faces are cropped and judged; the defaults are the ones measured in ``fer_core.faces.crop``."""

    margin: float | None = None  # None: the detector's own (its box framed like FER2013)
    tta: str = "none"  # "none" is exactly the evaluation's single centre view
    min_face: int = MIN_FACE_PX
    min_sharpness: float = MIN_SHARPNESS
    whole_image_if_none: bool = False  # no face found: classify the image's centred square instead
    calibrated: bool = False  # divide each model's logits by its stored temperature (models without one: as is)
    max_detect_side: int = MAX_DETECT_SIDE


def classify_faces(
    faces: np.ndarray | torch.Tensor, models: Sequence[LoadedModel], tta: str = "none", calibrated: bool = False
) -> dict[str, np.ndarray]:
    """Class probabilities (N, C) per model for uint8 48x48 crops (N, 48, 48), through the evaluation path.

    ``calibrated``: temperature-scaled with each model's stored temperature (same predictions, honest
    confidences; see :mod:`fer_core.eval.calibration`); a model without one is left as it is.
    """
    x = torch.as_tensor(np.asarray(faces, dtype=np.uint8))
    out = {}
    for m in models:
        device = next(m.model.parameters()).device
        probs = predict_probs(m.model, x, tta=tta, amp=device.type == "cuda").numpy()
        out[m.name] = temperature_scale(probs, m.temperature) if calibrated else probs
    return out


def reading_order(detections: list[Detection]) -> list[Detection]:
    """Rows top to bottom, left to right within a row, so face 1 is where a reader starts.

    A face joins the current row while its centre is within half a typical face height of the row's
    first face, so slightly different box sizes in one row of people do not reorder them.
    """
    if not detections:
        return []
    half = float(np.median([d.h for d in detections])) / 2
    rows: list[list[Detection]] = []
    for d in sorted(detections, key=lambda d: d.y + d.h / 2):
        if rows and d.y + d.h / 2 - (rows[-1][0].y + rows[-1][0].h / 2) <= half:
            rows[-1].append(d)
        else:
            rows.append([d])
    return [d for row in rows for d in sorted(row, key=lambda d: d.x)]


def analyse_image(
    img: LoadedImage, models: Sequence[LoadedModel], detector: FaceDetector, opts: FaceOptions = FaceOptions()
) -> ImageResult:
    """Detect, crop and classify the faces of an already decoded photo (``predict`` without the loading)."""
    gray, notes = img.gray, list(img.notes)
    h, w = gray.shape
    small, factor = detection_image(gray, opts.max_detect_side)
    if factor > 1:
        notes.append(f"large image ({w}x{h}): detected faces on a {small.shape[1]}x{small.shape[0]} copy")
    detections = [d.scaled(factor) for d in detector.detect(small)] if factor > 1 else detector.detect(gray)
    margin = detector.margin if opts.margin is None else opts.margin
    detector_name = detector.name
    if not detections and opts.whole_image_if_none:
        notes.append("no face found: classified the whole image as one face")
        detections, margin, detector_name = WholeImage().detect(gray), 0.0, f"{detector.name}+whole"
    detections = reading_order(detections)
    classes = models[0].classes
    crops = np.stack([crop_face(gray, d.box, margin) for d in detections]) if detections else np.zeros((0, 48, 48))
    probs = classify_faces(crops, models, opts.tta, opts.calibrated) if detections else {}
    faces = []
    for i, d in enumerate(detections):
        per_model = {name: p[i] for name, p in probs.items()}
        ens = np.mean(list(per_model.values()), axis=0)
        faces.append(
            FaceResult(
                id=i + 1,
                box=d.box,
                score=d.score,
                crop=crops[i].astype(np.uint8),
                probs=per_model,
                ensemble=ens,
                label=classes[int(ens.argmax())],
                flags=quality_flags(d.box, crops[i], opts.min_face, opts.min_sharpness),
                sharpness=sharpness(crops[i]),
            )
        )
    if not faces:
        notes.append("no face found")
    return ImageResult(img.source, (w, h), faces, classes, [m.name for m in models], detector_name, notes, img.rgb)


def predict(
    image: Any,
    models: ModelSpec | Sequence[ModelSpec] | None = None,
    detector: str | FaceDetector | None = None,
    *,
    source: str | None = None,
    **options: Any,
) -> ImageResult:
    """Every face of ``image`` with each model's and the ensemble's class probabilities.

    ``image``: a path, bytes, file object, PIL image or numpy array. ``models``: see
    :func:`load_models` (default: every checkpoint of the zoo). ``detector``: a registered name
    (``haar``, ``whole``) or any object with ``name``, ``margin`` and ``detect(gray)``.
    ``options``: the fields of :class:`FaceOptions`. Raises ``ValueError`` with a readable reason
    for a file that is not a usable image.

    >>> result = predict("party.jpg", models="vggnet")
    >>> [(f.id, f.box, f.label, f.flags) for f in result.faces]
    """
    loaded = load_models(models)
    return analyse_image(read_image(image, source), loaded, resolve_detector(detector), FaceOptions(**options))


def predict_video(
    path: str | Path | Any,
    models: ModelSpec | Sequence[ModelSpec] | None = None,
    detector: str | FaceDetector | None = None,
    *,
    every: int = 1,
    max_frames: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    source: str | None = None,
    tracker: IoUTracker | None = None,
    **options: Any,
) -> VideoResult:
    """:func:`predict` on every ``every``-th frame of a video (at most ``max_frames`` of them).

    Face ids follow each face through the video by box overlap (:class:`IoUTracker`).
    ``progress(done, total)`` is called after each analysed frame (``total`` may be None).
    """
    loaded = load_models(models)
    det = resolve_detector(detector)
    opts = FaceOptions(**options)
    source = source or (Path(path).name if isinstance(path, str | Path) else getattr(path, "name", "video"))
    info = video_info(path)
    if hasattr(path, "seek"):
        path.seek(0)
    total = -(-info.frames // every) if info.frames else None
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    tracker = tracker or IoUTracker()
    frames: list[ImageResult] = []
    notes: list[str] = []
    for index, t, rgb in iter_frames(path, every, max_frames):
        gray, _, _ = to_gray_array(rgb, size=None)
        result = analyse_image(LoadedImage(gray, rgb, [], source), loaded, det, opts)
        for face, face_id in zip(result.faces, tracker.update([f.box for f in result.faces]), strict=True):
            face.id = face_id
        result.notes = [n for n in result.notes if n != "no face found"]
        result.image, result.frame, result.time_s = None, index, round(t, 3)
        frames.append(result)
        if progress is not None:
            progress(len(frames), total)
    if not frames:
        raise ValueError("not a readable video (no frames)")
    if max_frames is not None and len(frames) >= max_frames and info.frames and info.frames > max_frames * every:
        notes.append(f"analysed the first {len(frames)} frames only (every {every}): limit reached")
    if not any(fr.faces for fr in frames):
        notes.append("no face found in any analysed frame")
    return VideoResult(source, info.fps, frames, every, notes)


def results_table(results: Iterable[ImageResult]) -> pd.DataFrame:
    """The tidy table: one row per face and model (the ensemble is a model called ``ensemble``).

    Columns: source, frame, time_s, face_id, x, y, w, h, score, flags, model, label, then one
    probability column per class. Photos have empty frame and time.
    """
    rows = []
    for r in results:
        for f in r.faces:
            base = {
                "source": r.source,
                "frame": r.frame,
                "time_s": r.time_s,
                "face_id": f.id,
                "x": f.box[0],
                "y": f.box[1],
                "w": f.box[2],
                "h": f.box[3],
                "score": f.score,
                "flags": "; ".join(f.flags),
            }
            for model, p in [*f.probs.items(), ("ensemble", f.ensemble)]:
                rows.append(
                    {**base, "model": model, "label": r.classes[int(p.argmax())]}
                    | {c: round(float(v), 5) for c, v in zip(r.classes, p, strict=True)}
                )
    columns = ["source", "frame", "time_s", "face_id", "x", "y", "w", "h", "score", "flags", "model", "label"]
    return pd.DataFrame(rows, columns=None if rows else columns)


__all__ = [
    "FaceOptions",
    "FaceResult",
    "ImageResult",
    "LoadedModel",
    "UnknownModelError",
    "VideoResult",
    "analyse_image",
    "classify_faces",
    "load_models",
    "predict",
    "predict_video",
    "reading_order",
    "results_table",
]
