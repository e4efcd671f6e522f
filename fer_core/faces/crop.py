"""From whatever a user uploads to the 48x48 face crops the models were trained on.

The crop that reaches a model must look like a FER2013 face, so every step reuses the training code
path: the photo becomes grayscale through :func:`fer_core.data.images.to_gray_array` (EXIF
orientation, alpha on white, palette, CMYK, 16-bit), the square around the detector's box is resized
to 48x48 by that same function, and the model then takes :func:`fer_core.data.eval_views`' single
centre view with its own normalisation (``fer_core.eval.predict_probs``), exactly as in evaluation.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..data.faceset import IMAGE_SIZE
from ..data.images import MAX_PIXELS, open_image, to_gray_array

MIN_FACE_PX = 32  # below this the 48x48 crop is mostly interpolation
MIN_SHARPNESS = 0.1  # real FER2013 demo faces: min 0.15, 1st percentile 0.24; Gaussian blur sigma 1.2: median 0.04
MAX_DETECT_SIDE = 1600  # larger photos are downscaled for detection only; crops come from full resolution


@dataclass
class LoadedImage:
    """A decoded photo: ``gray`` (H, W) uint8 upright, ``rgb`` for drawing, what we had to do in ``notes``."""

    gray: np.ndarray
    rgb: Image.Image
    notes: list[str] = field(default_factory=list)
    source: str = "image"


def read_image(image: Any, source: str | None = None) -> LoadedImage:
    """Decode a path, bytes, file object, PIL image or array (H, W[, 3|4]) into a :class:`LoadedImage`.

    Raises ``ValueError`` with a reason a user can act on: empty file, not an image (or a format we do
    not parse, ``fer_core.data.images.FORMATS``), truncated or damaged, larger than ``MAX_PIXELS``
    (decompression bombs), no pixels. An animated image gives its first frame, said in ``notes``.
    """
    notes: list[str] = []
    if isinstance(image, np.ndarray):
        img = _from_array(image)
        source = source or "array"
    elif isinstance(image, Image.Image):
        img = image
        source = source or "image"
    else:
        if isinstance(image, bytes | bytearray | memoryview):
            data: Any = io.BytesIO(bytes(image))
            size = len(image)
        elif isinstance(image, str | Path):
            path = Path(image)
            if not path.is_file():
                raise ValueError(f"{path}: no such file")
            size, data = path.stat().st_size, path
            source = source or path.name
        else:  # a file object (Streamlit's UploadedFile, an open file)
            data = image
            size = len(image.getvalue()) if hasattr(image, "getvalue") else None
            source = source or getattr(image, "name", None)
        if size == 0:
            raise ValueError("empty file (0 bytes)")
        img = open_image(data)
    if img.width * img.height > MAX_PIXELS:
        raise ValueError(f"image too large ({img.width}x{img.height} pixels, limit {MAX_PIXELS:,})")
    if img.width == 0 or img.height == 0:
        raise ValueError(f"image has no pixels ({img.width}x{img.height})")
    try:
        # Pillow reads lazily: counting frames, seeking and EXIF orientation parse more of the file, and a
        # damaged file fails there with whatever its plugin raises (KeyError, struct.error, SyntaxError ...)
        frames = getattr(img, "n_frames", 1)
        if getattr(img, "is_animated", False) and frames > 1:
            img.seek(0)
            notes.append(f"animated image with {frames} frames: analysed the first frame only")
        gray, _, _ = to_gray_array(img, size=None)
        rgb = _display_rgb(img, gray)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is "not a readable image" to the user
        raise ValueError(f"not a readable image ({type(exc).__name__}: {exc})") from None
    return LoadedImage(gray, rgb, notes, source or "image")


def _from_array(a: np.ndarray) -> Image.Image:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        if a.dtype.kind == "f" and a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4)):
        return Image.fromarray(a)
    raise ValueError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), not {a.shape}")


def _display_rgb(img: Image.Image, gray: np.ndarray) -> Image.Image:
    """The photo in colour, upright, alpha on white, for drawing boxes on (grayscale when it has no colour)."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGB", "CMYK", "YCbCr"):
        return img.convert("RGB")
    if img.mode in ("P", "PA", "RGBA", "LA"):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return Image.fromarray(gray).convert("RGB")


def detection_image(gray: np.ndarray, max_side: int = MAX_DETECT_SIDE) -> tuple[np.ndarray, float]:
    """``gray`` shrunk so its longer side is at most ``max_side``, and the factor back to full size."""
    h, w = gray.shape
    if max(h, w) <= max_side:
        return gray, 1.0
    factor = max(h, w) / max_side
    small = Image.fromarray(gray).resize((round(w / factor), round(h / factor)), Image.Resampling.BILINEAR)
    return np.asarray(small), factor


def square_box(box: tuple[int, int, int, int], margin: float) -> tuple[int, int, int]:
    """The square (left, top, side) centred on ``box``, its side ``max(w, h) * (1 + 2 * margin)``."""
    x, y, w, h = box
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.0) -> np.ndarray:
    """The 48x48 uint8 face for ``box``: a square with ``margin`` around it, resized like the dataset loaders.

    Parts of the square outside the photo repeat its edge pixels (a face at the border keeps its
    size and position in the crop instead of being stretched); the resize is
    :func:`to_gray_array`'s, the one that brings non-48x48 training images to 48x48. An empty photo, a
    margin that is not finite, or a square over 3 times the photo's size (held in memory: a box of
    10^7 px asked for 20 GB) raise ``ValueError``.
    """
    h, w = gray.shape
    if h == 0 or w == 0:
        raise ValueError(f"no pixels to crop a face from ({w}x{h} image)")
    if not math.isfinite(margin):
        raise ValueError(f"crop margin must be a finite number, not {margin}")
    left, top, side = square_box(box, margin)
    if side > 3 * max(h, w):  # the square is held in memory: a box from nowhere must not take it all
        raise ValueError(f"face box {tuple(box)} (margin {margin}) is over 3 times the size of the {w}x{h} photo")
    if left >= 0 and top >= 0 and left + side <= w and top + side <= h:
        square = np.ascontiguousarray(gray[top : top + side, left : left + side])
    else:  # clipped indices repeat the edge pixels (np.pad's "edge" mode) without copying the whole photo
        rows = np.clip(np.arange(top, top + side), 0, h - 1)
        cols = np.clip(np.arange(left, left + side), 0, w - 1)
        square = gray[np.ix_(rows, cols)]
    face, _, _ = to_gray_array(Image.fromarray(square), size=IMAGE_SIZE)
    return face


def sharpness(face: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the face's variance: low means blurry, whatever the contrast."""
    a = face.astype(np.float64)
    lap = a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4 * a[1:-1, 1:-1]
    return float(lap.var() / max(a.var(), 1.0))


def quality_flags(
    box: tuple[int, int, int, int], face: np.ndarray, min_face: int = MIN_FACE_PX, min_sharpness: float = MIN_SHARPNESS
) -> list[str]:
    """Why a prediction may not be trusted: a face smaller than ``min_face`` px, or a blurry crop."""
    flags = []
    side = max(box[2], box[3])
    if side < min_face:
        flags.append(f"too small ({side} px, want >= {min_face})")
    s = sharpness(face)
    if s < min_sharpness:
        flags.append(f"too blurry (sharpness {s:.2f} < {min_sharpness})")
    return flags
