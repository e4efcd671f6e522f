"""Face detectors behind one small interface, and the registry that makes them pluggable.

A detector takes a grayscale uint8 image (H, W) and returns :class:`Detection` boxes in that image's
pixels. Shipped:

- ``haar``: OpenCV's Viola-Jones frontal-face cascade (``haarcascade_frontalface_default.xml``). Its
  weights are an XML file inside the ``opencv-python-headless`` wheel, so nothing is downloaded at
  run time; it runs on one CPU core (about 13 ms for 640x480, 150 ms for 1920x1080 here) and needs no
  deep-learning runtime beyond the torch we already have. OpenCV 5 removed the cascades and
  ``CascadeClassifier``, so the dependency is pinned below 5. It finds frontal faces only (74-78% of
  the 301 FER2013 demo faces pasted into a plain scene at 64-256 px: FER2013 has many turned, tilted
  and occluded faces) and its box frames a
  face almost exactly as FER2013 did (median FER side / box side 1.02 over the 301 demo faces at
  64-256 px), which is why its crop margin is small. Alternatives checked: facenet-pytorch's MTCNN
  ships weights but pins an old torch; mediapipe no longer bundles its face models.
- ``whole``: the whole image (its centred square) is one face: for photos that are already face crops,
  and the "classify the whole image" fallback when nothing was found.
- :class:`FixedBoxes`: boxes the caller already knows (another detector's output, annotations).

Register another with :func:`register_detector`; :func:`create_detector` builds one by name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Detection:
    """A face box in pixels: ``x, y`` its top-left corner, ``w, h`` its size; ``score`` higher is surer."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    def scaled(self, factor: float) -> Detection:
        """The same box in an image ``factor`` times larger (detection ran on a downscaled copy)."""
        return Detection(
            round(self.x * factor), round(self.y * factor), round(self.w * factor), round(self.h * factor), self.score
        )


@runtime_checkable
class FaceDetector(Protocol):
    """What ``predict`` needs from a detector.

    ``name`` is shown to users; ``margin`` is the crop margin (fraction of the box side added on each
    side) that makes this detector's box frame a face the way FER2013's 48x48 crops do.
    """

    name: str
    margin: float

    def detect(self, gray: np.ndarray) -> list[Detection]: ...


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (weights ship inside opencv-python-headless 4.x).

    ``score`` is the cascade's last-stage weight (``detectMultiScale3``'s level weight): typically 2
    to 10 for real faces, higher is more face-like. ``min_neighbors`` trades recall for false
    positives (5: none on the plain and textured scenes of the benchmark).
    """

    name = "haar"
    margin = 0.01  # FER side / Haar box side = 1.02 (median over the demo faces)

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 20,
    ) -> None:
        try:
            import cv2
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "the 'haar' face detector needs opencv-python-headless<5 (pip install 'opencv-python-headless<5')"
            ) from exc
        if not hasattr(cv2, "CascadeClassifier"):  # pragma: no cover - OpenCV 5
            raise RuntimeError(f"OpenCV {cv2.__version__} has no CascadeClassifier: install opencv-python-headless<5")
        path = cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade {path}")
        self._cv2 = cv2
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self._lock = threading.Lock()  # one cascade object; OpenCV does not promise it is re-entrant

    def detect(self, gray: np.ndarray) -> list[Detection]:
        gray = np.ascontiguousarray(gray, dtype=np.uint8)
        if min(gray.shape[:2]) < self.min_size:
            return []
        with self._lock:
            boxes, _, weights = self._cascade.detectMultiScale3(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(self.min_size, self.min_size),
                outputRejectLevels=True,
            )
        return [
            Detection(int(x), int(y), int(w), int(h), round(float(s), 3))
            for (x, y, w, h), s in zip(boxes, np.ravel(weights), strict=True)
        ]


class WholeImage:
    """The centred square of the image is the face: for images that are already face crops."""

    name = "whole"
    margin = 0.0

    def detect(self, gray: np.ndarray) -> list[Detection]:
        h, w = gray.shape[:2]
        side = min(h, w)
        return [Detection((w - side) // 2, (h - side) // 2, side, side, 1.0)]


class FixedBoxes:
    """Boxes known in advance, ``(x, y, w, h)`` in the image's pixels (after EXIF rotation)."""

    name = "fixed"

    def __init__(self, boxes: list[tuple[int, int, int, int]], margin: float = 0.0) -> None:
        self.boxes = [tuple(int(v) for v in b) for b in boxes]
        self.margin = margin

    def detect(self, gray: np.ndarray) -> list[Detection]:
        return [Detection(*b) for b in self.boxes]


_DETECTORS: dict[str, Callable[..., FaceDetector]] = {"haar": HaarDetector, "whole": WholeImage}
DEFAULT_DETECTOR = "haar"


def register_detector(name: str, factory: Callable[..., FaceDetector]) -> None:
    """Make ``create_detector(name)`` build ``factory(**kwargs)``; names are unique."""
    if name in _DETECTORS:
        raise ValueError(f"a face detector named {name!r} is already registered")
    _DETECTORS[name] = factory


def list_detectors() -> list[str]:
    return sorted(_DETECTORS)


def create_detector(name: str = DEFAULT_DETECTOR, **kwargs: object) -> FaceDetector:
    """Build a registered detector by name; an unknown name lists the valid ones."""
    try:
        factory = _DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown face detector {name!r}; available: {', '.join(list_detectors())}") from None
    return factory(**kwargs)


def resolve_detector(detector: str | FaceDetector | None) -> FaceDetector:
    """A detector from a name, an instance, or None (the default)."""
    if detector is None:
        return create_detector()
    if isinstance(detector, str):
        return create_detector(detector)
    if not isinstance(detector, FaceDetector):
        raise TypeError(f"detector must be a name or have name, margin and detect(), not {type(detector).__name__}")
    return detector
