"""Pictures of explanations: heat maps over the face, sampling grids, feature-map mosaics (PIL images)."""

from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image

DISPLAY = 192  # pixels a 48-ish face is shown at


def face_pixels(model_input: torch.Tensor, mean: float, std: float) -> np.ndarray:
    """The model's normalised input (1, 1, H, W) back to a uint8 (H, W) face, exactly what it saw."""
    x = model_input.detach().float().reshape(model_input.shape[-2:]) * std + mean
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def scale(attr: torch.Tensor | np.ndarray, signed: bool) -> np.ndarray:
    """Unsigned maps to [0, 1] (clipped at the 99th percentile), signed maps to [-1, 1] keeping zero at zero."""
    a = np.asarray(attr, dtype=np.float64)
    if signed:
        m = np.abs(a).max()
        return a / m if m > 0 else a
    a = np.abs(a)
    top = np.percentile(a, 99)
    return np.clip(a / top, 0, 1) if top > 0 else a


def overlay(
    face: np.ndarray, attr: torch.Tensor | np.ndarray, opacity: float = 0.5, signed: bool = False, size: int = DISPLAY
) -> Image.Image:
    """Heat map over the face: ``inferno`` for unsigned maps, diverging ``RdBu_r`` (red for, blue against)
    for signed ones."""
    a = scale(attr, signed)
    cmap = colormaps["RdBu_r" if signed else "inferno"]
    heat = cmap((a + 1) / 2 if signed else a)[..., :3]
    gray = np.repeat((np.asarray(face, dtype=np.float64) / 255.0)[..., None], 3, axis=2)
    mixed = (1 - opacity) * gray + opacity * heat
    img = Image.fromarray((mixed * 255).round().astype(np.uint8))
    return img.resize((size, size), Image.Resampling.BILINEAR)


def gray_image(face: np.ndarray, size: int = DISPLAY) -> Image.Image:
    return Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((size, size), Image.Resampling.NEAREST)


def attention_image(name: str, attention: torch.Tensor, face: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """One map of a model's ``attention_maps`` (1, h, w) in [0, 1]: a warped face (a spatial transformer's
    output, named ``*warped*``) is shown as a face; any other map as a heat map over the input face."""
    m = attention.detach().float().reshape(-1, *attention.shape[-2:])[:1]
    if "warp" in name:
        return gray_image((m[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    m = torch.nn.functional.interpolate(m[None], size=face.shape, mode="bilinear", align_corners=False)[0, 0]
    return overlay(face, m.numpy(), opacity)


def mosaic(maps: torch.Tensor, cols: int = 8, tile: int = 48) -> Image.Image:
    """(k, h, w) activations as one grey mosaic, each tile scaled to its own range."""
    k = maps.shape[0]
    rows = max(1, -(-k // cols))
    out = Image.new("L", (cols * tile, rows * tile), 0)
    for i in range(k):
        m = maps[i].float()
        m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)
        t = Image.fromarray((m.numpy() * 255).astype(np.uint8)).resize((tile, tile), Image.Resampling.NEAREST)
        out.paste(t, ((i % cols) * tile, (i // cols) * tile))
    return out


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
