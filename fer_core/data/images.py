"""Decoding any image file a user may have into a 48 x 48 grayscale uint8 array.

One function, shared by the dataset loaders; it reports what it had to convert so the loaders can
count it, and raises ``ValueError`` with the reason when the file is not a usable image.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .faceset import IMAGE_SIZE

NOT_AN_IMAGE = "not an image (expected JPEG, PNG, GIF, WebP, BMP or TIFF)"
MAX_PIXELS = 40_000_000  # a 6k x 6k photo is fine; a decompression bomb is not.
# The formats we read, by content (Pillow sniffs magic bytes, whatever the file is called). Pillow knows 40
# more, each a parser of untrusted bytes, and opening EPS runs Ghostscript: a photo app needs none of them.
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM")  # JPEG includes phones' multi-picture (MPO) files


def to_gray_array(img: Image.Image, size: int | None = IMAGE_SIZE) -> tuple[np.ndarray, bool, bool]:
    """Convert a PIL image to a uint8 grayscale array (resized to ``size`` unless None).

    Returns ``(array, was_colour, was_resized)``. Handles EXIF orientation, palette/alpha, CMYK and
    16-bit images: alpha is composited on white, 16-bit is scaled down rather than clipped.
    """
    img = ImageOps.exif_transpose(img)
    was_colour = img.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "F", "1")
    if img.mode in ("P", "PA", "LA", "RGBA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
    img = img.convert("L")
    was_resized = size is not None and img.size != (size, size)
    if was_resized:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8), was_colour, was_resized


def open_image(path_or_file: str | Path | object) -> Image.Image:
    """Open and fully decode an image of one of ``FORMATS``, raising ``ValueError`` with a readable reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path_or_file, formats=FORMATS)
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"image too large ({img.width}x{img.height} pixels)")
            img.load()
    except ValueError:
        raise
    except Image.UnidentifiedImageError:  # its message names the file object (an upload's internals)
        raise ValueError(NOT_AN_IMAGE) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow refused it before we saw its size
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ValueError(f"image too large ({size}, limit {MAX_PIXELS:,}): possibly a decompression bomb") from None
    except Exception as exc:  # PIL raises many types for broken files (OSError, SyntaxError, ...)
        raise ValueError(f"not a readable image ({type(exc).__name__}: {exc})") from None
    return img


def load_face_file(path: Path) -> tuple[np.ndarray, bool, bool]:
    """Decode one file into a 48 x 48 grayscale uint8 array (see :func:`to_gray_array`)."""
    return to_gray_array(open_image(path))
