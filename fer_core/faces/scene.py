"""Licence-clean test photos: FER2013 faces pasted into larger synthetic scenes, with their true boxes.

Tests, the benchmark and the Upload page's sample photo need photos whose faces are known; real
people's photos carry rights we do not have. A scene is a smooth colour gradient with mild noise
(no texture a detector could take for a face), faces upscaled to ``face_px`` and pasted on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .detect import FaceDetector
from .track import iou

Box = tuple[int, int, int, int]


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB gradient with a little noise, uint8 (height, width, 3)."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.integers(40, 215, 3), rng.integers(40, 215, 3)
    t = (np.linspace(0, 1, width)[None, :, None] + np.linspace(0, 1, height)[:, None, None]) / 2
    img = c0 * (1 - t) + c1 * t + rng.normal(0, 4, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def grid_boxes(n: int, width: int, height: int, face_px: int) -> list[Box]:
    """``n`` non-overlapping ``face_px`` squares spread evenly over the scene (raises if they do not fit)."""
    cols = max(1, math.ceil(math.sqrt(n * width / height)))
    rows = math.ceil(n / cols)
    if cols * face_px > width or rows * face_px > height:
        raise ValueError(f"{n} faces of {face_px} px do not fit in {width}x{height}")
    cw, rh = width / cols, height / rows
    return [
        (round((i % cols + 0.5) * cw - face_px / 2), round((i // cols + 0.5) * rh - face_px / 2), face_px, face_px)
        for i in range(n)
    ]


def compose_scene(
    faces: Sequence[np.ndarray],
    size: tuple[int, int] = (640, 480),
    face_px: int = 120,
    boxes: Sequence[Box] | None = None,
    seed: int = 0,
) -> tuple[Image.Image, list[Box]]:
    """An RGB photo of ``size`` (width, height) with the 48x48 ``faces`` pasted in; returns it and the boxes.

    Without ``boxes`` the faces are laid out on a grid at ``face_px``; each face is resized with
    bilinear filtering, so a face pasted at 48 px is bit-identical to its source.
    """
    width, height = size
    boxes = list(boxes) if boxes is not None else grid_boxes(len(faces), width, height, face_px)
    img = background(width, height, seed)
    for face, (x, y, w, h) in zip(faces, boxes, strict=True):
        patch = np.asarray(Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((w, h), Image.Resampling.BILINEAR))
        img[y : y + h, x : x + w] = patch[..., None]
    return Image.fromarray(img), [tuple(b) for b in boxes]


def detectable_faces(
    faces: Sequence[np.ndarray], detector: FaceDetector, face_px: int = 128, limit: int | None = None
) -> list[int]:
    """Indices of the faces ``detector`` finds when each is alone in a plain scene (for tests that need hits)."""
    keep = []
    for i, face in enumerate(faces):
        img, (box,) = compose_scene([face], (face_px * 2, face_px * 2), face_px, seed=i)
        gray = np.asarray(img.convert("L"))
        if any(iou(d.box, box) > 0.5 for d in detector.detect(gray)):
            keep.append(i)
            if limit is not None and len(keep) >= limit:
                break
    return keep
