"""Corruptions of 48x48 faces at five severities: what a camera, a room or a crowd does to a face.

In the spirit of Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations" (ImageNet-C, arXiv:1903.12261), adapted to small aligned grayscale
faces: noise, blur, a dark and a bright room, low contrast, JPEG compression, sunglasses-like eye
occlusion, mask-like mouth occlusion, in-plane rotation and small faces (downscaled, then upscaled
back as a detector's crop would be).

A registry in the timm manner: ``@register("name", params)`` stores a function
``f(x, level, generator) -> x`` on float faces (N, 1, 48, 48) in [0, 1], where ``level`` is the
severity's parameter (the ``params[severity]`` entry; ``params[0]`` makes every function the identity)
and ``generator`` seeds anything random. :func:`corrupt` is the one call most code needs: uint8
faces (N, 48, 48) in, uint8 out, seeded per corruption and severity so every number is reproducible
and does not depend on batch size.

Eye and mouth boxes are fixed face geometry for FER2013-style crops, measured on the mean face of the
shipped demo sample: eyes centred on row 18 (columns 15 and 33), the mouth on row 38, column 24.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SEVERITIES = (1, 2, 3, 4, 5)
CorruptionFn = Callable[[torch.Tensor, object, torch.Generator], torch.Tensor]

EYES_CENTRE = (18.0, 24.0)  # (row, column) on a 48x48 FER2013 crop
MOUTH_CENTRE = (38.0, 24.0)


@dataclass(frozen=True)
class Corruption:
    """A registered corruption: its function, the parameter of each severity 0..5, and what it simulates."""

    name: str
    fn: CorruptionFn
    params: tuple
    title: str
    description: str


CORRUPTIONS: dict[str, Corruption] = {}


def register(name: str, params: tuple, title: str, description: str) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator: add a corruption; ``params`` has six entries, severity 0 (identity) to 5."""

    def add(fn: CorruptionFn) -> CorruptionFn:
        if name in CORRUPTIONS:
            raise ValueError(f"corruption {name!r} is already registered")
        if len(params) != 6:
            raise ValueError(f"{name}: give six parameters, severity 0 (identity) to 5")
        CORRUPTIONS[name] = Corruption(name, fn, tuple(params), title, description)
        return fn

    return add


def list_corruptions() -> list[str]:
    """Registered corruption names, in registration order (the order pages and reports use)."""
    return list(CORRUPTIONS)


# ---- the corruptions ----------------------------------------------------------------------------------
@register("gaussian_noise", (0.0, 0.04, 0.08, 0.12, 0.18, 0.26), "Gaussian noise", "sensor noise, std in [0, 1] units")
def gaussian_noise(x: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


@register("gaussian_blur", (0.0, 0.6, 0.9, 1.3, 1.8, 2.5), "Blur", "out of focus or moving: Gaussian sigma in pixels")
def gaussian_blur(x: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    if sigma <= 0:
        return x
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


@register("brightness_low", (1.0, 0.75, 0.55, 0.4, 0.28, 0.18), "Dark room", "under-exposed: pixels times a factor")
def brightness_low(x: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    return x * factor


@register("brightness_high", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5), "Bright room", "over-exposed: a constant added, clipped")
def brightness_high(x: torch.Tensor, shift: float, g: torch.Generator) -> torch.Tensor:
    return (x + shift).clamp(0, 1)


@register("contrast_low", (1.0, 0.6, 0.45, 0.3, 0.2, 0.1), "Low contrast", "haze: pulled toward each face's mean")
def contrast_low(x: torch.Tensor, factor: float, g: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * factor


@register("jpeg", (None, 30, 20, 14, 9, 5), "JPEG", "compression artefacts: JPEG quality (severity 0: no compression)")
def jpeg(x: torch.Tensor, quality: int | None, g: torch.Generator) -> torch.Tensor:
    if quality is None:
        return x
    faces = (x[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    out = np.empty_like(faces)
    for i, face in enumerate(faces):  # Pillow's libjpeg: ~50 us per 48x48 face
        buf = io.BytesIO()
        Image.fromarray(face).save(buf, "JPEG", quality=int(quality))
        out[i] = np.asarray(Image.open(buf).convert("L"))
    return torch.from_numpy(out).unsqueeze(1).float() / 255


def _occlude(x: torch.Tensor, centre: tuple[float, float], size: tuple[int, int], value: float) -> torch.Tensor:
    h, w = size
    if h <= 0 or w <= 0:
        return x
    top, left = round(centre[0] - h / 2), round(centre[1] - w / 2)
    out = x.clone()
    out[..., max(0, top) : max(0, top + h), max(0, left) : max(0, left + w)] = value
    return out


@register(
    "occlusion_eyes",
    ((0, 0), (4, 16), (6, 24), (8, 30), (10, 36), (12, 42)),
    "Eyes occluded",
    "sunglasses: a black bar over the eyes, (height, width) in pixels",
)
def occlusion_eyes(x: torch.Tensor, size: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    return _occlude(x, EYES_CENTRE, size, 0.0)


@register(
    "occlusion_mouth",
    ((0, 0), (4, 12), (6, 16), (8, 22), (10, 28), (12, 34)),
    "Mouth occluded",
    "a face mask: a light-grey box over the mouth, (height, width) in pixels",
)
def occlusion_mouth(x: torch.Tensor, size: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    return _occlude(x, MOUTH_CENTRE, size, 0.8)


@register("rotation", (0.0, 5.0, 10.0, 15.0, 25.0, 35.0), "Rotation", "a tilted head: degrees, random direction")
def rotation(x: torch.Tensor, degrees: float, g: torch.Generator) -> torch.Tensor:
    if degrees == 0:
        return x
    n = x.shape[0]
    sign = torch.randint(0, 2, (n,), generator=g).float() * 2 - 1
    a = torch.deg2rad(sign * degrees)
    cos, sin, zero = a.cos(), a.sin(), torch.zeros(n)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@register("downscale", (48, 32, 24, 16, 12, 8), "Small face", "a face found this many pixels wide, upscaled to 48")
def downscale(x: torch.Tensor, side: int, g: torch.Generator) -> torch.Tensor:
    size = x.shape[-1]
    if side >= size:
        return x
    small = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


# ---- applying them --------------------------------------------------------------------------------------
def corruption_seed(name: str, severity: int, seed: int = 0) -> int:
    """A stable seed per (corruption, severity, seed): the same faces get the same noise in every run."""
    return (zlib.crc32(name.encode()) * 7 + severity * 1_000_003 + seed) % (2**63)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """uint8 faces (N, 48, 48) under corruption ``name`` at ``severity`` 0..5, as uint8 (N, 48, 48).

    Severity 0 returns the faces unchanged. Deterministic for a given ``seed``: all faces are corrupted
    in one call with one generator, so the result does not depend on how a caller batches the model.
    """
    if name not in CORRUPTIONS:
        raise KeyError(f"unknown corruption {name!r}; registered: {', '.join(CORRUPTIONS)}")
    if not 0 <= severity <= 5:
        raise ValueError(f"severity must be 0..5, not {severity}")
    c = CORRUPTIONS[name]
    g = torch.Generator().manual_seed(corruption_seed(name, severity, seed))
    x = images.unsqueeze(1).float() / 255
    y = c.fn(x, c.params[severity], g)
    return (y[:, 0] * 255).round().clamp(0, 255).to(torch.uint8)
