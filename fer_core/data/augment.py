"""Batch augmentation and evaluation views, as tensor ops on the training device.

Public FER repositories augment one PIL image at a time in DataLoader workers; on a 2-core CPU that
costs as much as the model. Here a whole uint8 batch goes through one ``affine_grid`` /
``grid_sample`` call that does the random resized crop (zoom), horizontal flip, rotation and
translation together, then random erasing as a mask; mixup is a separate step in the loop.

Random numbers come from torch's global generator, so ``torch.manual_seed`` and saving
``torch.get_rng_state()`` make a run reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    zoom: tuple[float, float] = (0.8, 1.2)  # >1 zooms in (a smaller region fills the output)
    rotation: float = 10.0  # degrees, uniform in [-rotation, rotation]
    translate: float = 0.05  # fraction of the image, on top of the slack a smaller crop leaves
    hflip: bool = True
    erase_p: float = 0.5  # probability of one random-erasing rectangle per image
    erase_area: tuple[float, float] = (0.02, 0.15)  # fraction of the image area
    mixup_alpha: float = 0.0  # 0 disables mixup


PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(zoom=(1.0, 1.0), rotation=0.0, translate=0.0, hflip=False, erase_p=0.0),
    "light": AugmentConfig(zoom=(0.9, 1.1), rotation=5.0, translate=0.03, erase_p=0.0),
    # Keras ImageDataGenerator(zoom_range=0.3, horizontal_flip=True), lobo_net's original recipe
    "keras_zoom": AugmentConfig(zoom=(0.7, 1.3), rotation=0.0, translate=0.0, erase_p=0.0),
    "standard": AugmentConfig(),
    "strong": AugmentConfig(zoom=(0.75, 1.25), rotation=15.0, translate=0.08, erase_p=0.5, mixup_alpha=0.2),
}


def normalize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 or [0, 1] float -> normalised float, (N, 1, H, W)."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x - mean) / std


def _sample(x: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Resample (N, 1, H, W) through affine ``theta`` (N, 2, 3) to (N, 1, size, size)."""
    grid = F.affine_grid(theta, [x.shape[0], 1, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment_batch(
    images: torch.Tensor, size: int, crop: float, cfg: AugmentConfig, mean: float, std: float
) -> torch.Tensor:
    """Random views of a uint8 batch (N, 48, 48) -> normalised float (N, 1, size, size).

    ``crop`` is the fraction of the face the model sees at test time (VGGNet: 40/48); training
    views vary around it by ``cfg.zoom`` and may shift by the slack the crop leaves.
    """
    n, dev = images.shape[0], images.device
    x = images.unsqueeze(1).float().div_(255.0)
    u = torch.rand(n, 5, device=dev)
    zoom = cfg.zoom[0] + (cfg.zoom[1] - cfg.zoom[0]) * u[:, 0]
    frac = crop / zoom  # side of the sampled region, as a fraction of the image
    angle = (2 * u[:, 1] - 1) * math.radians(cfg.rotation)
    flip = torch.where(u[:, 2] < 0.5, -1.0, 1.0) if cfg.hflip else torch.ones(n, device=dev)
    shift = max(0.0, 1 - crop) + 2 * cfg.translate
    tx, ty = (2 * u[:, 3] - 1) * shift, (2 * u[:, 4] - 1) * shift
    cos, sin = torch.cos(angle) * frac, torch.sin(angle) * frac
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    x = _sample(x, theta, size)
    if cfg.erase_p > 0:
        x = random_erase(x, cfg.erase_p, cfg.erase_area)
    return normalize(x, mean, std)


def random_erase(x: torch.Tensor, p: float, area: tuple[float, float]) -> torch.Tensor:
    """Blank one random rectangle (uniform noise) in each image with probability ``p``."""
    n, _, h, w = x.shape
    dev = x.device
    u = torch.rand(n, 5, device=dev)
    a = (area[0] + (area[1] - area[0]) * u[:, 0]) * h * w
    ratio = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * u[:, 1])
    eh = torch.sqrt(a * ratio).clamp(1, h)
    ew = torch.sqrt(a / ratio).clamp(1, w)
    top = u[:, 2] * (h - eh)
    left = u[:, 3] * (w - ew)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
    )
    mask = (inside & (u[:, 4] < p).view(n, 1, 1)).unsqueeze(1)
    return torch.where(mask, torch.rand_like(x), x)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix each image with a random partner: returns (x, y_a, y_b, lam); loss = lam*l(y_a) + (1-lam)*l(y_b)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    return lam * x + (1 - lam) * x[perm], y, y[perm], lam


def eval_views(images: torch.Tensor, size: int, crop: float, tta: str, mean: float, std: float) -> torch.Tensor:
    """Deterministic views for evaluation: (V, N, 1, size, size) with V = 1, 2 or 10.

    ``none``: the centre crop; ``flip``: plus its mirror; ``tencrop``: the four corner crops and the
    centre crop, each also mirrored. Models that see the whole face (crop 1.0) take ten-crop views at
    0.9 of the face.
    """
    if tta not in ("none", "flip", "tencrop"):
        raise ValueError(f"tta must be none, flip or tencrop, not {tta!r}")
    x = images.unsqueeze(1).float().div_(255.0)
    n, dev = x.shape[0], x.device
    f = crop if tta != "tencrop" or crop < 1.0 else 0.9
    s = 1.0 - f
    offsets = [(0.0, 0.0)] if tta != "tencrop" else [(0.0, 0.0), (-s, -s), (-s, s), (s, -s), (s, s)]
    flips = [1.0] if tta == "none" else [1.0, -1.0]
    views = []
    for flip in flips:
        for tx, ty in offsets:
            theta = torch.tensor([[f * flip, 0.0, tx], [0.0, f, ty]], device=dev).expand(n, 2, 3)
            views.append(normalize(_sample(x, theta, size), mean, std))
    return torch.stack(views)
